#!/usr/bin/env bash
# One rank of a 2-rank `longrec train` fails, and the whole job must end
# non-zero within seconds, never hang in a collective:
#   1. bad input on rank 1 only (its log file cannot be opened): rank 1's
#      message comes first, then MPI_Abort takes the job down;
#   2. rank 1 killed (SIGKILL) while training: mpirun ends the job;
# and a SIGUSR1 (Slurm's warning before the time limit) to mpirun, which
# forwards it to the ranks: they checkpoint together and exit 75.
#   tests/cli/mpi_rank_failure.sh LONGREC MPIEXEC
set -euo pipefail
LONGREC="$1"
MPIEXEC="$2"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/script_checks.sh"  # fail, ERR trap
# Waits (up to 2 min) until rank 1 of the job logged a training step in RUN.
wait_for_training() {
  local job="$1" run="$2"
  for _ in $(seq 1 600); do
    grep -q "^\[info\] step" "$run/train-rank-00001.log" 2>/dev/null && return 0
    kill -0 "$job" 2>/dev/null || fail "the job ended before training"
    sleep 0.2
  done
  kill -9 "$job"; fail "rank 1 never started training"
}
# Waits (up to 60 s) for the job to end; fails naming WHAT otherwise.
wait_for_exit() {
  local job="$1" what="$2"
  for _ in $(seq 1 600); do kill -0 "$job" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$job"; fail "the job still runs 60 s after $what"
}
MPI=("$MPIEXEC" -np 2 --oversubscribe --bind-to none --mca btl self,vader)
TRAIN=(train --dataset "$dir/data" --model.max_len=32 --data.max_len=32 --model.dim=16 --model.blocks=1
       --data.batch_size=16 --data.read_users=8 --train.threads=1 --train.eval_every=0 --train.log_every=1)

"$LONGREC" synth --out "$dir/data" --users 200 --items 300 --clusters 10 --mean_length 40 --max_length 200 \
  > /dev/null || fail "synth" $?

# 1. Rank 1's log path is a directory.
mkdir -p "$dir/run1/train-rank-00001.log"
start=$(date +%s)
code=0
timeout 120 "${MPI[@]}" "$LONGREC" "${TRAIN[@]}" --run_dir "$dir/run1" --train.max_steps=100000 > "$dir/out1" 2>&1 ||
  code=$?
elapsed=$(( $(date +%s) - start ))
[ "$code" -ne 0 ] || fail "exit code 0 although rank 1 failed"
[ "$code" -ne 124 ] || fail "the job hung (timeout)"
grep -q "longrec train: rank 1 of 2: error: .*train-rank-00001.log: cannot open the log file" "$dir/out1" ||
  fail "rank 1's message is missing"
[ "$elapsed" -lt 60 ] || fail "took ${elapsed}s to end"
echo "bad input on rank 1: exit $code after ${elapsed}s"

# 2. Rank 1 killed once training runs.
"${MPI[@]}" "$LONGREC" "${TRAIN[@]}" --run_dir "$dir/run2" --train.epochs=1000000 > "$dir/out2" 2>&1 &
job=$!
wait_for_training "$job" "$dir/run2"
pid=$(grep -m 1 -o "pid [0-9]*" "$dir/run2/train-rank-00001.log" | cut -d' ' -f2) || fail "no pid in rank 1's log"
start=$(date +%s)
kill -9 "$pid" || fail "could not kill rank 1 (pid $pid)"
wait_for_exit "$job" "rank 1 was killed"
code=0
wait "$job" || code=$?
elapsed=$(( $(date +%s) - start ))
[ "$code" -ne 0 ] || fail "exit code 0 although rank 1 was killed"
echo "rank 1 killed: exit $code after ${elapsed}s"

# 3. SIGUSR1: checkpoint, exit 75 (launch/slurm.sbatch requeues on it).
"${MPI[@]}" "$LONGREC" "${TRAIN[@]}" --run_dir "$dir/run3" --train.epochs=1000000 > "$dir/out3" 2>&1 &
job=$!
wait_for_training "$job" "$dir/run3"
kill -USR1 "$job"
wait_for_exit "$job" "SIGUSR1"
code=0
wait "$job" || code=$?
[ "$code" -eq 75 ] || fail "SIGUSR1: expected exit code 75" "$code"
[ -f "$dir/run3/ckpt/LATEST" ] || fail "SIGUSR1: no checkpoint"
grep -q "stopped by a signal at step" "$dir/out3" || fail "SIGUSR1: no message"
echo "SIGUSR1: exit 75 with checkpoint $(cat "$dir/run3/ckpt/LATEST")"
