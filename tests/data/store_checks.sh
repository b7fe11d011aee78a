#!/usr/bin/env bash
# Data validation end to end (issue 14): `info --verify` passes a good store
# and names the first problem of a corrupt one (exit 1); training refuses a
# store whose times are out of order, naming the user; `prepare` refuses a NaN
# rating with file:line; a resumed run drops a torn last metrics line.
#   tests/data/store_checks.sh LONGREC PYTHON
set -euo pipefail
LONGREC="$1"; PYTHON="$2"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/script_checks.sh"  # fail, ERR trap

# Runs a command, requires its exit code and a fixed string in its output.
expect() {
  local code="$1" text="$2"; shift 2
  local rc=0
  "$@" > "$dir/out" 2>&1 || rc=$?
  [ "$rc" -eq "$code" ] || fail "$* : expected exit code $code" "$rc"
  grep -qF -- "$text" "$dir/out" || fail "$* : no '$text' in the output"
}

"$LONGREC" synth --out "$dir/data" --users 60 --items 90 --clusters 6 --mean_length 30 > /dev/null || fail synth $?
expect 0 "verify           OK" "$LONGREC" info --dataset "$dir/data" --verify
grep -qF "Fletcher-32 on every chunk, all verified" "$dir/out" || fail "verify: checksums not reported"

# Corrupt copies, crafted with h5py: an item id beyond the catalogue; two times swapped.
corrupt() {
  cp -r "$dir/data" "$dir/$1"
  "$PYTHON" - "$dir/$1/part-00000.h5" "$1" <<'PY'
import h5py, sys
with h5py.File(sys.argv[1], "r+") as f:
    if sys.argv[2] == "bad_item":
        f["/events/item"][3] = 91
    else:
        first = int(f["/users/offsets"][0])
        t = f["/events/time"][first:first + 2]
        f["/events/time"][first:first + 2] = t[::-1]
PY
}
corrupt bad_item
expect 1 "part-00000.h5:/events/item: event 3 has item id 91, outside 1..90" \
  "$LONGREC" info --dataset "$dir/bad_item" --verify
grep -qF "verify           FAILED" "$dir/out" || fail "verify: no FAILED summary"
corrupt swapped
user="$("$PYTHON" -c "import h5py,sys; print(h5py.File(sys.argv[1])['/users/raw_id'][0])" "$dir/swapped/part-00000.h5")"
expect 1 "swapped/part-00000.h5: user $user has events out of time order" \
  "$LONGREC" info --dataset "$dir/swapped" --verify
# Training reads the same store through the loader: refused, naming the user.
expect 1 "swapped/part-00000.h5: user $user has events out of time order" \
  "$LONGREC" train --dataset "$dir/swapped" --run_dir "$dir/run-swapped" --model.dim=8 --model.blocks=1 \
  --model.max_len=32 --data.max_len=32 --train.max_steps=2 --train.threads=1 --train.eval_every=0

# prepare: a NaN rating is refused with file:line and the value; nothing is written.
printf 'userId,movieId,rating,timestamp\n1,10,4.0,5\n1,11,NaN,6\n' > "$dir/ratings.csv"
expect 1 "ratings.csv:3: rating 'NaN' (field 3) is not a finite number" \
  "$LONGREC" prepare --input "$dir/ratings.csv" --out "$dir/nan-store"
[ ! -e "$dir/nan-store" ] || fail "prepare left $dir/nan-store"

# A torn last metrics line (a full disk under an older build) is dropped when the run resumes.
train=(--dataset "$dir/data" --run_dir "$dir/run" --model.dim=8 --model.blocks=1 --model.max_len=32
       --data.max_len=32 --train.threads=1 --train.eval_every=0 --train.log_every=1)
"$LONGREC" train "${train[@]}" --train.max_steps=2 > "$dir/out.first" 2>&1 || fail "train" $?
printf '{"kind":"train","loss":3.2,"st' >> "$dir/run/metrics-rank-00000.jsonl"
expect 0 "dropped a torn last line" "$LONGREC" train "${train[@]}" --train.max_steps=4 --train.resume=auto
"$PYTHON" - "$dir/run/metrics-rank-00000.jsonl" <<'PY' || fail "metrics after the resume"
import json, sys
text = open(sys.argv[1]).read()
assert text.endswith("\n"), "the file ends in a torn line"
records = [json.loads(line) for line in text.splitlines()]  # every line whole
steps = [r["step"] for r in records if r["kind"] == "train"]
assert steps == [1, 2, 3, 4], steps
PY
echo "PASS: store checks"
