#!/usr/bin/env bash
# One scaling-law study end to end, resumable (run it again after an
# interruption: finished points are skipped, an interrupted one resumes from
# its checkpoint): the synthetic data (when missing), the plan, every point,
# results.csv, and the fits and plots of scripts/sweep_fit.py.
#   scripts/sweep_study.sh DESCRIPTOR SYNTH_CONFIG DATA_DIR PLAN_DIR [sweep_fit.py options...]
#   scripts/sweep_study.sh configs/sweeps/hstu-size.ini configs/synth/scaling.ini runs/sweeps/scaling-data \
#       runs/sweeps/hstu-size
# Environment: LONGREC (default build/src/cli/longrec), THREADS (intra-op threads, default: all cores).
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 DESCRIPTOR SYNTH_CONFIG DATA_DIR PLAN_DIR [sweep_fit.py options...]" >&2; exit 2; }
DESCRIPTOR=$1 SYNTH=$2 DATA=$3 PLAN=$4
shift 4
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LONGREC="${LONGREC:-$ROOT/build/src/cli/longrec}"
THREADS="${THREADS:-$(nproc)}"
[ -x "$LONGREC" ] || { echo "$LONGREC: not built (scripts/build.sh, or set LONGREC)" >&2; exit 2; }
if [ ! -f "$DATA/meta.h5" ]; then
  "$LONGREC" synth --config "$SYNTH" --synth.out="$DATA"
fi
"$LONGREC" sweep plan --sweep "$DESCRIPTOR" --out "$PLAN"
start=$(date +%s)
"$LONGREC" sweep run --plan "$PLAN" --all --threads "$THREADS"
echo "sweep run: $(( $(date +%s) - start )) s"
"$LONGREC" sweep collect --plan "$PLAN"
if [ -f "$ROOT/scripts/sweep_fit.py" ]; then
  "$ROOT/.venv/bin/python" "$ROOT/scripts/sweep_fit.py" "$PLAN" "$@"
fi
