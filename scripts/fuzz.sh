#!/usr/bin/env bash
# A fuzzing campaign: each libFuzzer target of the checks build (address +
# undefined sanitizers) runs RUNS inputs (default 10^6) from its seed corpus;
# new interesting inputs go to a scratch corpus, findings to fuzz-findings/.
# Prints one line per target: runs, seconds, coverage, findings.
#   scripts/fuzz.sh [RUNS] [TARGET...]     targets: raw_log config serve_request user_state manifest safetensors
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${1:-1000000}"
shift || true
BUILD_DIR="${LONGREC_CHECKS_BUILD_DIR:-build-checks}"
[ -d "$BUILD_DIR/tests/fuzz" ] || { echo "[fuzz] $BUILD_DIR/tests/fuzz missing: run scripts/check_sanitizers.sh first" >&2; exit 1; }
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$BUILD_DIR"/tests/fuzz/fuzz_*; do [ -x "$f" ] && targets+=("$(basename "$f" | sed 's/^fuzz_//')"); done
fi
findings="$ROOT/$BUILD_DIR/fuzz-findings"
mkdir -p "$findings"
status=0
echo "| target | inputs run | seconds | coverage (edges) | crashes / timeouts / leaks |"
echo "|---|---|---|---|---|"
for t in "${targets[@]}"; do
  scratch=$(mktemp -d)
  log="$findings/$t.log"
  start=$(date +%s)
  rc=0
  "$BUILD_DIR/tests/fuzz/fuzz_$t" -runs="$RUNS" -seed=1 -timeout=10 -rss_limit_mb=2048 -error_exitcode=77 \
    -timeout_exitcode=78 -print_final_stats=1 -artifact_prefix="$findings/$t-" "$scratch" "tests/fuzz/corpus/$t" \
    > "$log" 2>&1 || rc=$?
  seconds=$(( $(date +%s) - start ))
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  found=$(ls "$findings" | grep -c "^$t-" || true)
  echo "| $t | $runs | $seconds | $cov | $found (exit $rc) |"
  [ "$rc" -eq 0 ] || status=1
  rm -rf "$scratch"
done
exit $status
