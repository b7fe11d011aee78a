#!/usr/bin/env bash
# Fixed-seed runs whose every step's loss and final metrics two builds must
# share (a refactor that claims "behaviour unchanged" runs this with the old
# and the new binary, then scripts/compare_runs.py):
#   ML-1M HSTU (configs/ml-1m/hstu.ini), 3 epochs;
#   the synthetic demo store: HSTU (configs/synth/hstu-demo.ini) 3 epochs and
#   HSTU with personalization tokens (configs/synth/hstu-pt-demo.ini) 1 epoch.
# One intra-op thread, so that reductions run in one order.
#   bash scripts/equivalence_check.sh BINARY OUT_DIR [DATA_DIR]
# DATA_DIR (default OUT_DIR/data) holds the prepared stores; give two runs the
# same one so that they read the same bytes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LONGREC="$(realpath "$1")"
OUT="$2"
DATA="${3:-$OUT/data}"
ML1M="${LONGREC_ML1M:-$ROOT/../shared/data/ml-1m/sequences_orig_ids.txt}"
mkdir -p "$OUT" "$DATA"
cd "$ROOT"
if [ ! -f "$DATA/ml-1m/meta.h5" ]; then "$LONGREC" prepare --input "$ML1M" --out "$DATA/ml-1m"; fi
if [ ! -f "$DATA/synth/meta.h5" ]; then "$LONGREC" synth --config configs/synth/demo.ini --out "$DATA/synth"; fi
common=(--train.threads=1 --train.log_every=1 --train.eval_every=0)
"$LONGREC" train --config configs/ml-1m/hstu.ini --train.dataset="$DATA/ml-1m" --train.run_dir="$OUT/ml-1m-hstu" \
  --train.epochs=3 "${common[@]}"
"$LONGREC" train --config configs/synth/hstu-demo.ini --train.dataset="$DATA/synth" --train.run_dir="$OUT/synth-hstu" \
  --train.epochs=3 "${common[@]}"
"$LONGREC" train --config configs/synth/hstu-pt-demo.ini --train.dataset="$DATA/synth" \
  --train.run_dir="$OUT/synth-hstu-pt" --train.epochs=1 "${common[@]}"
echo "runs in $OUT: ml-1m-hstu synth-hstu synth-hstu-pt"
