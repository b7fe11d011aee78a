"""Reading a longrec run's metrics JSONL (RUN/metrics-rank-NNNNN.jsonl), shared by
scripts/plot_run.py and scripts/tensorboard_export.py.

Each line is one JSON object with "kind" ("train" | "eval") and "step". A torn
last line (a kill mid-write) is skipped with a warning naming file:line; any
other malformed line is refused by file:line."""
import json
import sys


def metrics_records(path, prog, fail):
    """Yields (line number, record) for every record of `path`; `fail(message)` does not return."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except OSError as e:
        fail(f"{path}: cannot read the run's metrics ({e.strerror})")
    except UnicodeDecodeError as e:
        fail(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})")
    last = len(lines) - 1
    while last >= 0 and lines[last] == "":
        last -= 1
    for number, line in enumerate(lines[: last + 1], start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if number == last + 1:  # a torn last line
                print(f"{prog}: {path}:{number}: torn last line skipped", file=sys.stderr)
                continue
            fail(f"{path}:{number}: not a JSON object ({e.msg})")
        if not isinstance(row, dict) or "kind" not in row or "step" not in row:
            fail(f"{path}:{number}: expected an object with 'kind' and 'step'")
        yield number, row
