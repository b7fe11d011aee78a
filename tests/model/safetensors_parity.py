"""Python's safetensors against longrec's reader and writer (test_safetensors_torch).

  safetensors_parity.py write DIR   # DIR/python.safetensors and DIR/expected.safetensors
  safetensors_parity.py check DIR   # DIR/cpp.safetensors and DIR/sharded/ (written by C++) equal DIR/python.safetensors
"""
import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

METADATA = {"format": "pt", "source": "parity test"}


def tensors():
    g = torch.Generator().manual_seed(15)
    base = torch.randn(3, 5, generator=g, dtype=torch.float64) * 100
    special = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), 1e-7, 6.0e-8, 65504.0, 3.0e38], dtype=torch.float64)
    return {
        "f32": base.to(torch.float32),
        "f16": torch.cat([base.flatten(), special[:7]]).to(torch.float16),
        "bf16": torch.cat([base.flatten(), special]).to(torch.bfloat16).reshape(23),
        "f64": base,
        "i64": torch.tensor([[0, -1, 2**40], [7, -(2**62), 2**62]], dtype=torch.int64),
        "scalar_f32": torch.tensor(2.5, dtype=torch.float32),
        "scalar_bf16": torch.tensor(-3.0, dtype=torch.bfloat16),
        "empty_f16": torch.zeros(0, 4, dtype=torch.float16),
        "empty_i64": torch.zeros(0, dtype=torch.int64),
        "model.layers.0.self_attn.q_proj.weight": torch.randn(4, 4, generator=g).to(torch.bfloat16),
    }


def main():
    mode, directory = sys.argv[1], sys.argv[2]
    if mode == "write":
        ts = tensors()
        save_file(ts, f"{directory}/python.safetensors", metadata=METADATA)
        # The exact values as float64 (int64 kept): every f16/bf16/f32 value is a float64.
        expected = {k: (v.to(torch.float64) if v.is_floating_point() else v) for k, v in ts.items()}
        save_file(expected, f"{directory}/expected.safetensors")
        return 0
    python = load_file(f"{directory}/python.safetensors")
    cpp = load_file(f"{directory}/cpp.safetensors")
    assert set(python) == set(cpp), (sorted(python), sorted(cpp))
    for name, value in python.items():
        got = cpp[name]
        assert got.dtype == value.dtype and got.shape == value.shape, (name, got.dtype, got.shape, value.dtype, value.shape)
        assert torch.equal(got, value), name
    with safe_open(f"{directory}/cpp.safetensors", framework="pt") as f:
        assert f.metadata() == METADATA, f.metadata()
    extra = load_file(f"{directory}/cpp_bf16.safetensors")
    assert extra["w"].dtype == torch.bfloat16 and torch.equal(extra["w"], python["f32"].to(torch.bfloat16)), "bf16"
    with open(f"{directory}/sharded/model.safetensors.index.json") as f:
        index = json.load(f)
    shards = {}
    for file in sorted(set(index["weight_map"].values())):
        for name, value in load_file(f"{directory}/sharded/{file}").items():
            assert index["weight_map"][name] == file, (name, file)
            shards[name] = value
    assert set(shards) == set(python) and all(torch.equal(shards[k], v) for k, v in python.items()), "sharded"
    assert index["metadata"]["total_size"] == sum(v.numel() * v.element_size() for v in python.values())
    print(f"parity: {len(cpp)} tensors read back identically by safetensors.torch.load_file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
