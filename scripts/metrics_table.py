#!/usr/bin/env python3
"""Prints the evaluations of a run (its metrics-rank-00000.jsonl) as a Markdown table.

    python3 scripts/metrics_table.py runs/ml-1m-hstu            # every evaluation
    python3 scripts/metrics_table.py runs/ml-1m-hstu --every 10  # epochs 10, 20, ... and the last
    python3 scripts/metrics_table.py runs/ml-1m-pt-groups --slice hist>512
"""
import argparse
import json
import pathlib
import sys

METRICS = ["hr@1", "hr@10", "hr@50", "hr@200", "ndcg@10", "ndcg@50", "ndcg@200", "mrr"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=pathlib.Path, help="run directory or metrics JSONL file")
    parser.add_argument("--every", type=int, default=0, help="only epochs divisible by this (and the last)")
    parser.add_argument("--slice", default="", help="a metric prefix such as 'hist>512' (users with long histories)")
    args = parser.parse_args()
    path = args.run / "metrics-rank-00000.jsonl" if args.run.is_dir() else args.run
    if not path.exists():
        print(f"{path}: no metrics file", file=sys.stderr)
        return 1
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            print(f"{path}:{number}: not JSON ({error})", file=sys.stderr)
            return 1
        if record.get("kind") == "eval":
            rows.append(record)
    if not rows:
        print(f"{path}: no evaluations", file=sys.stderr)
        return 1
    prefix = f"{args.slice}/" if args.slice else ""
    print("| epoch | step | users | " + " | ".join(m.upper().replace("@", "@") for m in METRICS) + " |")
    print("|---" * (3 + len(METRICS)) + "|")
    for i, record in enumerate(rows):
        epoch = int(record.get("epoch", 0))
        if args.every and epoch % args.every and i != len(rows) - 1:
            continue
        users = int(record.get(prefix + "users", record.get("users", 0)))
        values = [record.get(prefix + m) for m in METRICS]
        cells = ["" if v is None else f"{v:.4f}" for v in values]
        print(f"| {epoch} | {int(record.get('step', 0))} | {users} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
