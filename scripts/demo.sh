#!/usr/bin/env bash
# The embedded default job, end to end on synthetic data: generate long-history
# users into a history store, describe it, train a small HSTU and evaluate its
# checkpoint. Later stages (multi-rank, personalization tokens, export,
# recommend) join as they land.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/build.sh
LONGREC="${LONGREC_BUILD_DIR:-build}/src/cli/longrec"
RUN="${LONGREC_DEMO_DIR:-runs/demo}"
mkdir -p "$RUN"

echo "== 1. synthetic users with long-term interests -> HDF5 history store"
"$LONGREC" synth --config configs/synth/demo.ini --out "$RUN/data" --overwrite
echo "== 2. dataset statistics"
"$LONGREC" info --dataset "$RUN/data"
echo "== 3. train a small HSTU on it (2 epochs; evaluates and checkpoints at the end)"
"$LONGREC" train --config configs/synth/hstu-demo.ini --dataset "$RUN/data" --run_dir "$RUN/train"
echo "== 4. evaluate the checkpoint by exact full ranking (leave-one-out test split)"
"$LONGREC" eval --checkpoint "$RUN/train" --part test
echo "demo finished: dataset in $RUN/data, run in $RUN/train"
