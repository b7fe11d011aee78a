#!/usr/bin/env bash
# scripts/tensorboard_export.py: a fabricated run's metrics JSONL (a resume that
# repeats steps, non-numeric fields, a torn last line) to TensorBoard event
# files, read back with TensorBoard's own EventAccumulator: exact tags, counts,
# steps, float32 values and wall times; re-export replaces the old one; all
# ranks; the refusals (malformed line, a foreign --out, no run).
#   tensorboard_export.sh PYTHON SCRIPT
# Exit 77 (skipped) when PYTHON lacks torch or tensorboard.
set -u
PY=$1
SCRIPT=$2
[ -x "$PY" ] || { echo "SKIP: $PY not found (bash scripts/setup.sh makes .venv)"; exit 77; }
"$PY" -c "import torch.utils.tensorboard, tensorboard.backend.event_processing.event_accumulator" 2>/dev/null \
  || { echo "SKIP: torch or tensorboard missing in $PY (bash scripts/setup.sh installs them)"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir "$dir/run"
m="$dir/run/metrics-rank-00000.jsonl"
cat > "$m" <<'EOF'
{"comm_ms_per_step":0.07,"epoch":0.0,"grad_norm":1.67,"kind":"train","loss":6.5,"lr":0.001,"mfu":0.089,"samples_per_s":392.1,"step":20.0,"time":1796069850.35}
{"epoch":0.0,"grad_norm":1.5,"kind":"train","loss":6.25,"lr":0.001,"step":40.0,"time":1796069851.5}
{"epoch":1.0,"hr@10":0.277,"kind":"eval","mrr":0.134,"ndcg@10":0.156,"step":40.0,"time":1796069852.25,"users":6040.0}
{"epoch":1.0,"kind":"train","loss":6.0,"lr":0.001,"step":60.0,"time":1796069853.0}
{"epoch":1.0,"flag":true,"kind":"train","loss":5.875,"lr":0.0009,"missing":null,"note":"resumed","step":60.0,"time":1796069900.75}
{"epoch":1.0,"flops":1.5e12,"kind":"train","loss":5.5,"lr":0.0008,"samples":2560,"seconds":2.5,"step":80,"steps":20,"time":1796069901.5,"tokens":512000}
{"epoch":2.0,"hr@10":0.3,"kind":"eval","ndcg@10":0.171,"step":80.0,"time":1796069902.0}
EOF
printf '{"kind":"eval","step":100,"hr' >> "$m"   # torn by a kill mid-write

out=$("$PY" "$SCRIPT" "$dir/run" 2>&1) || { echo "$out"; fail "export"; }
echo "$out"
tb="$dir/run/tensorboard"
echo "$out" | grep -qxF "wrote 24 scalars (4 train steps, 2 evaluations) to $tb; view with: tensorboard --logdir $tb" || fail "summary"
echo "$out" | grep -qF "metrics-rank-00000.jsonl:8: torn last line skipped" || fail "torn line not named"
echo "$out" | grep -qF "metrics-rank-00000.jsonl: 1 record(s) of repeated steps (a resumed run) replaced by the later ones" || fail "repeat not reported"
[ "$(ls "$tb" | grep -c '^events\.out\.tfevents\.')" = 1 ] || fail "expected one event file in $tb"

# TensorBoard's reader is the reference: every (tag, step, value, wall time).
check_events() {
"$PY" - "$@" <<'EOF'
import sys
import numpy as np
from tensorboard.backend.event_processing import event_accumulator
path, which = sys.argv[1], sys.argv[2]
acc = event_accumulator.EventAccumulator(path, size_guidance={event_accumulator.SCALARS: 0})
acc.Reload()
f = lambda x: float(np.float32(x))  # scalars are stored as float32
t = [1796069850.35, 1796069851.5, 1796069852.25, 1796069900.75, 1796069901.5, 1796069902.0]
if which == "rank0":
    want = {
        "train/comm_ms_per_step": [(20, f(0.07), t[0])],
        "train/grad_norm": [(20, f(1.67), t[0]), (40, f(1.5), t[1])],
        "train/loss": [(20, 6.5, t[0]), (40, 6.25, t[1]), (60, 5.875, t[3]), (80, 5.5, t[4])],
        "train/lr": [(20, f(0.001), t[0]), (40, f(0.001), t[1]), (60, f(0.0009), t[3]), (80, f(0.0008), t[4])],
        "train/mfu": [(20, f(0.089), t[0])],
        "train/samples_per_s": [(20, f(392.1), t[0])],
        "train/flops": [(80, f(1.5e12), t[4])],
        "train/samples": [(80, 2560.0, t[4])],
        "train/seconds": [(80, 2.5, t[4])],
        "train/steps": [(80, 20.0, t[4])],
        "train/tokens": [(80, 512000.0, t[4])],
        "eval/hr@10": [(40, f(0.277), t[2]), (80, f(0.3), t[5])],
        "eval/mrr": [(40, f(0.134), t[2])],
        "eval/ndcg@10": [(40, f(0.156), t[2]), (80, f(0.171), t[5])],
        "eval/users": [(40, 6040.0, t[2])],
    }
else:
    want = {"train/loss": [(20, f(7.1), 1796069850.5), (40, f(6.9), 1796069851.75)]}
got = {tag: [(e.step, e.value, e.wall_time) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
bad = False
for tag in sorted(set(want) | set(got)):
    w, g = want.get(tag), got.get(tag)
    same = w is not None and g is not None and len(w) == len(g) and all(
        ws == gs and wv == gv and abs(wt - gt) < 1e-6 for (ws, wv, wt), (gs, gv, gt) in zip(w, g))
    if not same:
        print(f"{tag}: expected {w}, read {g}")
        bad = True
n = sum(len(v) for v in got.values())
print(f"{path}: {len(got)} tags, {n} scalars read back{' (MISMATCH)' if bad else ', all as expected'}")
sys.exit(1 if bad else 0)
EOF
}
check_events "$tb" rank0 || fail "event contents"

# Re-export: the previous export replaced whole (still one event file), no temporaries.
sleep 1
out=$("$PY" "$SCRIPT" "$dir/run" 2>&1) || { echo "$out"; fail "re-export"; }
[ "$(ls "$tb" | grep -c '^events\.out\.tfevents\.')" = 1 ] || fail "re-export appended instead of replacing"
ls -A "$dir/run" | grep -qE "\.(tmp|old)-" && fail "temporary left behind"
check_events "$tb" rank0 || fail "event contents after re-export"

# All ranks: one TensorBoard run per rank.
cat > "$dir/run/metrics-rank-00001.jsonl" <<'EOF'
{"kind":"train","loss":7.1,"step":20,"time":1796069850.5}
{"kind":"train","loss":6.9,"step":40,"time":1796069851.75}
EOF
out=$("$PY" "$SCRIPT" "$dir/run" --all-ranks --out "$dir/all" 2>&1) || { echo "$out"; fail "--all-ranks"; }
echo "$out" | grep -qxF "wrote 26 scalars (6 train steps, 2 evaluations) from 2 ranks to $dir/all; view with: tensorboard --logdir $dir/all" || { echo "$out"; fail "--all-ranks summary"; }
check_events "$dir/all/rank-00000" rank0 || fail "rank 0 of --all-ranks"
check_events "$dir/all/rank-00001" rank1 || fail "rank 1 of --all-ranks"

# Refusals.
mkdir "$dir/mine" && echo keep > "$dir/mine/notes.txt"
out=$("$PY" "$SCRIPT" "$dir/run" --out "$dir/mine" 2>&1) && fail "a foreign --out replaced"
echo "$out" | grep -qF "$dir/mine: exists and is not an earlier export of this script" || { echo "$out"; fail "foreign --out"; }
[ "$(cat "$dir/mine/notes.txt")" = keep ] || fail "a foreign --out touched"
out=$("$PY" "$SCRIPT" "$dir/nothing" 2>&1) && fail "missing run accepted"
echo "$out" | grep -qF "$dir/nothing: not a run directory" || { echo "$out"; fail "missing run"; }
sed -i '3s/.*/{"kind":"eval","step":40,"hr@10":0.2/' "$m"
out=$("$PY" "$SCRIPT" "$dir/run" 2>&1) && fail "malformed line accepted"
echo "$out" | grep -qF "metrics-rank-00000.jsonl:3: not a JSON object" || { echo "$out"; fail "malformed line"; }
check_events "$tb" rank0 >/dev/null || fail "a refused export touched the previous one"
echo "PASS: tensorboard_export"
