#!/usr/bin/env bash
# `longrec serve` as a user runs it: on a free loopback port, answering over
# HTTP what `longrec recommend` prints, refusing a bad request with a 400 and
# going on, and exiting 0 on SIGTERM.
#   tests/serve/serve_cli.sh LONGREC PYTHON
set -euo pipefail
LONGREC="$1"; PYTHON="$2"
dir="$(mktemp -d)"
server=""
trap '[ -n "$server" ] && kill -9 "$server" 2>/dev/null; rm -rf "$dir"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/script_checks.sh"  # fail, ERR trap
"$LONGREC" synth --out "$dir/data" --users 60 --items 90 --clusters 6 --mean_length 30 > /dev/null || fail synth $?
"$LONGREC" train --dataset "$dir/data" --run_dir "$dir/run" --model.dim=8 --model.blocks=1 --model.max_len=32 \
  --data.max_len=32 --train.max_steps=3 --train.threads=1 --train.eval_every=0 > /dev/null || fail train $?
"$LONGREC" export --checkpoint "$dir/run" --out "$dir/model.h5" > /dev/null || fail export $?
"$LONGREC" serve --model "$dir/model.h5" --port 0 --port_file "$dir/port" > "$dir/out.serve" 2>&1 &
server=$!
for _ in $(seq 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
[ -s "$dir/port" ] || fail "no port file"
grep -q "on http://127.0.0.1:$(cat "$dir/port")" "$dir/out.serve" || fail "not bound to loopback"

history=$("$PYTHON" -c "import h5py,sys; f=h5py.File(sys.argv[1]); print(','.join(map(str, f['/items/ids'][:12])))" \
  "$dir/model.h5") || fail "item ids from the bundle" $?
"$LONGREC" recommend --model "$dir/model.h5" --history "$history" --k 10 > "$dir/out.recommend" || fail recommend $?
ours=$(awk 'NR > 1 {print $2}' "$dir/out.recommend" | tr '\n' ' ')
"$PYTHON" - "$(cat "$dir/port")" "$history" "$ours" <<'PY' || fail "HTTP answers" $?
import json, sys, urllib.request, urllib.error
port, history, expected = sys.argv[1], [int(x) for x in sys.argv[2].split(",")], sys.argv[3].split()
def call(method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=None if body is None else body.encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
status, answer = call("POST", "/recommend", json.dumps({"history": history, "k": 10}))
assert status == 200, answer
got = [str(r["item"]) for r in answer["items"]]
assert got == expected, (got, expected)
status, answer = call("POST", "/recommend", '{"history": [1, 2')
assert status == 400 and "malformed JSON" in answer["error"], answer
for e in history:
    status, answer = call("POST", "/users/u1/events", json.dumps({"items": [e]}))
    assert status == 200, answer
status, answer = call("GET", "/users/u1/recommend?k=10")
assert status == 200 and [str(r["item"]) for r in answer["items"]] == expected, answer
# Hostile bodies (issue 14): 200 KB of nesting once overflowed the parser's stack and killed the server.
deep = "[" * 100000 + "]" * 100000
for path, key in (("/recommend", "history"), ("/users/u2/events", "items")):
    status, answer = call("POST", path, '{"%s": %s}' % (key, deep))
    assert status == 400 and "nested deeper than 16 levels" in answer["error"], (path, status, answer)
status, answer = call("POST", "/recommend", '{"history": %s, "k": 1e999}' % json.dumps(history))
assert status == 400 and '"k": the number 1e999 is out of range' in answer["error"], answer
status, answer = call("POST", "/users/a%00b/events", json.dumps({"items": history[:1]}))
assert status == 400 and "control character (byte 0x00)" in answer["error"], answer
status, answer = call("GET", "/healthz")
assert status == 200 and answer["users"] == 1 and answer["new_items"] is False, answer
# An ID model cannot encode items from their text: 422, and the server goes on.
status, answer = call("POST", "/items", json.dumps({"id": 99999, "text": "title: a new item"}))
assert status == 422 and "item 99999: cannot add items" in answer["error"] and "hstu model" in answer["error"], answer
PY
# The same requests as JSONL lines: each refused in place, every other line answered.
"$PYTHON" - "$dir/requests.jsonl" "$history" <<'PY' || fail "requests file" $?
import json, sys
history = [int(x) for x in sys.argv[2].split(",")]
with open(sys.argv[1], "w") as f:
    f.write('{"history": %s}\n' % ("[" * 100000 + "]" * 100000))
    f.write('{"history": %s, "k": 1e999}\n' % json.dumps(history))
    f.write(json.dumps({"history": history, "k": 3}) + "\n")
PY
code=0
"$LONGREC" recommend --model "$dir/model.h5" --input "$dir/requests.jsonl" --output "$dir/answers.jsonl" \
  > "$dir/out.jsonl" 2>&1 || code=$?
[ "$code" -eq 1 ] || fail "recommend --input with refused lines: expected exit code 1" "$code"
grep -q "1 requests answered, 2 refused" "$dir/out.jsonl" || fail "recommend --input summary"
grep -q 'requests.jsonl:1: .*nested deeper than 16 levels' "$dir/answers.jsonl" || fail "deep line not refused in place"
grep -q 'requests.jsonl:2: .*the number 1e999 is out of range' "$dir/answers.jsonl" || fail "1e999 line not refused in place"
[ "$(grep -c '"items"' "$dir/answers.jsonl")" -eq 1 ] || fail "line 3 not answered"
kill -TERM "$server"
rc=0
wait "$server" || rc=$?
server=""
[ "$rc" -eq 0 ] || fail "serve after SIGTERM: expected exit code 0" "$rc"
grep -q "stopped with 1 user states held" "$dir/out.serve" || fail "no clean stop"
# bench serve: one row per (length, request threads), every request answered.
"$LONGREC" bench serve --model "$dir/model.h5" --bench.histories=8,30 --bench.request_threads=1,2 \
  --bench.seconds=0.05 > "$dir/out.bench" 2>&1 || fail "bench serve" $?
[ "$(grep -c '^| \(8\|30\) | [12] | ' "$dir/out.bench")" -eq 4 ] || fail "bench serve table"
code=0
"$LONGREC" bench serve --model "$dir/model.h5" --bench.histories=4000 > "$dir/out.long" 2>&1 || code=$?
[ "$code" -eq 2 ] || fail "a history longer than the model reads: expected exit code 2 (refused)" "$code"
grep -q "config key 'bench.histories': 4000 events, but the model reads at most 32" "$dir/out.long" ||
  fail "long history not refused"
echo "PASS: serve answers over HTTP as recommend, refuses bad JSON, stops on SIGTERM"
