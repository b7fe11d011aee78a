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

# Older runs (before eval.cutoffs) have these; newer ones every hr@K / ndcg@K of their eval.cutoffs.
METRICS = ["hr@1", "hr@10", "hr@50", "hr@200", "ndcg@10", "ndcg@50", "ndcg@200", "mrr"]


def metrics_of(rows, prefix):
    """The run's hr@K, then ndcg@K by increasing K, then mrr (as `longrec eval` prints them)."""
    found = set()
    for record in rows:
        for key in record:
            if not key.startswith(prefix):
                continue
            name = key[len(prefix):]
            kind, _, cutoff = name.partition("@")
            if (kind in ("hr", "ndcg") and cutoff.isdigit()) or name == "mrr":
                found.add(name)
    if not found:
        return METRICS
    order = {"hr": 0, "ndcg": 1, "mrr": 2}
    return sorted(found, key=lambda m: (order[m.partition("@")[0]], int(m.partition("@")[2] or 0)))


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
    metrics = metrics_of(rows, prefix)
    print("| epoch | step | users | " + " | ".join(m.upper() for m in metrics) + " |")
    print("|---" * (3 + len(metrics)) + "|")
    for i, record in enumerate(rows):
        epoch = int(record.get("epoch", 0))
        if args.every and epoch % args.every and i != len(rows) - 1:
            continue
        users = int(record.get(prefix + "users", record.get("users", 0)))
        values = [record.get(prefix + m) for m in metrics]
        cells = ["" if v is None else f"{v:.4f}" for v in values]
        print(f"| {epoch} | {int(record.get('step', 0))} | {users} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
