#!/usr/bin/env bash
# Data-parallel scaling on this machine, side by side in one run: the same
# config and global batch on 1 rank x 1 thread, then on 2 ranks x 1 thread
# (`longrec bench train` under mpirun), and the throughput ratio.
#   bash scripts/scaling_bench.sh [config] [bench/train options...]
#   bash scripts/scaling_bench.sh configs/ml-1m/hstu.ini --bench.steps=30
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LONGREC="${LONGREC_BUILD_DIR:-build}/src/cli/longrec"
CONFIG="${1:-configs/ml-1m/hstu.ini}"
shift || true
ARGS=(bench train --config "$CONFIG" --train.threads=1 "$@")
one=$(OMP_NUM_THREADS=1 "$LONGREC" "${ARGS[@]}" | tail -n 1)
two=$(bash launch/mpirun.sh -n 2 -t 1 "$LONGREC" "${ARGS[@]}" | tail -n 1)
echo "| model | ranks x threads | batch | max_len | steps | samples/s | tokens/s | GFLOP/sample | achieved GFLOP/s | peak GFLOP/s | MFU | comm ms/step |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
echo "$one"
echo "$two"
# samples/s is the 6th column.
awk -F'|' -v a="$one" -v b="$two" 'BEGIN { split(a, x, "|"); split(b, y, "|");
  printf "\n2 ranks / 1 rank throughput: %.2fx\n", y[7] / x[7] }'
