#!/usr/bin/env bash
# Runs a command and checks both how it ended and what it printed; CTest's
# PASS_REGULAR_EXPRESSION alone ignores the exit code, so a command that
# crashes after printing the expected text would pass.
#   tests/cli/expect_exit.sh [--reject REGEX]... [--skip CODE] EXPECTED_EXIT REGEX COMMAND [ARG...]
# Prints the command's output (stdout and stderr together), then fails (exit 1)
#   - when the command's exit code differs from EXPECTED_EXIT (naming the signal
#     when it was killed by one),
#   - when the output does not match REGEX,
#   - when the output matches a --reject REGEX.
# With --skip CODE, a command that exits with CODE (one that could not run
# here and said why) ends this script with CODE too, for CTest's
# SKIP_RETURN_CODE: the test shows as skipped, never as passed.
# The regexes are matched against the whole output as one string, as CTest
# does: POSIX extended regexes where `.` also matches a newline and ^ / $ are
# the start / end of the output, so the CTest regexes of tests/*/CMakeLists.txt
# work unchanged.
set -euo pipefail

usage() { echo "usage: expect_exit.sh [--reject REGEX]... [--skip CODE] EXPECTED_EXIT REGEX COMMAND [ARG...]" >&2; exit 2; }
rejects=()
skip=""
while [ $# -gt 0 ] && { [ "$1" = "--reject" ] || [ "$1" = "--skip" ]; }; do
  [ $# -ge 2 ] || usage
  case "$1" in
    --reject) rejects+=("$2") ;;
    --skip) skip="$2" ;;
  esac
  shift 2
done
[ $# -ge 3 ] || usage
expected="$1"
regex="$2"
shift 2
[[ "$expected" =~ ^[0-9]+$ ]] || { echo "expect_exit.sh: expected exit code '$expected' is not a number" >&2; exit 2; }
[ -z "$skip" ] || [[ "$skip" =~ ^[0-9]+$ ]] || { echo "expect_exit.sh: --skip code '$skip' is not a number" >&2; exit 2; }

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
code=0
"$@" > "$out" 2>&1 || code=$?
cat "$out"
echo "--- expect_exit.sh: '$1' exited with code $code"
if [ -n "$skip" ] && [ "$code" -eq "$skip" ] && [ "$code" -ne "$expected" ]; then
  echo "SKIPPED: exit code $code (--skip $skip)"
  exit "$code"
fi

describe() {
  local c="$1"
  if [ "$c" -ge 128 ] && [ "$c" -le 192 ]; then
    local name
    name="$(kill -l "$((c - 128))" 2>/dev/null || echo "?")"
    echo "exit code $c (killed by signal $((c - 128)), SIG$name)"
  else
    echo "exit code $c"
  fi
}

status=0
if [ "$code" -ne "$expected" ]; then
  echo "FAIL: expected exit code $expected, got $(describe "$code"): $*"
  status=1
fi
text="$(tr -d '\000' < "$out")"
if ! [[ "$text" =~ $regex ]]; then
  echo "FAIL: the output does not match the regex: $regex"
  status=1
fi
for reject in ${rejects[@]+"${rejects[@]}"}; do
  if [[ "$text" =~ $reject ]]; then
    echo "FAIL: the output matches the rejected regex: $reject (at: '${BASH_REMATCH[0]}')"
    status=1
  fi
done
[ "$status" -eq 0 ] && echo "PASS: exit code $code and the output matches: $regex"
exit "$status"
