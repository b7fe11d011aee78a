#!/usr/bin/env bash
# `longrec eval` of a checkpoint trained with the last2 split (issue 18, items 2
# and 3): the checkpoint's split is used unless --data.split is given ("valid"
# is then the second-to-last event, not the test one), and the checkpoint
# works from another directory (its dataset path is stored absolute); users
# too short for the split are counted (item 6).
#   eval_checkpoint_cli.sh LONGREC REPO_ROOT
set -u
LONGREC=$(realpath "$1")
ROOT=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export OMP_NUM_THREADS=1
mkdir -p "$dir/work" "$dir/elsewhere"
cd "$dir/work" || fail "cd"
"$LONGREC" synth --config "$ROOT/configs/synth/demo.ini" --synth.users=200 --synth.items=300 --synth.mean_length=40 \
  --synth.min_length=10 --synth.max_length=100 --synth.num_parts=2 --synth.out=data > /dev/null || fail "synth"
# A relative dataset path, as users write it.
"$LONGREC" train --config "$ROOT/configs/synth/hstu-demo.ini" --train.dataset=data --train.run_dir=run \
  --train.max_steps=20 --train.threads=1 --data.split=last2 --data.batch_size=32 --model.num_negatives=32 > "$dir/train.log" 2>&1 ||
  { tail -20 "$dir/train.log"; fail "train"; }
grep -q "\"dataset\": \"$dir/work/data\"" run/ckpt/step-*/manifest.json || { grep dataset run/ckpt/step-*/manifest.json; fail "dataset path not absolute"; }
cd "$dir/elsewhere" || fail "cd"
metrics() { echo "$1" | grep "NDCG@10" ; }
valid=$("$LONGREC" eval --checkpoint "$dir/work/run" --part valid --threads 1 2>&1) || { echo "$valid"; fail "eval valid from another directory"; }
test=$("$LONGREC" eval --checkpoint "$dir/work/run" --part test --threads 1 2>&1) || { echo "$test"; fail "eval test"; }
echo "$valid" | grep -q "valid split (last2 protocol)" || { echo "$valid"; fail "the checkpoint's split not used"; }
[ "$(metrics "$valid")" != "$(metrics "$test")" ] || { echo "$valid"; echo "$test"; fail "valid equals test under last2"; }
loo=$("$LONGREC" eval --checkpoint "$dir/work/run" --part valid --threads 1 --data.split=loo 2>&1) || { echo "$loo"; fail "eval loo"; }
echo "$loo" | grep -q "valid split (loo protocol)" || { echo "$loo"; fail "--data.split not taken"; }
[ "$(metrics "$loo")" = "$(metrics "$("$LONGREC" eval --checkpoint "$dir/work/run" --part test --threads 1 --data.split=loo 2>&1)")" ] ||
  fail "under loo valid and test are the same event"
echo "$valid" | grep "NDCG@10"

# Users too short for the split are counted, not silently dropped (issue 18, item 6):
# 60 users, 5 with one event, 7 with two, the rest 5-30.
python3 -c "
import random
random.seed(1)
with open('$dir/short.txt', 'w') as f:
    for u in range(1, 61):
        n = 1 if u <= 5 else 2 if u <= 12 else random.randint(5, 30)
        f.write(str(u) + ' ' + ' '.join(str(random.randint(1, 40)) for _ in range(n)) + '\n')
"
"$LONGREC" prepare --input "$dir/short.txt" --format seq --out "$dir/short" > /dev/null 2>&1 || fail "prepare short"
"$LONGREC" train --config "$ROOT/configs/synth/hstu-demo.ini" --train.dataset="$dir/short" --train.run_dir="$dir/short-run" \
  --train.max_steps=3 --train.threads=1 --data.split=last2 --data.batch_size=16 --model.num_negatives=8 > /dev/null 2>&1 ||
  fail "train short"
out=$("$LONGREC" eval --checkpoint "$dir/short-run" --part valid --threads 1 2>&1) || { echo "$out"; fail "eval short valid"; }
echo "$out" | grep -q "^48 users, valid split (last2 protocol)" || { echo "$out"; fail "valid users"; }
echo "$out" | grep -q "^12 users not scored: too short for the last2 split's valid target (fewer than 3 events)" ||
  { echo "$out"; fail "valid unscored count"; }
out=$("$LONGREC" eval --checkpoint "$dir/short-run" --part test --threads 1 2>&1) || { echo "$out"; fail "eval short test"; }
echo "$out" | grep -q "^5 users not scored: too short for the last2 split's test target (fewer than 2 events)" ||
  { echo "$out"; fail "test unscored count"; }
echo "PASS: eval_checkpoint_cli"
