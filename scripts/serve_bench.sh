#!/usr/bin/env bash
# Serving benchmark end to end (issue 6), on this machine:
#  1. a personalization-token HSTU (configs/synth/pt-groups.ini, model.max_len
#     raised so that it reads 4,096 events) trained a few steps on synthetic
#     data and exported - the weights do not change the cost;
#  2. `longrec bench serve`: requests/s, p50/p99 for whole-history recompute vs
#     cached UserState at 200, 1,000 and 4,000 events, 1 and 2 request threads;
#  3. `longrec serve` under `wrk` over loopback, 30 s per endpoint: POST
#     /recommend (a 200-event history) and GET /users/{id}/recommend (a
#     server-held state of 1,000 events); fails on any non-2xx or socket error.
#   bash scripts/serve_bench.sh [WORKDIR] [bench serve options...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LONGREC="$ROOT/${LONGREC_BUILD_DIR:-build}/src/cli/longrec"
PYTHON="$ROOT/.venv/bin/python"
WORK="${1:-runs/serve-bench}"
shift || true
WRK_SECONDS="${WRK_SECONDS:-30}"
command -v wrk > /dev/null || { echo "wrk not found: bash scripts/setup.sh installs it" >&2; exit 1; }
mkdir -p "$WORK"

if [ ! -s "$WORK/model.h5" ]; then
  "$LONGREC" synth --out "$WORK/data" --users 200 --items 3000 --clusters 20 --mean_length 300 > "$WORK/synth.log"
  "$LONGREC" train --config configs/synth/pt-groups.ini --train.dataset="$WORK/data" --train.run_dir="$WORK/run" \
    --model.max_len=4224 --personalization.max_groups=31 --data.max_len=512 --data.batch_size=16 \
    --train.max_steps=3 --train.eval_every=0 --train.threads=2 > "$WORK/train.log"
  "$LONGREC" export --checkpoint "$WORK/run" --out "$WORK/model.h5" > "$WORK/export.log"
fi

echo "## longrec bench serve"
"$LONGREC" bench serve --model "$WORK/model.h5" --bench.histories=200,1000,4000 --bench.request_threads=1,2 \
  --bench.seconds=5 "$@" 2> "$WORK/bench.log"

echo
echo "## longrec serve under wrk (${WRK_SECONDS} s per endpoint, 2 request threads, 2 connections)"
rm -f "$WORK/port"
"$LONGREC" serve --model "$WORK/model.h5" --port 0 --port_file "$WORK/port" --request_threads 2 > "$WORK/serve.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 400); do [ -s "$WORK/port" ] && break; sleep 0.05; done
url="http://127.0.0.1:$(cat "$WORK/port")"
"$PYTHON" - "$WORK/model.h5" "$WORK" "$url" <<'PY'
import h5py, json, random, sys, urllib.request
bundle, work, url = sys.argv[1:]
ids = list(h5py.File(bundle)["/items/ids"][:])
rng = random.Random(1)
def post(path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)
history = [int(rng.choice(ids)) for _ in range(200)]
with open(f"{work}/post_recommend.lua", "w") as f:
    f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
    f.write("wrk.body = '%s'\n" % json.dumps({"history": history, "k": 10}))
events = [int(rng.choice(ids)) for _ in range(1000)]
for i in range(0, 1000, 100):  # events arrive in batches of 100
    state = post("/users/bench-user/events", {"items": events[i:i + 100]})
print(f"server-held state: {state['events']} events, {state['cached_tokens']} tokens, "
      f"{state['held_events']} raw, {state['state_bytes'] / 1024:.0f} KiB")
PY
status=0
for endpoint in "POST /recommend (200 events)|-s $WORK/post_recommend.lua $url/recommend" \
                "GET /users/{id}/recommend (state)|$url/users/bench-user/recommend?k=10"; do
  echo
  echo "### ${endpoint%%|*}"
  wrk -t2 -c2 -d"${WRK_SECONDS}s" --latency ${endpoint#*|} | tee "$WORK/wrk.out"
  if grep -q "Non-2xx\|Socket errors" "$WORK/wrk.out"; then echo "FAILED: errors under load" >&2; status=1; fi
done
kill -TERM "$server"
wait "$server" || status=1
trap - EXIT
exit $status
