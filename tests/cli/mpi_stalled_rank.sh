#!/usr/bin/env bash
# A stalled rank (SIGSTOP) must end the job within the collective timeout,
# never hang it (issue 14): each case stops rank 1 of `longrec train` and
# requires that mpirun exits non-zero within 30 s, that a rank's report names
# the collective and says rank 1 did not answer, and that the stopped process
# is gone afterwards:
#   1. 2 ranks, stopped while training: the steady timeout (5 s) applies;
#   2. 2 ranks, stopped before the first step: the start-up timeout (6 s)
#      applies (the steady one, 2 s, if rank 0 had completed a step already);
#   3. 3 ranks, stopped while training: the two others both wait, and the
#      report names where the other waits.
#   tests/cli/mpi_stalled_rank.sh LONGREC MPIEXEC
set -euo pipefail
LONGREC="$1"
MPIEXEC="$2"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
dir="$(mktemp -d)"
stopped=()  # pids this test stopped: never left behind
cleanup() {
  for pid in "${stopped[@]}"; do kill -CONT "$pid" 2>/dev/null || true; kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/script_checks.sh"  # fail, ERR trap

TRAIN=(train --dataset "$dir/data" --model.max_len=32 --data.max_len=32 --model.dim=16 --model.blocks=1
       --data.batch_size=16 --data.read_users=8 --train.threads=1 --train.eval_every=0 --train.log_every=1
       --train.epochs=1000000)
"$LONGREC" synth --out "$dir/data" --users 200 --items 300 --clusters 10 --mean_length 40 --max_length 200 \
  > /dev/null || fail "synth" $?

# Sets $pid to the pid rank 1 logged in RUN (its log's first line), once
# PATTERN is in that log (2 min at most).
rank1_pid() {
  local job="$1" run="$2" pattern="$3"
  for _ in $(seq 1 2400); do
    if grep -q "$pattern" "$run/train-rank-00001.log" 2>/dev/null; then
      pid=$(grep -m 1 -o "pid [0-9]*" "$run/train-rank-00001.log" | cut -d' ' -f2)
      [ -n "$pid" ] || fail "no pid in rank 1's log"
      return 0
    fi
    kill -0 "$job" 2>/dev/null || fail "the job ended before rank 1 logged '$pattern'"
    sleep 0.05
  done
  kill -9 "$job"; fail "rank 1 never logged '$pattern'"
}

# Starts RANKS ranks into run CASE with OPTIONS, stops rank 1 once PATTERN is
# in its log, and waits (30 s at most) for the job to end; sets $elapsed, $code.
stop_rank_1() {
  local name="$1" ranks="$2" pattern="$3"
  shift 3
  "$MPIEXEC" -np "$ranks" --oversubscribe --bind-to none --mca btl self,vader \
    "$LONGREC" "${TRAIN[@]}" --run_dir "$dir/$name" "$@" > "$dir/out-$name" 2>&1 &
  local job=$!
  rank1_pid "$job" "$dir/$name" "$pattern"
  stopped+=("$pid")
  local start
  start=$(date +%s.%N)
  kill -STOP "$pid" || fail "$name: could not stop rank 1 (pid $pid)"
  for _ in $(seq 1 300); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$job" 2>/dev/null; then
    kill -9 "$job"; fail "$name: the job still runs 30 s after rank 1 was stopped"
  fi
  code=0
  wait "$job" || code=$?
  elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  [ "$code" -ne 0 ] || fail "$name: exit code 0 although rank 1 was stopped"
  # mpirun has signalled it (SIGCONT, SIGTERM, SIGKILL); gone, or a zombie, within 10 s.
  local state
  for _ in $(seq 1 100); do
    state=$(ps -o stat= -p "$pid" || true)
    [ -z "$state" ] || [ "${state:0:1}" = Z ] && return 0
    sleep 0.1
  done
  fail "$name: the stopped rank 1 (pid $pid, state $state) outlived the job by 10 s"
}

# 1. Stopped while training: the report names the collective (its step, or
# the stop-signal check between steps) and rank 1.
stop_rank_1 training 2 "^\[info\] step" --train.collective_timeout=5 --train.startup_collective_timeout=60
grep -Eq "longrec train: rank 0 of 2: error: collective #[0-9]+ [a-z_ ]+\((training step [0-9]+ / [^)]+|stop signals)\) did not complete within 5 s; no word from rank 1 \(stopped" \
  "$dir/out-training" || fail "training: rank 0's report is missing or names the wrong timeout"
echo "2 ranks, rank 1 stopped while training: exit $code after ${elapsed}s"

# 2. Stopped before the first step: the start-up timeout.
stop_rank_1 startup 2 "pid [0-9]" --train.collective_timeout=2 --train.startup_collective_timeout=6
expected=6
grep -q "^\[info\] step" "$dir/startup/train-rank-00000.log" && expected=2  # rank 0 had completed a step
grep -Eq "longrec train: rank 0 of 2: error: collective #[0-9]+ .* did not complete within $expected s; no word from rank 1" \
  "$dir/out-startup" || fail "startup: rank 0's report is missing or does not name the ${expected} s timeout"
echo "2 ranks, rank 1 stopped at start-up: exit $code after ${elapsed}s (the ${expected} s timeout)"

# 3. Three ranks: ranks 0 and 2 both wait; a report names rank 1 and where the other one waits.
stop_rank_1 three 3 "^\[info\] step" --train.collective_timeout=5 --train.startup_collective_timeout=60
grep -Eq "longrec train: rank [02] of 3: error: collective #([0-9]+) .* did not complete within 5 s; no word from rank 1 \(stopped, hung, or busy outside collectives\); rank [02] (timed out|waits) at #[0-9]+" \
  "$dir/out-three" || fail "three ranks: no report names rank 1 and the other waiting rank"
echo "3 ranks, rank 1 stopped while training: exit $code after ${elapsed}s;" \
  "$(grep -c "error: collective #" "$dir/out-three") ranks reported"
