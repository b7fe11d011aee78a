#!/usr/bin/env python3
"""A PNG of a training run's curves: training loss, learning rate and the
evaluation metrics over steps, from the run directory's metrics JSONL (what
`longrec train` writes: metrics-rank-00000.jsonl, one JSON object per line,
"kind": "train" or "eval").

  .venv/bin/python scripts/plot_run.py RUN [--out FILE] [--metrics ndcg@10,hr@10]

Writes RUN/curves.png unless --out is given (written to a temporary file and
renamed, so a reader never sees half a PNG). A torn last line (a run killed
mid-write) is skipped, as `longrec train --resume` does; any other malformed
line is refused with the file and line named.
"""
import argparse
import os
import sys

from run_metrics import metrics_records  # scripts/run_metrics.py, beside this script

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402


def fail(message):
    print(f"plot_run.py: error: {message}", file=sys.stderr)
    sys.exit(1)


def read_metrics(path):
    train, evals = [], []
    for _, row in metrics_records(path, "plot_run.py", fail):
        (train if row["kind"] == "train" else evals if row["kind"] == "eval" else []).append(row)
    return train, evals


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="run directory (train.run_dir)")
    parser.add_argument("--out", help="PNG to write (default RUN/curves.png)")
    parser.add_argument("--metrics", default="ndcg@10,hr@10", help="evaluation metrics to draw, comma-separated")
    args = parser.parse_args()
    if not os.path.isdir(args.run):
        fail(f"{args.run}: not a run directory")
    path = os.path.join(args.run, "metrics-rank-00000.jsonl")
    train, evals = read_metrics(path)
    if not train:
        fail(f"{path}: no training lines (\"kind\": \"train\") to plot")
    metrics = [m for m in args.metrics.split(",") if m]
    for m in metrics:
        if evals and not any(m in row for row in evals):
            known = sorted({k for row in evals for k in row if "@" in k or k == "mrr"})
            fail(f"--metrics: '{m}' is not in the run's evaluations (it has {', '.join(known)})")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    steps = [row["step"] for row in train]
    axes[0].plot(steps, [row.get("loss", float("nan")) for row in train])
    axes[0].set(title="training loss", xlabel="step", ylabel="loss")
    axes[1].plot(steps, [row.get("lr", float("nan")) for row in train])
    axes[1].set(title="learning rate", xlabel="step", ylabel="lr")
    for m in metrics:
        points = [(row["step"], row[m]) for row in evals if m in row]
        if points:
            axes[2].plot([p[0] for p in points], [p[1] for p in points], marker="o", label=m)
    axes[2].set(title="evaluation" if evals else "evaluation (none in this run)", xlabel="step")
    if evals:
        axes[2].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(os.path.basename(os.path.abspath(args.run)))
    fig.tight_layout()
    out = args.out or os.path.join(args.run, "curves.png")
    temporary = f"{out}.tmp-{os.getpid()}"
    try:
        fig.savefig(temporary, format="png", dpi=100)
        os.replace(temporary, out)
    except OSError as e:
        if os.path.exists(temporary):
            os.remove(temporary)
        fail(f"{out}: cannot write ({e.strerror})")
    print(f"wrote {out}: {len(train)} training points, {len(evals)} evaluations")


if __name__ == "__main__":
    main()
