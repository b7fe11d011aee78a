"""Issue 15: SentencePiece parity between longrec's C++ tokenizer and Python's
`sentencepiece`, both directions. Run by tests/text/test_tokenizer.cpp:

  tokenizer_parity.py DIR

DIR holds texts.json (training texts), strings.json (strings to encode) and
cpp.model (trained by C++). Writes py.model (trained here with the same
settings) and py_ids.json: {"cpp_model": [[ids]...], "py_model": [[ids]...]}.
"""
import io
import json
import sys

import sentencepiece as spm

d = sys.argv[1]
texts = json.load(open(f"{d}/texts.json", encoding="utf-8"))
strings = json.load(open(f"{d}/strings.json", encoding="utf-8"))
settings = json.load(open(f"{d}/settings.json", encoding="utf-8"))

model = io.BytesIO()
spm.SentencePieceTrainer.train(
    sentence_iterator=iter([t for t in texts if t]),
    model_writer=model,
    vocab_size=settings["vocab_size"],
    model_type=settings["model_type"],
    character_coverage=settings["character_coverage"],
    byte_fallback=settings["byte_fallback"],
    num_threads=1,
    minloglevel=1,
)
with open(f"{d}/py.model", "wb") as f:
    f.write(model.getvalue())

out = {}
for name in ("cpp", "py"):
    sp = spm.SentencePieceProcessor(model_file=f"{d}/{name}.model")
    out[f"{name}_model"] = [sp.encode(s) for s in strings]
    out[f"{name}_vocab_size"] = sp.get_piece_size()
json.dump(out, open(f"{d}/py_ids.json", "w"))
