#!/usr/bin/env bash
# HLLM against HSTU on ML-1M (issue 16), at the same epochs: the store with
# movie texts and a tokenizer trained on them (made once), both models trained
# one after the other, each final checkpoint evaluated with per-user ranks, and
# `longrec compare` on all users and on the cold-item slice (held-out items
# with at most MAX_TARGET_EVENTS events in the dataset).
#   bash scripts/hllm_study.sh [train options...]     # e.g. --train.epochs=20
# DATA (data/ml-1m-text), RUNS (runs/ml-1m), THREADS, MAX_TARGET_EVENTS (30).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LONGREC="${LONGREC_BUILD_DIR:-build}/src/cli/longrec"
THREADS="${THREADS:-$(nproc)}"
DATA="${DATA:-data/ml-1m-text}"
RUNS="${RUNS:-runs/ml-1m}"
COLD="${MAX_TARGET_EVENTS:-30}"
SHARED="${LONGREC_SHARED_DATA:-../shared/data}"
if [ ! -d "$DATA" ]; then
  "$LONGREC" prepare --input "$SHARED/ml-1m/sequences_orig_ids.txt" --items "$SHARED/ml-1m/movies.dat" \
    --text_fields title,genres --text_style key_value --out "$DATA"
fi
[ -f "$DATA.model" ] || "$LONGREC" tokenizer train --dataset "$DATA" --vocab_size 2000 --out "$DATA.model"
for model in hllm hstu; do
  echo "== $model"
  start=$(date +%s)
  "$LONGREC" train --config "configs/ml-1m/$model.ini" --train.dataset="$DATA" --train.run_dir="$RUNS-$model" \
    --train.threads="$THREADS" $([ "$model" = hllm ] && echo "--hllm.tokenizer=$DATA.model") "$@"
  echo "$model trained in $(( $(date +%s) - start )) s"
  "$LONGREC" eval --checkpoint "$RUNS-$model" --threads "$THREADS" --ranks "$RUNS-$model.ranks.tsv"
done
"$LONGREC" compare --candidate "$RUNS-hllm.ranks.tsv" --baseline "$RUNS-hstu.ranks.tsv" \
  --metrics ndcg@10,hr@10 --max_target_events "$COLD"
