#!/usr/bin/env python3
"""Step-by-step comparison of two sets of runs made by scripts/equivalence_check.sh.

    python scripts/compare_runs.py BEFORE_DIR AFTER_DIR [--tolerance 1e-6]

For every run directory present in both: the loss of every step and every
metric of the final evaluation (metrics-rank-00000.jsonl). Prints the largest
absolute difference of each and exits 1 if one exceeds the tolerance.
"""
import argparse
import json
import pathlib
import sys


def records(run):
    train, evals = {}, []
    with open(run / "metrics-rank-00000.jsonl") as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") == "train":
                train[int(r["step"])] = r["loss"]
            elif r.get("kind") == "eval":
                evals.append(r)
    return train, evals


def main():
    p = argparse.ArgumentParser()
    p.add_argument("before", type=pathlib.Path)
    p.add_argument("after", type=pathlib.Path)
    p.add_argument("--tolerance", type=float, default=1e-6)
    a = p.parse_args()
    worst = 0.0
    for run in sorted(d.name for d in a.before.iterdir() if (d / "metrics-rank-00000.jsonl").exists()):
        if not (a.after / run / "metrics-rank-00000.jsonl").exists():
            print(f"{run}: missing in {a.after}")
            worst = float("inf")
            continue
        tb, eb = records(a.before / run)
        ta, ea = records(a.after / run)
        if tb.keys() != ta.keys():
            print(f"{run}: different steps ({len(tb)} vs {len(ta)})")
            worst = float("inf")
            continue
        loss_diff = max(abs(tb[s] - ta[s]) for s in tb)
        metric_diff = 0.0
        for b, c in zip(eb, ea):
            for key, value in b.items():
                if key != "time" and isinstance(value, (int, float)) and key in c:
                    metric_diff = max(metric_diff, abs(value - c[key]))
        final = eb[-1] if eb else {}
        print(f"{run}: {len(tb)} steps, max |loss diff| {loss_diff:.3g} (last loss {tb[max(tb)]:.6f} vs "
              f"{ta[max(ta)]:.6f}); final eval max |diff| {metric_diff:.3g} "
              f"(NDCG@10 {final.get('ndcg@10', float('nan')):.4f})")
        worst = max(worst, loss_diff, metric_diff)
    print(f"largest difference {worst:.3g}, tolerance {a.tolerance:g}: {'same' if worst <= a.tolerance else 'DIFFERENT'}")
    return 0 if worst <= a.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
