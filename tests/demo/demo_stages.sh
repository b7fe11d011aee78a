#!/usr/bin/env bash
# scripts/demo.sh end to end on a small store (LONGREC_DEMO_QUICK=1: 200
# users, 2 epochs per model; its numbers mean nothing): every stage runs and
# says what it shows, training runs on 2 MPI ranks, both models are evaluated
# and compared, the bundle answers `longrec recommend` and one HTTP request to
# `longrec serve` (which then stops cleanly), both PNGs exist, and the summary
# names what was produced. The demo's accuracy and its timing are reported
# in docs/results.md, not asserted here.
#   demo_stages.sh LONGREC REPO_ROOT
set -u
LONGREC=$(realpath "$1")
ROOT=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
out="$dir/demo.out"
LONGREC_BIN="$LONGREC" LONGREC_DEMO_QUICK=1 LONGREC_DEMO_DIR="$dir/run" bash "$ROOT/scripts/demo.sh" > "$out" 2>&1
rc=$?
cat "$out"
[ "$rc" = 0 ] || fail "scripts/demo.sh exited with $rc"
for n in 1 2 3 4 5 6 7 8 9 10; do
  grep -q "^== $n\. " "$out" || fail "stage $n did not print its line"
done
grep -q "rank 0 of 2" "$out" || fail "training did not run on 2 ranks"
[ "$(wc -l < "$dir/run/eval.jsonl")" = 2 ] || fail "eval.jsonl should hold the two evaluations"
grep -q "95% bootstrap interval" "$out" || fail "compare printed no interval"
grep -qE '^hist>512 +[0-9]+ ndcg@10' "$out" || fail "compare printed no long-history slice"
[ -s "$dir/run/model.h5" ] || fail "no bundle"
grep -q '"items"' "$out" || fail "no HTTP answer with items"
grep -q "server stopped" "$out" || fail "server not stopped"
for png in recent-curves.png tokens-curves.png; do
  [ "$(head -c 8 "$dir/run/$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$png is not a PNG"
done
grep -qE "^truncation .*HR@10 [0-9.]+ \([0-9]+x chance" "$out" || fail "summary lacks the HR@10 line"
grep -q "demo finished in" "$out" || fail "no closing line"
! pgrep -f "serve --model $dir/run/model.h5" > /dev/null || fail "a server is still running"
echo "PASS: demo_stages"
