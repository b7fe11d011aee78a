#!/usr/bin/env bash
# The [eval] protocol keys end to end (issue 18, items 4, 7, 10 and evaluation
# progress): training's periodic evaluation and `longrec eval` take the same
# keys, `longrec eval` reuses the checkpoint's unless given, bad values are
# refused naming key and value, and progress lines reach a log.
#   eval_protocol_cli.sh LONGREC REPO_ROOT
set -u
LONGREC=$(realpath "$1")
ROOT=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export OMP_NUM_THREADS=1
cd "$dir" || fail "cd"
"$LONGREC" synth --config "$ROOT/configs/synth/demo.ini" --synth.users=200 --synth.items=300 --synth.mean_length=40 \
  --synth.min_length=10 --synth.max_length=100 --synth.num_parts=2 --synth.out=data > /dev/null || fail "synth"
# A window of 8 events: most histories are longer, so window and all exclusion differ.
"$LONGREC" train --config "$ROOT/configs/synth/hstu-demo.ini" --train.dataset=data --train.run_dir=run \
  --train.max_steps=20 --train.threads=1 --data.batch_size=32 --data.max_len=8 --model.max_len=8 \
  --model.num_negatives=32 --model.attention_divisor=11 --eval.cutoffs=5,10 --eval.exclude_history=window \
  --eval.target_in_history=miss > train.log 2>&1 || { tail -20 train.log; fail "train"; }
trained=$(grep "eval test epoch" train.log | tail -1)
echo "$trained" | grep -q "HR@5 [0-9.]*  HR@10 [0-9.]*  NDCG@5 [0-9.]*  NDCG@10 [0-9.]*  MRR" || { echo "$trained"; fail "cutoffs in the log"; }
grep '"kind":"eval"' run/metrics-rank-00000.jsonl | tail -1 | grep -q '"hr@5":' || fail "hr@5 not in the metrics stream"
grep -q '"attention_divisor": 11' run/ckpt/step-*/manifest.json || fail "divisor not in the manifest"

# The checkpoint's protocol unless given: the same figures as training's last evaluation.
out=$("$LONGREC" eval --checkpoint run --threads 1 2>&1) || { echo "$out"; fail "eval"; }
echo "$out" | grep -q "^300 items ranked, exclude_history window, target_in_history miss$" || { echo "$out"; fail "protocol"; }
figures() { echo "$1" | grep -o "HR@5 .*MRR [0-9.]*"; }
[ "$(figures "$out")" = "$(figures "$trained")" ] || { echo "$out"; echo "$trained"; fail "eval differs from training"; }
all=$("$LONGREC" eval --checkpoint run --threads 1 --eval.exclude_history=all --eval.cutoffs=1,5,10,20,50,200 2>&1) ||
  { echo "$all"; fail "eval all"; }
echo "$all" | grep -q "exclude_history all, target_in_history miss" || { echo "$all"; fail "given key not taken"; }
echo "$all" | grep -q "HR@1 .*HR@20 .*HR@200 .*NDCG@1 .*NDCG@200 .*MRR" || { echo "$all"; fail "cutoffs"; }

# Progress off a terminal: lines with users done, users/s and ETA.
"$LONGREC" eval --checkpoint run --threads 1 --data.batch_size=16 --eval.progress_seconds=0.000001 > progress.log 2>&1 ||
  { cat progress.log; fail "eval with progress"; }
grep -Eq "^eval test: [0-9]+/200 \([0-9.]+%\), [0-9.kM]+/s, (ETA|done in) [0-9hms]+$" progress.log ||
  { cat progress.log; fail "no progress line"; }

# Refusals name the key and the value.
expect_error() {
  local what=$1 pattern=$2
  shift 2
  local out
  out=$("$@" 2>&1) && { echo "$out"; fail "$what accepted"; }
  echo "$out" | grep -qF -- "$pattern" || { echo "$out"; fail "$what: no '$pattern'"; }
}
expect_error "cutoff 0" "config key 'eval.cutoffs': got '0,5'" "$LONGREC" eval --checkpoint run --eval.cutoffs=0,5
expect_error "unsorted cutoffs" "got '10,5': 5 does not come after 10" "$LONGREC" eval --checkpoint run --eval.cutoffs=10,5
expect_error "exclusion" "eval.exclude_history" "$LONGREC" eval --checkpoint run --eval.exclude_history=recent
expect_error "repeat policy" "eval.target_in_history" "$LONGREC" eval --checkpoint run --eval.target_in_history=drop
expect_error "train cutoffs" "eval.cutoffs" "$LONGREC" train --train.dataset=data --eval.cutoffs=5,x
expect_error "divisor on sasrec" "model.attention_divisor" "$LONGREC" train --train.dataset=data --model.backbone=sasrec \
  --model.attention_divisor=211
expect_error "negative divisor" "model.attention_divisor" "$LONGREC" train --train.dataset=data --model.attention_divisor=-1
expect_error "unrated items without an item file" "prepare.keep_unrated_items" "$LONGREC" prepare \
  --input "$ROOT/tests/eval/eval_protocol_cli.sh" --format seq --out "$dir/x" --keep_unrated_items
echo "PASS: eval_protocol_cli"
