#!/usr/bin/env python3
"""One user's history from a longrec history store, as raw item ids (what
`longrec recommend --history` and `longrec serve` take), oldest first.

  .venv/bin/python scripts/user_history.py DATA [--user RAW_ID | --longest]
      [--hold_out N] [--last K] [--json]

Prints the raw item ids comma-separated (or a JSON request body with --json:
{"history": [...], "k": 10}), after holding out the user's last N events
(default 1: the leave-one-out test item), keeping the newest K (default all);
the held-out items go to stderr, so that a recommendation can be checked
against them. --longest picks the user with the most events (the default is
the first user of part 0). Reads the store format of
include/longrec/data/history_store.h with h5py.
"""
import argparse
import glob
import json
import os
import sys

import h5py
import numpy as np


def fail(message):
    print(f"user_history.py: error: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="history store directory (longrec prepare / synth)")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--user", type=int, help="raw user id")
    who.add_argument("--longest", action="store_true", help="the user with the most events")
    parser.add_argument("--hold_out", type=int, default=1, help="newest events held out (printed to stderr)")
    parser.add_argument("--last", type=int, default=0, help="keep only the newest K events of the rest (0: all)")
    parser.add_argument("--k", type=int, default=10, help="k of the --json request")
    parser.add_argument("--json", action="store_true", help='print {"history": [...], "k": K}')
    args = parser.parse_args()
    if args.hold_out < 0 or args.last < 0 or args.k < 1:
        fail("--hold_out and --last must be >= 0, --k >= 1")

    meta_path = os.path.join(args.data, "meta.h5")
    if not os.path.isfile(meta_path):
        fail(f"{meta_path}: not found (is {args.data} a history store?)")
    with h5py.File(meta_path, "r") as meta:
        if meta.attrs.get("format") not in (b"longrec-history", "longrec-history"):
            fail(f"{meta_path}: format attribute is not longrec-history")
        item_raw_ids = meta["items/raw_id"][()]

    best = None  # (events, part, index)
    for part in sorted(glob.glob(os.path.join(args.data, "part-*.h5"))):
        with h5py.File(part, "r") as f:
            raw_ids = f["users/raw_id"][()]
            offsets = f["users/offsets"][()]
            lengths = np.diff(offsets)
            if args.user is not None:
                hits = np.nonzero(raw_ids == args.user)[0]
                if len(hits):
                    best = (int(lengths[hits[0]]), part, int(hits[0]))
                    break
            elif args.longest:
                i = int(np.argmax(lengths)) if len(lengths) else -1
                if i >= 0 and (best is None or lengths[i] > best[0]):
                    best = (int(lengths[i]), part, i)
            elif len(raw_ids):
                best = (int(lengths[0]), part, 0)
                break
    if best is None:
        fail(f"{args.data}: " + (f"no user with raw id {args.user}" if args.user is not None else "no users"))
    _, part, index = best
    with h5py.File(part, "r") as f:
        begin, end = f["users/offsets"][index], f["users/offsets"][index + 1]
        user = int(f["users/raw_id"][index])
        dense = f["events/item"][begin:end]
    raw = [int(item_raw_ids[i - 1]) for i in dense]
    if len(raw) <= args.hold_out:
        fail(f"user {user} has {len(raw)} events, not more than --hold_out {args.hold_out}")
    history, held_out = raw[: len(raw) - args.hold_out], raw[len(raw) - args.hold_out :]
    if args.last:
        history = history[-args.last :]
    print(f"user {user}: {len(raw)} events; held out (newest last): {held_out}", file=sys.stderr)
    if args.json:
        print(json.dumps({"history": history, "k": args.k}))
    else:
        print(",".join(str(i) for i in history))


if __name__ == "__main__":
    main()
