#!/usr/bin/env bash
# A bundle is readable without longrec: scripts/inspect_bundle.py (h5py + numpy
# from the project's .venv) lists it and verifies its checksum, the same
# CRC-32 longrec wrote; a modified bundle is refused.
#   tests/serve/inspect_bundle.sh LONGREC PYTHON ROOT
set -euo pipefail
LONGREC="$1"; PYTHON="$2"; ROOT="$3"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/script_checks.sh"  # fail, ERR trap
"$LONGREC" synth --out "$dir/data" --users 60 --items 90 --clusters 6 --mean_length 30 > /dev/null || fail synth $?
"$LONGREC" train --dataset "$dir/data" --run_dir "$dir/run" --model.dim=8 --model.blocks=1 --model.max_len=32 \
  --data.max_len=32 --train.max_steps=3 --train.threads=1 --train.eval_every=0 > /dev/null || fail train $?
"$LONGREC" export --checkpoint "$dir/run" --out "$dir/model.h5" --dtype bf16 > "$dir/out.export" || fail export $?
"$PYTHON" "$ROOT/scripts/inspect_bundle.py" "$dir/model.h5" > "$dir/out.inspect" 2>&1 || fail "inspect" $?
grep -q "longrec-bundle v1, full, bf16, crc32:[0-9a-f]\{8\} (verified)" "$dir/out.inspect" || fail "not verified"
grep -q "items: 90" "$dir/out.inspect" || fail "item count"
# The script's top-10 for longrec's user vector equals `longrec recommend`'s.
history=$("$PYTHON" -c "import h5py,sys; f=h5py.File(sys.argv[1]); print(','.join(map(str, f['/items/ids'][:12])))" \
  "$dir/model.h5") || fail "item ids from the bundle" $?
"$LONGREC" recommend --model "$dir/model.h5" --history "$history" --k 10 --user-vector-out "$dir/user.json" \
  > "$dir/out.recommend" || fail "recommend" $?
"$PYTHON" "$ROOT/scripts/inspect_bundle.py" "$dir/model.h5" --user-vector "$dir/user.json" --history "$history" \
  --k 10 > "$dir/out.script" || fail "script top-10" $?
ours=$(awk 'NR > 1 {print $2}' "$dir/out.recommend" | tr '\n' ' ')
theirs=$(tail -n 10 "$dir/out.script" | awk '{print $2}' | tr '\n' ' ')
[ -n "$ours" ] && [ "$ours" = "$theirs" ] || fail "top-10 differ: longrec [$ours] script [$theirs]"

# Batch requests: one answer per line, a bad line reported with its number, the rest answered.
printf '{"history": [%s], "k": 3}\nnot json\n{"history": [999999]}\n{"history": [%s], "k": 2}\n' \
  "$history" "${history%%,*}" > "$dir/requests.jsonl"
code=0
"$LONGREC" recommend --model "$dir/model.h5" --input "$dir/requests.jsonl" --output "$dir/results.jsonl" \
  > "$dir/out.batch" 2>&1 || code=$?
[ "$code" -eq 1 ] || fail "a batch with bad lines: expected exit code 1" "$code"
[ "$(wc -l < "$dir/results.jsonl")" -eq 4 ] || fail "expected 4 result lines"
grep -q '"error":".*requests.jsonl:2: .*"line":2}' "$dir/results.jsonl" || fail "line 2's error"
grep -q '"error":".*requests.jsonl:3: item 999999 is not in the model.*"line":3}' "$dir/results.jsonl" ||
  fail "line 3's error"
[ "$(grep -c '"items"' "$dir/results.jsonl")" -eq 2 ] || fail "lines 1 and 4 unanswered"

"$PYTHON" - "$dir/model.h5" <<'PY' || fail "modify the bundle" $?
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    ids = f["/items/ids"]
    ids[0] = ids[0] + 1
PY
code=0
"$PYTHON" "$ROOT/scripts/inspect_bundle.py" "$dir/model.h5" > "$dir/out.corrupt" 2>&1 || code=$?
[ "$code" -eq 1 ] || fail "a modified bundle: expected exit code 1 (refused)" "$code"
grep -q "does not match the stored" "$dir/out.corrupt" || fail "no checksum message"
echo "inspect_bundle.py verified the bundle, agreed with longrec recommend's top-10, refused a modified bundle"
