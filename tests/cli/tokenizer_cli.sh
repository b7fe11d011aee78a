#!/usr/bin/env bash
# `longrec tokenizer` end to end (issue 15): a store prepared with item text
# (movies.dat-like, accents, CJK, emoji, some items without text), train,
# encode with the same ids as Python's sentencepiece, and the refusals that
# need a store (vocab too large for the texts, a store without text).
#   tokenizer_cli.sh LONGREC PYTHON
set -u
LR=$1
PY=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

: > "$dir/ratings.dat"
: > "$dir/movies.dat"
words=(Toy Story Café Crème Amélie 東京 タワー Ghost River Island Dream Wars Señor Brûlée 🙂 Garden Machine Night)
for item in $(seq 1 120); do
  w1=${words[$((item % 18))]}; w2=${words[$(((item / 3) % 18))]}; w3=${words[$(((item / 7) % 18))]}
  # items 101..120 have no text line
  if [ "$item" -le 100 ]; then echo "$item::$w1 $w2 of the $w3 ($((1950 + item % 60)))::Comedy|Drama" >> "$dir/movies.dat"; fi
done
for user in $(seq 1 30); do
  for k in $(seq 0 11); do
    echo "$user::$(((user * 7 + k * 13) % 120 + 1))::4::$((1000 + k))" >> "$dir/ratings.dat"
  done
done
"$LR" prepare --input "$dir/ratings.dat" --items "$dir/movies.dat" --out "$dir/store" --num_parts 2 > "$dir/prepare.log" 2>&1 \
  || { cat "$dir/prepare.log"; fail "prepare with items"; }
"$LR" prepare --input "$dir/ratings.dat" --out "$dir/notext" --num_parts 2 > /dev/null 2>&1 || fail "prepare without items"

out=$("$LR" tokenizer train --dataset "$dir/store" --vocab_size 320 --out "$dir/items.model" 2>&1) \
  || { echo "$out"; fail "train"; }
echo "$out"
echo "$out" | grep -q "vocab size 320" || fail "vocab size not printed"
echo "$out" | grep -q "checksum crc32:[0-9a-f]\{8\}" || fail "checksum not printed"
echo "$out" | grep -q "items without text: 20" || fail "items without text not counted"
[ -f "$dir/items.model" ] || fail "no model written"
ls -a "$dir" | grep -q "items.model.t" && fail "temporary left behind"

# Same ids as Python's sentencepiece for each string.
for s in "café crème" "東京タワー" "🙂👍" "" "  two   spaces  " "Toy Story (1995)"; do
  cpp=$("$LR" tokenizer encode --model "$dir/items.model" --text "$s") || fail "encode '$s'"
  py=$("$PY" -c 'import sys, sentencepiece as spm; print(" ".join(map(str, spm.SentencePieceProcessor(model_file=sys.argv[1]).encode(sys.argv[2]))))' "$dir/items.model" "$s") \
    || fail "python encode '$s'"
  [ "$cpp" = "$py" ] || fail "'$s': C++ '$cpp' vs Python '$py'"
done

# The token cache: written, reused, rebuilt for another tokenizer.
out=$("$LR" tokenizer cache --dataset "$dir/store" --model "$dir/items.model" --out "$dir/tokens.h5" 2>&1) \
  || { echo "$out"; fail "cache"; }
echo "$out" | grep -q "^wrote .*: 120 items" || { echo "$out"; fail "cache not written"; }
out=$("$LR" tokenizer cache --dataset "$dir/store" --model "$dir/items.model" --out "$dir/tokens.h5" 2>&1) \
  || { echo "$out"; fail "cache again"; }
echo "$out" | grep -q "^reused " || { echo "$out"; fail "cache not reused"; }
"$LR" tokenizer train --dataset "$dir/store" --vocab_size 320 --model_type bpe --out "$dir/bpe.model" > /dev/null 2>&1 \
  || fail "train bpe"
out=$("$LR" tokenizer cache --dataset "$dir/store" --model "$dir/bpe.model" --out "$dir/tokens.h5" 2>&1) \
  || { echo "$out"; fail "cache bpe"; }
echo "$out" | grep -q "rebuilt because the tokenizer changed" || { echo "$out"; fail "cache not rebuilt"; }

# Refusals that need a store.
out=$("$LR" tokenizer train --dataset "$dir/store" --vocab_size 100000 --out "$dir/big.model" 2>&1); rc=$?
[ $rc -eq 2 ] || { echo "$out"; fail "too large a vocab: exit $rc, expected 2"; }
echo "$out" | grep -q "config key 'tokenizer.vocab_size'" || { echo "$out"; fail "too large a vocab: key not named"; }
[ -e "$dir/big.model" ] && fail "refused training left a model"
out=$("$LR" tokenizer train --dataset "$dir/notext" --vocab_size 300 --out "$dir/x.model" 2>&1); rc=$?
[ $rc -eq 2 ] || { echo "$out"; fail "store without text: exit $rc, expected 2"; }
echo "$out" | grep -q "config key 'tokenizer.dataset': $dir/notext: the store has no item text.*--items" \
  || { echo "$out"; fail "store without text: message"; }
echo "PASS: tokenizer cli"
