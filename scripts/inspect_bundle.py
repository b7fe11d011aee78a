#!/usr/bin/env python3
"""Reads a longrec serving bundle (`longrec export`) without longrec: h5py + numpy.

  .venv/bin/python scripts/inspect_bundle.py model.h5                 # content, config, checksum check
  .venv/bin/python scripts/inspect_bundle.py model.h5 --user-vector u.json --history 1193,661 --k 10
      # top-k items for a user vector (JSON list of D floats), the history's items excluded

The bundle layout is documented in include/longrec/serve/bundle.h.
"""
import argparse
import json
import sys
import zlib

import h5py
import numpy as np

FORMAT, VERSION = "longrec-bundle", 2


def attr(f, name):
    value = f.attrs[name]
    return value.decode() if isinstance(value, bytes) else value


def text(f, name):
    value = f[name][0]
    return value.decode() if isinstance(value, bytes) else value


def tensor(f, name, shapes, dtype):
    raw = f[name][()]
    if dtype == "bf16":  # upper 16 bits of float32
        raw = (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32).reshape(shapes[name])


def checksum(f):
    """CRC-32 of every dataset in /config/datasets order: its name, then its bytes
    (strings with their terminating zero), as longrec computes it."""
    crc = 0
    for name in (n.decode() if isinstance(n, bytes) else n for n in f["/config/datasets"][()]):
        crc = zlib.crc32(name.encode(), crc)
        data = f[name]
        if h5py.check_string_dtype(data.dtype) is not None:
            for s in data.asstr()[()]:
                crc = zlib.crc32(s.encode() + b"\0", crc)
        else:
            crc = zlib.crc32(np.ascontiguousarray(data[()]).tobytes(), crc)
    return f"crc32:{crc:08x}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("--user-vector", help="JSON file with a list of D floats (the user vector)")
    parser.add_argument("--history", default="", help="raw item ids to exclude, comma-separated")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()

    with h5py.File(args.bundle, "r") as f:
        if attr(f, "format") != FORMAT:
            sys.exit(f"{args.bundle}: not a longrec bundle (format {attr(f, 'format')!r})")
        if int(attr(f, "version")) > VERSION:
            sys.exit(f"{args.bundle}: bundle version {attr(f, 'version')}, this script reads up to {VERSION}")
        stored, actual = attr(f, "checksum"), checksum(f)
        if stored != actual:
            sys.exit(f"{args.bundle}: checksum {actual} does not match the stored {stored}; the file is corrupt")
        dtype, shapes = attr(f, "dtype"), json.loads(text(f, "/config/tensors"))
        model = json.loads(text(f, "/config/model"))
        source = json.loads(text(f, "/config/source"))
        ids = f["/items/ids"][()]
        titles = f["/items/text"].asstr()[()] if "/items/text" in f else None
        print(f"{args.bundle}: {FORMAT} v{attr(f, 'version')}, {attr(f, 'content')}, {dtype}, {stored} (verified)")
        print(f"model: {model['backbone']} d={model['dim']} blocks={model['blocks']} heads={model['heads']} "
              f"max_len={model['max_len']}; from step {source['step']} of a {source['world_size']}-rank checkpoint")
        print(f"items: {len(ids)}{' with titles' if titles is not None else ''}")
        if "/items/tokenizer" in f:  # hllm with the item LLM: its CRC-32 is the model's hllm.tokenizer_checksum
            tokenizer = f["/items/tokenizer"][()].tobytes()
            crc = f"crc32:{zlib.crc32(tokenizer):08x}"
            recorded = model.get("hllm", {}).get("tokenizer_checksum")
            if crc != recorded:
                sys.exit(f"{args.bundle}: /items/tokenizer has checksum {crc}, the model records {recorded}")
            print(f"tokenizer: {len(tokenizer)} bytes, {crc} (the item LLM's; new items can be added)")
        for name in sorted(shapes):
            print(f"  {name:<48} {'x'.join(map(str, shapes[name]))}")

        if args.user_vector:
            table_name = "/items/vectors" if "/items/vectors" in f else "/items/table"
            table = tensor(f, table_name, shapes, dtype)
            table = table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-6)
            with open(args.user_vector) as vf:
                user = np.asarray(json.load(vf), dtype=np.float32)
            if user.shape != (table.shape[1],):
                sys.exit(f"{args.user_vector}: {user.shape[0]} values, the model's width is {table.shape[1]}")
            scores = table @ user
            index = {int(raw): k for k, raw in enumerate(ids)}
            for raw in filter(None, args.history.split(",")):
                if int(raw) not in index:
                    sys.exit(f"--history: item {raw} is not in the catalogue")
                scores[index[int(raw)]] = -np.inf
            top = np.argsort(-scores, kind="stable")[: args.k]
            for rank, k in enumerate(top, 1):
                title = f"  {titles[k]}" if titles is not None else ""
                print(f"{rank:>3} {ids[k]:>10} {scores[k]:.6f}{title}")


if __name__ == "__main__":
    main()
