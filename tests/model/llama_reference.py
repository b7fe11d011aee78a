"""Reference outputs of a random tiny Hugging Face LlamaForCausalLM, for test_llama's parity tests.

Usage: llama_reference.py OUT_DIR [HEAD_DIM]
       llama_reference.py --check OUT_DIR   (after test_llama's LlamaParity suite wrote OUT_DIR/cpp and
                                             OUT_DIR/cpp-bf16: transformers loads them and must give the
                                             reference hidden states)
HEAD_DIM (optional) sets config.json's head_dim apart from hidden_size / num_attention_heads.
Writes OUT_DIR/config.json (save_pretrained's) and OUT_DIR/reference.pt, a torch.save dict (zip format,
read by torch::pickle_load) of float32/int64 tensors:
  the weights under their Hugging Face names (model.embed_tokens.weight, model.layers.N...., model.norm.weight,
  lm_head.weight);
  for each case C in (ids, embeds, padded): C.input (ids [B, L] int64, or inputs_embeds [B, L, D]),
  C.positions [B, L], C.hidden.K for K = 0..num_layers (output_hidden_states: K = 0 the embeddings,
  K = num_layers after the final norm), C.last_raw (the last layer's output before the final norm);
  padded.mask [B, L] (1 = real token; left padding, positions counting from the first real token);
  bf16.ids.*: the ids case with the weights rounded to bfloat16 (OUT_DIR/bf16 holds them saved in bf16).
"""
import copy
import json
import os
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

if sys.argv[1] == "--check":
    from transformers import LlamaModel
    out_dir = sys.argv[2]
    ref = torch.load(os.path.join(out_dir, "reference.pt"))
    for sub, case in (("cpp", "ids"), ("cpp-bf16", "bf16.ids")):
        m = LlamaModel.from_pretrained(os.path.join(out_dir, sub), torch_dtype=torch.float32,
                                       attn_implementation="eager").eval()
        with torch.no_grad():
            out = m(input_ids=ref[case + ".input"], position_ids=ref[case + ".positions"], output_hidden_states=True)
        worst = max((h - ref[f"{case}.hidden.{k}"]).abs().max().item() for k, h in enumerate(out.hidden_states))
        print(f"transformers on the directory longrec saved ({sub}): max abs diff {worst:.3g} over every layer")
        assert worst < 1e-5, (sub, worst)
    print("PASS: transformers loads what longrec saves")
    sys.exit(0)

out_dir = sys.argv[1]
head_dim = {"head_dim": int(sys.argv[2])} if len(sys.argv) > 2 else {}
os.makedirs(out_dir, exist_ok=True)
torch.manual_seed(1234)
config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, rope_theta=5000.0, rms_norm_eps=1e-5,
                     max_position_embeddings=128, tie_word_embeddings=False, attn_implementation="eager", **head_dim)
model = LlamaForCausalLM(config).eval()
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):  # HF initialises RMSNorm weights to 1: make them count
            p.copy_(1.0 + 0.5 * torch.randn_like(p))
        else:  # larger than the 0.02 init so that every layer moves the hidden states
            p.copy_(0.1 * torch.randn_like(p))
model.save_pretrained(out_dir, safe_serialization=True)

tensors = {name: t.detach().clone().contiguous() for name, t in model.state_dict().items()}
last_raw = {}
model.model.layers[-1].register_forward_hook(
    lambda mod, args, out: last_raw.__setitem__("x", (out[0] if isinstance(out, tuple) else out).detach()))


def run(case, positions, mask=None, **inputs):
    with torch.no_grad():
        out = model(**inputs, position_ids=positions, attention_mask=mask, output_hidden_states=True)
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    for k, h in enumerate(out.hidden_states):
        tensors[f"{case}.hidden.{k}"] = h.detach().clone().contiguous()
    tensors[f"{case}.last_raw"] = last_raw["x"].clone().contiguous()
    tensors[f"{case}.positions"] = positions.clone()
    if mask is not None:
        tensors[f"{case}.mask"] = mask.clone()


B, L = 3, 9
ids = torch.randint(0, config.vocab_size, (B, L))
positions = torch.arange(L).unsqueeze(0).expand(B, L).contiguous()
tensors["ids.input"] = ids
run("ids", positions, input_ids=ids)

embeds = torch.randn(B, L, config.hidden_size)
tensors["embeds.input"] = embeds
run("embeds", positions + 3, inputs_embeds=embeds)  # positions that do not start at 0

lengths = torch.tensor([L, L - 3, 2])
mask = (torch.arange(L).unsqueeze(0) >= (L - lengths).unsqueeze(1)).long()
padded_positions = (mask.cumsum(1) - 1).clamp(min=0)
tensors["padded.input"] = ids
run("padded", padded_positions, mask=mask, input_ids=ids)

# bf16-saved weights: the same model rounded to bfloat16, saved so, and its reference in float32.
# (Parameters only: model.to(bfloat16) would round the rotary inv_freq buffer too.)
with torch.no_grad():
    for p in model.parameters():
        p.copy_(p.to(torch.bfloat16).to(torch.float32))
copy.deepcopy(model).to(torch.bfloat16).save_pretrained(os.path.join(out_dir, "bf16"), safe_serialization=True)
tensors["bf16.ids.input"] = ids
run("bf16.ids", positions, input_ids=ids)

torch.save(tensors, os.path.join(out_dir, "reference.pt"), _use_new_zipfile_serialization=True)
print(f"wrote {len(tensors)} tensors and config.json to {out_dir}")
