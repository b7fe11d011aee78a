#!/usr/bin/env bash
# The embedded default job, end to end on synthetic data: generate long-history
# users into a history store, describe it, and stream it through the training
# loader. Later stages (train, evaluate, export, recommend) join as they land.
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
echo "== 3. stream the store through the training loader (prepare + loader throughput on ML-1M when present)"
ML1M=../shared/data/ml-1m/sequences_orig_ids.txt
[ -f "$ML1M" ] || ML1M=""
"$LONGREC" bench data --ml1m="$ML1M" --synth_events=2000000 --synth_mean_length=500 --workdir "$RUN/bench"
echo "demo finished: dataset in $RUN/data"
