#!/usr/bin/env bash
# `longrec eval --ranks` + `longrec compare` as a user runs them: the per-user
# ranks file holds one row per user whose means are the printed metrics; a
# model compared with itself differs by exactly 0 (p = 1); two models compare;
# ranks of another dataset are refused with both files named.
#   tests/eval/compare_cli.sh LONGREC PYTHON
set -euo pipefail
LONGREC="$1"; PYTHON="$2"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/script_checks.sh"  # fail, ERR trap
"$LONGREC" synth --out "$dir/data" --users 80 --items 90 --clusters 6 --mean_length 30 > /dev/null || fail synth $?
"$LONGREC" synth --out "$dir/other" --users 50 --items 90 --clusters 6 --mean_length 30 > /dev/null || fail synth $?
for seed in 1 2; do
  "$LONGREC" train --dataset "$dir/data" --run_dir "$dir/run$seed" --model.dim=8 --model.blocks=1 --model.max_len=32 \
    --data.max_len=32 --train.max_steps=3 --train.threads=1 --train.eval_every=0 --model.seed=$seed > /dev/null \
    || fail train $?
  "$LONGREC" eval --checkpoint "$dir/run$seed" --threads 1 --long_history 30 --ranks "$dir/ranks$seed.tsv" \
    > "$dir/out.eval$seed" || fail eval $?
done
"$LONGREC" eval --checkpoint "$dir/run1" --dataset "$dir/other" --threads 1 --ranks "$dir/other.tsv" > /dev/null \
  || fail "eval other" $?

# One row per user; the means are what eval printed.
"$PYTHON" - "$dir/ranks1.tsv" "$dir/out.eval1" <<'PY' || fail "ranks file" $?
import math, re, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
assert rows[0] == ["user", "history_events", "rank", "target", "target_events"], rows[0]
rows = [tuple(map(int, r)) for r in rows[1:]]
# Every target recorded, with its events in the dataset (at least the held-out one); one item's
# count is the same for every user whose target it is.
assert all(r[3] >= 1 and r[4] >= 1 for r in rows), rows[:3]
events = {}
for r in rows:
    assert events.setdefault(r[3], r[4]) == r[4], r
assert sum(1 for r in rows if r[3] == rows[0][3]) <= rows[0][4]
assert len(rows) == 80 and len({r[0] for r in rows}) == 80, len(rows)
printed = open(sys.argv[2]).read()
ndcg = sum(1 / math.log2(r[2] + 2) for r in rows if r[2] < 10) / len(rows)
hr = sum(r[2] < 10 for r in rows) / len(rows)
first = re.search(r"HR@10 ([0-9.]+) .*NDCG@10 ([0-9.]+)", printed)
assert abs(float(first.group(1)) - hr) < 6e-5 and abs(float(first.group(2)) - ndcg) < 6e-5, (first.groups(), hr, ndcg)
long = [r for r in rows if r[1] > 30]
assert f"users with > 30 events ({len(long)})" in printed, printed
PY

"$LONGREC" compare --candidate "$dir/ranks1.tsv" --baseline "$dir/ranks1.tsv" --long_history 30 \
  --output "$dir/compare.jsonl" > "$dir/out.self" || fail "compare self" $?
grep -Eq "^all +80 ndcg@10 .* \+0\.0000 .* 1\.0000" "$dir/out.self" || fail "self comparison not 0 / p 1"
grep -Eq "^hist>30 " "$dir/out.self" || fail "no long-history slice"
[ "$(wc -l < "$dir/compare.jsonl")" = 4 ] || fail "expected 4 JSON lines (2 slices x 2 metrics)"
"$LONGREC" compare --candidate "$dir/ranks2.tsv" --baseline "$dir/ranks1.tsv" --metrics mrr --resamples 500 \
  > "$dir/out.pair" || fail "compare pair" $?
grep -Eq "^all +80 mrr " "$dir/out.pair" || fail "pair row"
# The cold-item slice: users whose held-out item has few events (counted from the ranks file).
cold=$(awk -F'\t' 'NR > 1 && $5 <= 40' "$dir/ranks1.tsv" | wc -l)
"$LONGREC" compare --candidate "$dir/ranks2.tsv" --baseline "$dir/ranks1.tsv" --metrics mrr --resamples 500 \
  --max_target_events 40 > "$dir/out.cold" || fail "compare cold" $?
grep -Eq "^target<=40 +$cold mrr |^target<=40 +0 \(no users\)" "$dir/out.cold" || { cat "$dir/out.cold"; fail "cold slice of $cold users"; }

code=0
"$LONGREC" compare --candidate "$dir/ranks1.tsv" --baseline "$dir/other.tsv" > "$dir/out.bad" 2>&1 || code=$?
[ "$code" = 1 ] || fail "different datasets: expected exit code 1" "$code"
grep -q "ranks1.tsv and .*other.tsv rank different users" "$dir/out.bad" || fail "mismatch message"
echo "PASS: eval --ranks and compare"
