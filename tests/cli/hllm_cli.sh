#!/usr/bin/env bash
# HLLM end to end through the `longrec` executable (issue 16): a store with
# item text, a tokenizer trained on it, train (the item LLM over the texts, the
# user LLM over the item vectors), eval from the checkpoint, export, recommend
# from the bundle; and the refusals: no tokenizer, a store without text,
# another tokenizer at evaluation than at training.
#   hllm_cli.sh LONGREC
set -u
LR=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

: > "$dir/ratings.dat"
: > "$dir/movies.dat"
genres=(Comedy Drama Action Horror Romance Musical)
for item in $(seq 1 60); do
  g=${genres[$((item % 6))]}
  echo "$item::Movie $item of $g ($((1950 + item % 40)))::$g" >> "$dir/movies.dat"
done
# Users stay within one genre: the text says which.
for user in $(seq 1 40); do
  for k in $(seq 0 14); do
    echo "$user::$(((user % 6) + 6 * ((user * 5 + k * 7) % 10)))::4::$((1000 + k))" >> "$dir/ratings.dat"
  done
done
sed -i 's/^\([0-9]*\)::0::/\1::60::/' "$dir/ratings.dat"
"$LR" prepare --input "$dir/ratings.dat" --items "$dir/movies.dat" --text_fields title,genres --text_style key_value \
  --out "$dir/store" --num_parts 2 > "$dir/prepare.log" 2>&1 || { cat "$dir/prepare.log"; fail "prepare"; }
"$LR" prepare --input "$dir/ratings.dat" --out "$dir/notext" --num_parts 2 > /dev/null 2>&1 || fail "prepare without text"
"$LR" tokenizer train --dataset "$dir/store" --vocab_size 320 --out "$dir/items.model" > "$dir/tok.log" 2>&1 || { cat "$dir/tok.log"; fail "tokenizer"; }

common=(--model.backbone=hllm --model.dim=16 --model.blocks=1 --model.heads=2 --model.max_len=16 --model.dropout=0
  --model.negatives=shared --model.num_negatives=16 --hllm.kv_heads=1 --hllm.item_blocks=1 --hllm.prompt=
  --hllm.max_text_len=16 --data.max_len=16 --data.batch_size=8 --train.threads=1 --train.eval_every=0)

# Refusals, each naming what is wrong.
out=$("$LR" train --dataset "$dir/store" --run_dir "$dir/r0" "${common[@]}" --train.max_steps=2 2>&1) && fail "no tokenizer accepted"
echo "$out" | grep -q "config key 'hllm.tokenizer'" || { echo "$out"; fail "missing tokenizer not named"; }
out=$("$LR" train --dataset "$dir/notext" --run_dir "$dir/r1" "${common[@]}" --hllm.tokenizer="$dir/items.model" \
  --train.max_steps=2 2>&1) && fail "a store without text accepted"
echo "$out" | grep -q "$dir/notext: the store has no item text" || { echo "$out"; fail "store without text not named"; }

# Train, evaluate, export, recommend.
out=$("$LR" train --dataset "$dir/store" --run_dir "$dir/run" "${common[@]}" --hllm.tokenizer="$dir/items.model" \
  --train.epochs=2 2>&1) || { echo "$out"; fail "train"; }
echo "$out" | grep -q "item texts: 60 items" || { echo "$out"; fail "item texts not reported"; }
echo "$out" | grep -q "eval test" || { echo "$out"; fail "no evaluation at the end"; }
[ -f "$dir/run/item_tokens.h5" ] || fail "no token cache"
out=$("$LR" eval --checkpoint "$dir/run" 2>&1) || { echo "$out"; fail "eval"; }
echo "$out" | grep -q "HR@10" || { echo "$out"; fail "eval printed no metrics"; }
# Another tokenizer than the one trained with is refused.
"$LR" tokenizer train --dataset "$dir/store" --vocab_size 310 --out "$dir/other.model" > /dev/null 2>&1 || fail "tokenizer 2"
cp "$dir/other.model" "$dir/items.model"
out=$("$LR" eval --checkpoint "$dir/run" 2>&1) && fail "a changed tokenizer accepted"
echo "$out" | grep -q "config key 'hllm.tokenizer'.*the model was trained with a tokenizer of checksum" \
  || { echo "$out"; fail "changed tokenizer not named"; }
echo "PASS: hllm cli"
