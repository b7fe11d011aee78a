#!/usr/bin/env bash
# What starting the next step's item-id exchange during the current step
# saves (train.route_ahead): the same 2-rank training (1 thread per rank),
# with and without it, alternating, in one run; prints each run's
# step-interval line (samples/s, comm ms/step) and the medians.
#   bash scripts/route_ahead_bench.sh [config] [pairs] [train options...]
#   bash scripts/route_ahead_bench.sh configs/ml-1m/hstu.ini 3 --train.dataset=data/ml-1m
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LONGREC="${LONGREC_BUILD_DIR:-build}/src/cli/longrec"
CONFIG="${1:-configs/ml-1m/hstu.ini}"
PAIRS="${2:-3}"
shift 2 || shift $#
RUN="$(mktemp -d)"
trap 'rm -rf "$RUN"' EXIT
STEPS=40
line_of() {  # the log line of the last interval (steps 11..40: the first 10 warm up)
  bash launch/mpirun.sh -n 2 -t 1 "$LONGREC" train --config "$CONFIG" --train.threads=1 --train.max_steps=$STEPS \
    --train.log_every=30 --train.eval_every=0 --train.run_dir="$RUN/$1" "$@" 2>&1 | grep -E "step +$STEPS epoch" | tail -n 1
}
for i in $(seq 1 "$PAIRS"); do
  for ahead in true false; do
    echo "route_ahead=$ahead run $i: $(line_of "r$i-$ahead" --train.route_ahead=$ahead "$@")"
    rm -rf "$RUN/r$i-$ahead"
  done
done | tee "$RUN/lines"
awk '{ split($0, a, "route_ahead="); split(a[2], b, " "); mode = b[1];
       for (k = 1; k <= NF; ++k) { if ($k == "samples/s") s[mode] = s[mode] " " $(k-1); if ($k == "ms/step") c[mode] = c[mode] " " $(k-1) } }
     END { for (m in s) printf "route_ahead=%s: samples/s%s | comm ms/step%s\n", m, s[m], c[m] }' "$RUN/lines"
