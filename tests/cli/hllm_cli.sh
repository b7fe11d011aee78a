#!/usr/bin/env bash
# HLLM end to end through the `longrec` executable (issue 16): a store with
# item text, a tokenizer trained on it, train (the item LLM over the texts, the
# user LLM over the item vectors), eval from the checkpoint, export (with the
# item LLM and its tokenizer, and without: --export.item_llm=false),
# recommend with new items from their text (--new_items) and serve them
# (POST /items); and the refusals: no tokenizer, a store without text, another
# tokenizer at evaluation than at training, new items that are duplicates,
# blank, malformed or for a bundle without the item LLM (file and line named).
#   hllm_cli.sh LONGREC PYTHON
set -u
LR=$1
PYTHON=$2
dir=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill -9 "$server" 2>/dev/null; rm -rf "$dir"' EXIT
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

# Export: by default the item LLM and the tokenizer travel in the bundle; --export.item_llm=false leaves both out.
out=$("$LR" export --checkpoint "$dir/run" --out "$dir/model.h5" 2>&1) || { echo "$out"; fail "export"; }
echo "$out" | grep -q "the item LLM and its tokenizer" || { echo "$out"; fail "export without the item LLM by default"; }
out=$("$LR" export --checkpoint "$dir/run" --out "$dir/known.h5" --export.item_llm=false 2>&1) ||
  { echo "$out"; fail "export --export.item_llm=false"; }
echo "$out" | grep -q "item LLM" && { echo "$out"; fail "--export.item_llm=false wrote the item LLM"; }
out=$("$PYTHON" "$(dirname "$0")/../../scripts/inspect_bundle.py" "$dir/model.h5" 2>&1) || { echo "$out"; fail "inspect"; }
echo "$out" | grep -q "tokenizer: .* bytes, crc32:" || { echo "$out"; fail "inspect_bundle.py: no tokenizer listed"; }
"$PYTHON" "$(dirname "$0")/../../scripts/inspect_bundle.py" "$dir/known.h5" > /dev/null || fail "inspect known.h5"

# recommend --new_items: the items are added before the requests (ranked, and usable in a history).
# Raw ids 3, 9, 15 are Horror movies; the whole catalogue is asked for, so the new ones must be in it.
printf '%s\n' '{"id": 901, "text": "title: Movie 901 of Horror (1990), genres: Horror"}' '' \
  '{"id": 902, "text": "title: Movie 902 of Comedy (1991), genres: Comedy"}' > "$dir/new.jsonl"
out=$("$LR" recommend --model "$dir/model.h5" --new_items "$dir/new.jsonl" --history 3,9,15 --k 59 2>&1) ||
  { echo "$out"; fail "recommend --new_items"; }
echo "$out" | grep -q "new.jsonl: 2 new items added (62 in the catalogue)" || { echo "$out"; fail "new items not added"; }
for id in 901 902; do echo "$out" | awk '{print $2}' | grep -qx "$id" || { echo "$out"; fail "new item $id not ranked"; }; done
out=$("$LR" recommend --model "$dir/model.h5" --new_items "$dir/new.jsonl" --history 3,901 --k 5 2>&1) ||
  { echo "$out"; fail "a new item in the history"; }
# Both bundles rank the known items alike.
a=$("$LR" recommend --model "$dir/model.h5" --history 3,9,15 --k 10 2>/dev/null) || fail "recommend model.h5"
b=$("$LR" recommend --model "$dir/known.h5" --history 3,9,15 --k 10 2>/dev/null) || fail "recommend known.h5"
[ "$a" = "$b" ] || { echo "$a"; echo "$b"; fail "the bundle without the item LLM ranks differently"; }
# Refusals, each naming the file, the line and the item.
refused() {  # refused FILE-CONTENT BUNDLE EXPECTED-TEXT
  printf '%s\n' "$1" > "$dir/refused.jsonl"
  local out code=0
  out=$("$LR" recommend --model "$2" --new_items "$dir/refused.jsonl" --history 3 --k 5 2>&1) || code=$?
  [ "$code" -eq 1 ] || { echo "$out"; fail "new items '$1': expected exit code 1, got $code"; }
  echo "$out" | grep -qF -- "$3" || { echo "$out"; fail "new items '$1': no '$3'"; }
}
refused '{"id": 5, "text": "title: Movie 5 again"}' "$dir/model.h5" "refused.jsonl:1: item 5 is already in the catalogue"
refused "$(printf '%s\n%s' '{"id": 903, "text": "title: x"}' '{"id": 903, "text": "title: y"}')" "$dir/model.h5" \
  "refused.jsonl:2: item 903 is already in the catalogue"
refused '{"id": 904, "text": "  "}' "$dir/model.h5" 'refused.jsonl:1: item 904: "text" is empty'
refused '{"id": 905, "text": ' "$dir/model.h5" "refused.jsonl:1: malformed JSON"
refused '{"id": 906}' "$dir/model.h5" 'refused.jsonl:1: "text" is missing'
refused '{"id": 907, "text": "title: Movie 907"}' "$dir/known.h5" \
  "refused.jsonl:1: item 907: cannot add items: $dir/known.h5 was exported without the item LLM (--export.item_llm=false)"

# serve: POST /items adds an item that the next request ranks; a duplicate gets 409, a blank text 400.
"$LR" serve --model "$dir/model.h5" --port 0 --port_file "$dir/port" > "$dir/serve.log" 2>&1 &
server=$!
for _ in $(seq 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
[ -s "$dir/port" ] || { cat "$dir/serve.log"; fail "serve: no port file"; }
"$PYTHON" - "$(cat "$dir/port")" <<'PY' || fail "POST /items"
import json, sys, urllib.request, urllib.error
port = sys.argv[1]
def post(path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
status, answer = post("/items", {"id": 911, "text": "title: Movie 911 of Horror (1999), genres: Horror"})
assert status == 201 and answer == {"id": 911, "internal_id": 61, "items": 61}, (status, answer)
status, answer = post("/recommend", {"history": [3, 911], "k": 59})
assert status == 200 and len(answer["items"]) == 59, (status, answer)
status, answer = post("/recommend", {"history": [3], "k": 60})
assert status == 200 and 911 in [r["item"] for r in answer["items"]], (status, answer)
status, answer = post("/items", {"id": 911, "text": "title: again"})
assert status == 409 and "item 911 is already in the catalogue" in answer["error"], (status, answer)
status, answer = post("/items", {"id": 912, "text": ""})
assert status == 400 and '"text" is empty' in answer["error"], (status, answer)
PY
kill -TERM "$server"
wait "$server" || fail "serve did not stop cleanly"
server=""

# Another tokenizer than the one trained with is refused.
"$LR" tokenizer train --dataset "$dir/store" --vocab_size 310 --out "$dir/other.model" > /dev/null 2>&1 || fail "tokenizer 2"
cp "$dir/other.model" "$dir/items.model"
out=$("$LR" eval --checkpoint "$dir/run" 2>&1) && fail "a changed tokenizer accepted"
echo "$out" | grep -q "config key 'hllm.tokenizer'.*the model was trained with a tokenizer of checksum" \
  || { echo "$out"; fail "changed tokenizer not named"; }
echo "PASS: hllm cli"
