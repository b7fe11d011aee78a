#!/usr/bin/env bash
# The embedded default job: the whole product on synthetic data in a few
# minutes on 2 cores (after the build). Synthetic users whose next item often
# belongs to an interest seen long ago -> HDF5 history store -> a small HSTU
# over the newest 64 events trained on 2 MPI ranks -> its evaluation table ->
# the same model with personalization tokens over 512 events -> paired test of
# the two on the users with long histories -> export -> `longrec recommend`
# -> `longrec serve` answering one HTTP request -> a PNG of the training
# curves -> a summary of what was produced and where.
#
#   bash scripts/demo.sh            # builds the `longrec` binary only, then runs
# Environment: LONGREC_DEMO_DIR (default runs/demo), LONGREC_BIN (a built
# binary: skips the build), LONGREC_DEMO_QUICK=1 (a smaller, shorter run for
# the test of the stages, tests/demo/demo_stages.sh; its numbers mean nothing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -z "${LONGREC_BIN:-}" ]; then
  LONGREC_BUILD_TARGETS=longrec bash scripts/build.sh
  LONGREC="${LONGREC_BUILD_DIR:-build}/src/cli/longrec"
else
  LONGREC="$LONGREC_BIN"
  [ -x .venv/bin/python ] || { echo "demo: .venv missing: run bash scripts/setup.sh first" >&2; exit 1; }
fi
PY="$ROOT/.venv/bin/python"
RUN="${LONGREC_DEMO_DIR:-runs/demo}"
SYNTH=(--config configs/demo/data.ini)
TRAIN_EXTRA=()
if [ "${LONGREC_DEMO_QUICK:-0}" = 1 ]; then
  SYNTH+=(--synth.users=200 --synth.items=300 --synth.min_length=100 --synth.mean_length=300 --synth.max_length=1200)
  TRAIN_EXTRA=(--train.epochs=2 --train.log_every=1)
fi
mkdir -p "$RUN"
rm -rf "$RUN/recent" "$RUN/tokens" "$RUN/model.h5" "$RUN"/*.tsv "$RUN"/*.jsonl "$RUN/serve.log"

declare -a STAGE_NAMES=() STAGE_SECONDS=()
STAGE_START=0
stage() {  # stage "N. what it shows"
  stage_end
  echo
  echo "== $1"
  STAGE_NAMES+=("$1")
  STAGE_START=$(date +%s%N)
}
stage_end() {
  if [ "${#STAGE_NAMES[@]}" -gt "${#STAGE_SECONDS[@]}" ]; then
    STAGE_SECONDS+=("$((($(date +%s%N) - STAGE_START) / 1000000))")
  fi
}
# Training prints its resolved configuration (every key, value and source) first:
# the run directory's log keeps it; the demo shows the rest.
hide_config_table() { awk '/^resolved config:/ {skip = 1; next} skip && /^$/ {skip = 0; next} !skip'; }
DEMO_START=$(date +%s%N)

stage "1. synthetic users -> HDF5 history store: each user has 8 long-term interests and deep repeats, mostly unseen in the newest 64 events"
"$LONGREC" synth "${SYNTH[@]}" --out "$RUN/data" --overwrite

stage "2. the store's statistics: users, items, events, history lengths"
INFO=$("$LONGREC" info --dataset "$RUN/data")
sed -n '/^dataset/,$p' <<< "$INFO"
ITEMS=$(awk '$1 == "items" {print $2}' <<< "$INFO")

stage "3. train HSTU over the newest 64 events (truncation) on 2 MPI ranks, the item table sharded between them"
bash launch/mpirun.sh -n 2 -t 1 "$LONGREC" train --config configs/demo/recent.ini --dataset "$RUN/data" \
  --run_dir "$RUN/recent" --train.threads=1 "${TRAIN_EXTRA[@]}" | hide_config_table
test -f "$RUN/recent/ckpt/LATEST" || { echo "demo: training on 2 ranks wrote no checkpoint" >&2; exit 1; }

stage "4. evaluation table of the 2-rank checkpoint, in one process: exact ranking of all $ITEMS items, leave-one-out test"
"$LONGREC" eval --checkpoint "$RUN/recent" --long_history 512 --threads 2 --ranks "$RUN/recent.tsv" \
  --output "$RUN/eval.jsonl"

stage "5. the same model with personalization tokens: 512 events, the oldest 448 compressed into 4 tokens per 64 events"
bash launch/mpirun.sh -n 2 -t 1 "$LONGREC" train --config configs/demo/tokens.ini --dataset "$RUN/data" \
  --run_dir "$RUN/tokens" --train.threads=1 "${TRAIN_EXTRA[@]}" | hide_config_table
"$LONGREC" eval --checkpoint "$RUN/tokens" --long_history 512 --threads 2 --ranks "$RUN/tokens.tsv" \
  --output "$RUN/eval.jsonl"

stage "6. tokens vs truncation, paired on the same users: difference, 95% bootstrap interval, randomization p-value"
"$LONGREC" compare --candidate "$RUN/tokens.tsv" --baseline "$RUN/recent.tsv" --long_history 512

stage "7. export the token model to a self-contained serving bundle"
"$LONGREC" export --checkpoint "$RUN/tokens" --out "$RUN/model.h5" --overwrite

stage "8. longrec recommend: top 10 for the user with the longest history (raw item ids; the held-out next item on the line above)"
HISTORY=$("$PY" scripts/user_history.py "$RUN/data" --longest)
"$LONGREC" recommend --model "$RUN/model.h5" --history "$HISTORY" --k 10 --threads 2

stage "9. longrec serve: one HTTP request answered with curl, then the server stopped"
"$PY" scripts/user_history.py "$RUN/data" --longest --last 512 --json --k 5 > "$RUN/request.json" 2> /dev/null
rm -f "$RUN/serve.port"
"$LONGREC" serve --model "$RUN/model.h5" --port 0 --port_file "$RUN/serve.port" > "$RUN/serve.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2> /dev/null || true' EXIT
for _ in $(seq 1 300); do [ -s "$RUN/serve.port" ] || ! kill -0 "$SERVER" 2> /dev/null && break; sleep 0.1; done
[ -s "$RUN/serve.port" ] || { cat "$RUN/serve.log" >&2; echo "demo: the server did not start" >&2; exit 1; }
PORT=$(cat "$RUN/serve.port")
echo "curl -s -X POST http://127.0.0.1:$PORT/recommend -d @$RUN/request.json"
curl -sS --fail-with-body -X POST "http://127.0.0.1:$PORT/recommend" -H 'Content-Type: application/json' \
  -d @"$RUN/request.json"
echo
kill -TERM "$SERVER"
wait "$SERVER" || { cat "$RUN/serve.log" >&2; echo "demo: the server did not stop cleanly" >&2; exit 1; }
trap - EXIT
echo "server stopped (log: $RUN/serve.log)"

stage "10. training curves as a PNG: loss, learning rate and evaluation metrics over steps"
"$PY" scripts/plot_run.py "$RUN/recent" --out "$RUN/recent-curves.png"
"$PY" scripts/plot_run.py "$RUN/tokens" --out "$RUN/tokens-curves.png"
stage_end

TOTAL_MS=$((($(date +%s%N) - DEMO_START) / 1000000))
echo
echo "== summary"
"$PY" - "$RUN/eval.jsonl" "$ITEMS" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
items = int(sys.argv[2])
chance = 10 / items
for name, row in zip(("truncation (newest 64 events)", "personalization tokens (512 events)"), rows):
    print(f"{name:38s} HR@10 {row['hr@10']:.4f} ({row['hr@10'] / chance:.0f}x chance, {chance:.4f}),"
          f" NDCG@10 {row['ndcg@10']:.4f}; users with > 512 events: NDCG@10 {row['hist>512/ndcg@10']:.4f}")
EOF
cat <<EOF
produced under $RUN:
  data/               the history store (longrec info --dataset $RUN/data)
  recent/, tokens/    run directories: train logs, metrics-rank-*.jsonl, checkpoints (ckpt/LATEST)
  eval.jsonl          both evaluations; recent.tsv, tokens.tsv: per-user ranks (longrec compare)
  model.h5            the serving bundle (scripts/inspect_bundle.py $RUN/model.h5)
  recent-curves.png, tokens-curves.png   training curves
stage timings (s):
EOF
for i in "${!STAGE_NAMES[@]}"; do
  printf '  %4d.%d  %s\n' $((STAGE_SECONDS[i] / 1000)) $((STAGE_SECONDS[i] % 1000 / 100)) "${STAGE_NAMES[$i]%%:*}"
done
printf 'demo finished in %d s after the build\n' $((TOTAL_MS / 1000))
