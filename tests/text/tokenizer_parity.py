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
extra = {}
if settings.get("llama_spec"):
    # The trainer_spec and normalizer_spec of Meta's Llama / Llama 2 `tokenizer.model` (read from
    # the released file's ModelProto): BPE, digits split, byte fallback, no normalization, a dummy
    # prefix, whitespace kept, <unk>=0 <s>=1 </s>=2 and no pad. Only the vocabulary size differs.
    extra = dict(
        split_digits=True,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        split_by_unicode_script=True,
        split_by_whitespace=True,
        max_sentencepiece_length=16,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
    )
spm.SentencePieceTrainer.train(
    sentence_iterator=iter([t for t in texts if t]),
    model_writer=model,
    vocab_size=settings["vocab_size"],
    model_type=settings["model_type"],
    character_coverage=settings["character_coverage"],
    byte_fallback=settings["byte_fallback"],
    num_threads=1,
    minloglevel=1,
    **extra,
)
with open(f"{d}/py.model", "wb") as f:
    f.write(model.getvalue())

out = {}
for name in ("cpp", "py"):
    sp = spm.SentencePieceProcessor(model_file=f"{d}/{name}.model")
    out[f"{name}_model"] = [sp.encode(s) for s in strings]
    out[f"{name}_vocab_size"] = sp.get_piece_size()
    out[f"{name}_special"] = [sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()]
    out[f"{name}_decoded"] = [sp.decode(ids) for ids in out[f"{name}_model"]]
json.dump(out, open(f"{d}/py_ids.json", "w"))
