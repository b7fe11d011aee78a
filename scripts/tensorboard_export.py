#!/usr/bin/env python3
"""TensorBoard event files from a longrec run's metrics JSONL (what
`longrec train` writes: RUN/metrics-rank-NNNNN.jsonl, one JSON object per
line, "kind": "train" or "eval").

  .venv/bin/python scripts/tensorboard_export.py RUN [--out DIR] [--all-ranks]
  tensorboard --logdir RUN/tensorboard

Every numeric field of a "train" record becomes the scalar train/<field> at the
record's step, every numeric field of an "eval" record eval/<field> (step,
epoch and time are not scalars of their own; time is the event's wall time).
By default rank 0's file is converted, into DIR itself (default
RUN/tensorboard); --all-ranks converts every rank's file, one TensorBoard run
per rank (DIR/rank-NNNNN).

A resumed run appends records that repeat the steps after its last
checkpoint: for each (kind, step) the last written record is kept. A torn last
line (a run killed mid-write) is skipped with a warning, as `longrec train
--resume` does; any other malformed line is refused with the file and line
named. The export is written into a temporary directory and renamed over the
previous export, so a reader never sees half of one; an existing DIR that is
not an export of this script is refused, not replaced.
"""
import argparse
import glob
import json
import math
import os
import re
import shutil
import sys

from run_metrics import metrics_records  # scripts/run_metrics.py, beside this script

PROG = "tensorboard_export.py"
MARKER = ".longrec-tensorboard-export"  # what makes an existing DIR safe to replace
NOT_SCALARS = {"kind", "step", "epoch", "time", "part"}


def fail(message):
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(1)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_records(path):
    """{(kind, step): (wall time or None, {field: value})} of the file's train and
    eval records, the last written one for each (kind, step); and how many
    earlier records a later one replaced."""
    records, replaced = {}, 0
    for number, row in metrics_records(path, PROG, fail):
        if row["kind"] not in ("train", "eval"):
            continue
        step = row["step"]
        if not is_number(step) or not math.isfinite(step) or step < 0 or step != int(step):
            fail(f"{path}:{number}: 'step' is {json.dumps(step)}, not a whole number of steps")
        wall_time = row.get("time")
        if wall_time is not None and (not is_number(wall_time) or not math.isfinite(wall_time)):
            fail(f"{path}:{number}: 'time' is {json.dumps(wall_time)}, not a number of seconds")
        scalars = {k: float(v) for k, v in row.items() if k not in NOT_SCALARS and is_number(v)}
        key = (row["kind"], int(step))
        if key in records:
            replaced += 1
            del records[key]  # re-inserted last: the dict keeps the order of writing
        records[key] = (None if wall_time is None else float(wall_time), scalars)
    return records, replaced


def write_events(directory, records, writer_class):
    """One TensorBoard run in directory; returns (scalars, train steps, evaluations)."""
    os.makedirs(directory, exist_ok=True)
    writer = writer_class(log_dir=directory)
    scalars = 0
    try:
        for (kind, step), (wall_time, fields) in sorted(records.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            for field, value in sorted(fields.items()):
                writer.add_scalar(f"{kind}/{field}", value, global_step=step, walltime=wall_time)
                scalars += 1
    finally:
        writer.close()
    train = sum(1 for kind, _ in records if kind == "train")
    return scalars, train, len(records) - train


def replace_directory(temporary, out):
    """Puts temporary in out's place: an older export is swapped out whole."""
    if os.path.lexists(out):
        old = f"{out}.old-{os.getpid()}"
        os.rename(out, old)
        try:
            os.rename(temporary, out)
        except OSError:
            os.rename(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(temporary, out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run directory (train.run_dir)")
    parser.add_argument("--out", help="TensorBoard log directory to write (default RUN/tensorboard)")
    parser.add_argument("--all-ranks", action="store_true",
                        help="every rank's metrics file, one TensorBoard run (DIR/rank-NNNNN) each")
    args = parser.parse_args()
    if not os.path.isdir(args.run):
        fail(f"{args.run}: not a run directory")
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        fail(f"cannot import torch.utils.tensorboard ({e}); bash scripts/setup.sh installs the pinned "
             f"torch and tensorboard into .venv")

    if args.all_ranks:
        paths = sorted(p for p in glob.glob(os.path.join(glob.escape(args.run), "metrics-rank-*.jsonl"))
                       if re.fullmatch(r"metrics-rank-\d{5}\.jsonl", os.path.basename(p)))
        if not paths:
            fail(f"{args.run}: no metrics-rank-NNNNN.jsonl files")
    else:
        paths = [os.path.join(args.run, "metrics-rank-00000.jsonl")]
        if not os.path.isfile(paths[0]):
            fail(f"{paths[0]}: no such file (the run's rank 0 metrics)")

    out = (args.out or os.path.join(args.run, "tensorboard")).rstrip("/") or "/"
    if os.path.lexists(out):
        if not os.path.isdir(out) or os.path.islink(out):
            fail(f"{out}: exists and is not a directory")
        if os.listdir(out) and not os.path.exists(os.path.join(out, MARKER)):
            fail(f"{out}: exists and is not an earlier export of this script (no {MARKER}); "
                 f"not replaced: remove it or choose another --out")

    per_file = [(path, *read_records(path)) for path in paths]  # every file checked before anything is written
    temporary = f"{out}.tmp-{os.getpid()}"
    totals = [0, 0, 0]
    notes = []
    try:
        os.makedirs(temporary)
        with open(os.path.join(temporary, MARKER), "w", encoding="utf-8") as f:
            f.write("TensorBoard event files written by scripts/tensorboard_export.py; replaced on re-export\n")
        for path, records, replaced in per_file:
            rank = re.search(r"metrics-rank-(\d{5})\.jsonl$", path).group(1)
            directory = os.path.join(temporary, f"rank-{rank}") if args.all_ranks else temporary
            counts = write_events(directory, records, SummaryWriter)
            totals = [t + c for t, c in zip(totals, counts)]
            if replaced:
                notes.append(f"{path}: {replaced} record(s) of repeated steps (a resumed run) replaced by the "
                             f"later ones")
            if not records:
                notes.append(f"{path}: no train or eval records")
        replace_directory(temporary, out)
    except OSError as e:
        shutil.rmtree(temporary, ignore_errors=True)
        fail(f"{out}: cannot write ({e.strerror or e})")
    for note in notes:
        print(f"{PROG}: {note}")
    ranks = f" from {len(per_file)} ranks" if args.all_ranks else ""
    print(f"wrote {totals[0]} scalars ({totals[1]} train steps, {totals[2]} evaluations){ranks} to {out}; "
          f"view with: tensorboard --logdir {out}")


if __name__ == "__main__":
    main()
