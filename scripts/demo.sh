#!/usr/bin/env bash
# The embedded default job, end to end on synthetic data: generate long-history
# users into a history store, describe it, train a small HSTU and evaluate its
# checkpoint, then the same model with personalization tokens over a longer
# history. Training runs on 2 MPI ranks (the item table sharded between them);
# the checkpoint they write is evaluated by one process. Later stages (export,
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
echo "== 3. train a small HSTU on it on 2 MPI ranks, 1 thread each (2 epochs; evaluates and checkpoints at the end)"
bash launch/mpirun.sh -n 2 -t 1 "$LONGREC" train --config configs/synth/hstu-demo.ini --dataset "$RUN/data" \
  --run_dir "$RUN/train" --train.threads=1
echo "== 4. evaluate the 2-rank checkpoint in one process (exact full ranking, leave-one-out test split)"
"$LONGREC" eval --checkpoint "$RUN/train" --part test
echo "== 5. the same model with personalization tokens: 512 events, the oldest 384 compressed into 12 tokens"
"$LONGREC" train --config configs/synth/hstu-pt-demo.ini --dataset "$RUN/data" --run_dir "$RUN/train-pt"
"$LONGREC" eval --checkpoint "$RUN/train-pt" --part test --long_history 1000
echo "demo finished: dataset in $RUN/data, runs in $RUN/train and $RUN/train-pt"
