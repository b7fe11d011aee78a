#!/usr/bin/env bash
# The personalization-token study of docs/results.md, one variant after the
# other: full-sequence HSTU, recent-window truncation, tokens with one group
# and with several groups; then each final checkpoint evaluated on all users
# and on users with long histories.
#   bash scripts/pt_study.sh ml-1m      # needs data/ml-1m (longrec prepare, see README)
#   bash scripts/pt_study.sh synth      # generates data/synth-long first
# Extra arguments go to every `longrec train` (e.g. --train.epochs=10).
# SYNTH_OUT / SYNTH_ARGS: where the synthetic set goes and extra `longrec
# synth` options (a smaller set: SYNTH_OUT=data/synth-2k SYNTH_ARGS="--users
# 2000", then pass --train.dataset=data/synth-2k).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SET="${1:?usage: scripts/pt_study.sh ml-1m|synth [train options...]}"
shift
LONGREC="${LONGREC_BUILD_DIR:-build}/src/cli/longrec"
THREADS="${THREADS:-$(nproc)}"
case "$SET" in
  ml-1m) CONFIGS=configs/ml-1m/hstu-pt; RUNS=runs/ml-1m-pt; LONG=512 ;;
  synth)
    CONFIGS=configs/synth/pt; RUNS=runs/synth-pt; LONG=1000
    SYNTH_OUT="${SYNTH_OUT:-data/synth-long}"
    # shellcheck disable=SC2086
    [ -d "$SYNTH_OUT" ] || "$LONGREC" synth --config configs/synth/long-interest.ini --out "$SYNTH_OUT" ${SYNTH_ARGS:-} ;;
  *) echo "unknown study '$SET': expected ml-1m or synth" >&2; exit 2 ;;
esac
for variant in full recent 1group groups; do
  echo "== $SET: $variant"
  "$LONGREC" train --config "$CONFIGS-$variant.ini" --train.threads="$THREADS" "$@"
  "$LONGREC" eval --checkpoint "$RUNS-$variant" --threads "$THREADS" --long_history "$LONG" \
    --output "$RUNS-study.jsonl"
done
