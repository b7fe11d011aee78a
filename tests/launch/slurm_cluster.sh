#!/usr/bin/env bash
# Issue 17: longrec's Slurm scripts on a real, one-machine Slurm cluster that
# the test starts itself (tests/launch/local_slurm.sh: munged, slurmctld and
# slurmd as root, state in a temporary directory, Debian's MpiDefault=none):
#   (a) `sbatch --wait launch/slurm.sbatch` trains the demo model on 2 tasks,
#       srun starting the ranks with --mpi=pmix; with LONGREC_SRUN_MPI=none
#       (srun without a PMI plugin) the ranks abort in MPI_Init_thread, and an
#       empty LONGREC_SRUN_MPI is refused; LONGREC_LAUNCHER=mpirun trains
#       with the same losses;
#   (b) a job sent the time-limit signal (SIGUSR1 to its steps, as Slurm sends
#       it at --signal=USR1@300) checkpoints, is requeued, restarts by itself
#       and finishes with the per-step losses of an uninterrupted run;
#   (c) a 3-point sweep (`longrec sweep plan`) runs as a job array
#       (launch/sweep.sbatch); one array task, sent the same signal, is
#       requeued alone; `longrec sweep collect` sees 3 points done.
# Prints SKIP and exits 77 where such a cluster cannot start (not root, Slurm
# or munge missing). Every daemon and job process is stopped on exit.
#   tests/launch/slurm_cluster.sh LONGREC
set -euo pipefail
LONGREC="$(realpath "$1")"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="$(mktemp -d)"
source "$ROOT/tests/support/script_checks.sh"  # fail, ERR trap
source "$ROOT/tests/launch/local_slurm.sh"     # slurm_start, slurm_stop
cleanup() {
  local code=$?
  set +e
  slurm_stop "$code"
  code=$?
  rm -rf "$dir"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
start=$(date +%s)
elapsed() { echo "$(($(date +%s) - start)) s"; }

slurm_start "$dir/slurm"
cd "$ROOT"
export LONGREC
unset LONGREC_SRUN_MPI LONGREC_LAUNCHER
# Two ranks of one CPU on the one node; no GPU GRES on this cluster.
SB=(sbatch --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --gpus-per-task=0 --time=10)

# JobState and Restarts of job $1, as "STATE RESTARTS".
job_state() {
  scontrol show job "$1" 2> /dev/null | tr ' ' '\n' |
    awk -F= '$1 == "JobState" { s = $2 } $1 == "Restarts" { r = $2 } END { print s, r }'
}
# Per-step training losses of a metrics file, "STEP LOSS" sorted by step; the
# last record of a step wins (a resumed run repeats the steps after its checkpoint).
losses() {
  awk '/"kind":"train"/ {
         match($0, /"step":[0-9.]+/); s = substr($0, RSTART + 7, RLENGTH - 7) + 0
         match($0, /"loss":[-+0-9.eE]+/); loss[s] = substr($0, RSTART + 7, RLENGTH - 7)
       }
       END { for (s in loss) print s, loss[s] }' "$1" | sort -n
}

"$LONGREC" synth --config configs/synth/demo.ini --synth.out="$dir/data" --synth.users=200 --synth.items=300 \
  --synth.clusters=10 --synth.mean_length=40 --synth.max_length=200 > "$dir/out-synth" 2>&1 || fail "synth" $?
TRAIN=(--config configs/synth/hstu-demo.ini --train.dataset="$dir/data" --train.log_every=1)

# (a) Two ranks by srun --mpi=pmix (the default of launch/slurm.sbatch).
code=0
timeout 90 "${SB[@]}" --wait --output="$dir/out-a.%j" launch/slurm.sbatch "${TRAIN[@]}" \
  --train.run_dir="$dir/run-a" --train.max_steps=4 > "$dir/out-a-sbatch" 2>&1 || code=$?
[ "$code" -eq 0 ] || fail "(a) sbatch --wait launch/slurm.sbatch" "$code"
grep -q "2 ranks started by srun --mpi=pmix" "$dir"/out-a.* || fail "(a) the job did not start 2 ranks by srun --mpi=pmix"
grep -q "rank 0 of 2" "$dir/run-a/train-rank-00000.log" || fail "(a) no 'rank 0 of 2' in train-rank-00000.log"
grep -q "rank 1 of 2" "$dir/run-a/train-rank-00001.log" || fail "(a) no 'rank 1 of 2' in train-rank-00001.log"
grep -q "trained 4 steps" "$dir"/out-a.* || fail "(a) the job did not train 4 steps"
[ -f "$dir/run-a/ckpt/LATEST" ] || fail "(a) no checkpoint in $dir/run-a/ckpt"
echo "(a) sbatch --wait: 2 ranks by srun --mpi=pmix trained 4 steps, checkpoint $(cat "$dir/run-a/ckpt/LATEST") ($(elapsed))"

# srun without a PMI plugin (Debian's MpiDefault=none): the ranks cannot wire up.
code=0
LONGREC_SRUN_MPI=none timeout 90 "${SB[@]}" --wait --output="$dir/out-none.%j" launch/slurm.sbatch "${TRAIN[@]}" \
  --train.run_dir="$dir/run-none" --train.max_steps=4 > "$dir/out-none-sbatch" 2>&1 || code=$?
[ "$code" -ne 0 ] && [ "$code" -ne 124 ] || fail "(a) LONGREC_SRUN_MPI=none: expected the job to fail" "$code"
grep -q "MPI_Init_thread" "$dir"/out-none.* || fail "(a) LONGREC_SRUN_MPI=none: no MPI_Init_thread failure in the job's output"
echo "(a) LONGREC_SRUN_MPI=none: the job failed (sbatch exit $code), the ranks aborted in MPI_Init_thread ($(elapsed))"
code=0
LONGREC_SRUN_MPI= bash launch/slurm.sbatch "${TRAIN[@]}" > "$dir/out-empty" 2>&1 || code=$?
[ "$code" -eq 2 ] || fail "(a) LONGREC_SRUN_MPI='': expected exit code 2" "$code"
grep -q "LONGREC_SRUN_MPI is empty" "$dir/out-empty" || fail "(a) LONGREC_SRUN_MPI='': no message"
rm -f "$dir"/out-none* "$dir/out-empty"   # expected failures: not shown by a later fail

# The same job with the ranks started by mpirun inside the allocation (as root
# Open MPI wants its two variables): the losses of the srun run.
code=0
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 LONGREC_LAUNCHER=mpirun timeout 90 "${SB[@]}" --wait \
  --output="$dir/out-mpirun.%j" launch/slurm.sbatch "${TRAIN[@]}" --train.run_dir="$dir/run-mpirun" \
  --train.max_steps=4 > "$dir/out-mpirun-sbatch" 2>&1 || code=$?
[ "$code" -eq 0 ] || fail "(a) LONGREC_LAUNCHER=mpirun sbatch --wait launch/slurm.sbatch" "$code"
grep -q "2 ranks started by mpirun" "$dir"/out-mpirun.* || fail "(a) LONGREC_LAUNCHER=mpirun: not started by mpirun"
grep -q "rank 1 of 2" "$dir/run-mpirun/train-rank-00001.log" || fail "(a) LONGREC_LAUNCHER=mpirun: no rank 1 of 2"
losses "$dir/run-a/metrics-rank-00000.jsonl" > "$dir/losses-a"
losses "$dir/run-mpirun/metrics-rank-00000.jsonl" > "$dir/losses-mpirun"
[ -s "$dir/losses-a" ] && cmp -s "$dir/losses-a" "$dir/losses-mpirun" ||
  fail "(a) LONGREC_LAUNCHER=mpirun: losses differ from the srun run: $(tr '\n' ' ' < "$dir/losses-a") vs $(tr '\n' ' ' < "$dir/losses-mpirun")"
echo "(a) LONGREC_LAUNCHER=mpirun: 2 ranks, the losses of the srun run ($(elapsed))"

# (b) The time-limit signal mid-run: checkpoint, requeue, restart, same losses.
B=("${TRAIN[@]}" --train.epochs=1000 --train.max_steps=150 --data.batch_size=16)
jid="$("${SB[@]}" --parsable --output="$dir/out-b.%j" launch/slurm.sbatch "${B[@]}" --train.run_dir="$dir/run-b")" ||
  fail "(b) sbatch" $?
jid="${jid%%;*}"
metrics="$dir/run-b/metrics-rank-00000.jsonl"
ok=0
for _ in $(seq 1 600); do  # 60 s
  n="$(grep -c '"kind":"train"' "$metrics" 2> /dev/null)" || n=0
  [ "$n" -ge 3 ] && { ok=1; break; }
  case "$(job_state "$jid")" in RUNNING* | PENDING* | CONFIGURING*) ;; *) fail "(b) job $jid ended before training: $(job_state "$jid")" ;; esac
  sleep 0.1
done
[ "$ok" = 1 ] || fail "(b) job $jid logged no training step within 60 s: $(job_state "$jid")"
# As at the time limit: the signal goes to the job's steps (the ranks), not to the batch shell.
scancel --signal=USR1 "$jid" || fail "(b) scancel --signal=USR1 $jid" $?
echo "(b) job $jid: SIGUSR1 sent after $(grep -c '"kind":"train"' "$metrics") steps ($(elapsed))"
state=""
for _ in $(seq 1 900); do  # 90 s: the run, the requeue delay (cred_expire=10 s), the rest of the run
  state="$(job_state "$jid")"
  case "$state" in
    COMPLETED*) break ;;
    RUNNING* | PENDING* | REQUEUED* | COMPLETING* | CONFIGURING*) ;;
    *) fail "(b) job $jid ended as '$state'" ;;
  esac
  sleep 0.1
done
[[ "$state" == COMPLETED* ]] || fail "(b) job $jid not finished 90 s after the signal: '$state'"
restarts="${state#* }"
[ "$restarts" -ge 1 ] || fail "(b) job $jid finished without a restart (Restarts=$restarts): the signal came too late?"
out_b="$(ls "$dir"/out-b.*)"
stopped="$(grep -o "stopped by a signal at step [0-9]* of 150" "$out_b")" || fail "(b) no 'stopped by a signal' in the job's output"
grep -q "requeueing job $jid" "$out_b" || fail "(b) the batch script did not requeue the job (killed by the signal?)"
grep -q "(restart 1)" "$out_b" || fail "(b) no restart 1 in the job's output"
s="${stopped#stopped by a signal at step }"; s="${s%% *}"
grep -q "resumed from .*step-0*$s at step $s " "$out_b" ||
  fail "(b) the restart did not resume from the signal's checkpoint (${stopped})"
grep -q "trained 150 steps" "$out_b" || fail "(b) the restarted job did not finish 150 steps"
echo "(b) job $jid: ${stopped}, requeued, restarted (Restarts=$restarts), finished 150 steps ($(elapsed))"
# The same run without interruption, started by mpirun (the options launch/slurm.sbatch adds).
"$ROOT/launch/mpirun.sh" -n 2 -t 1 "$LONGREC" train "${B[@]}" --train.run_dir="$dir/run-ref" --train.threads=1 \
  > "$dir/out-ref" 2>&1 || fail "(b) the uninterrupted run (launch/mpirun.sh -n 2)" $?
losses "$metrics" > "$dir/losses-b"
losses "$dir/run-ref/metrics-rank-00000.jsonl" > "$dir/losses-ref"
awk 'NR == FNR { ref[$1] = $2; next } $1 in ref { print $1, $2, ref[$1] }' "$dir/losses-ref" "$dir/losses-b" \
  > "$dir/losses-both"
[ "$(wc -l < "$dir/losses-b")" -eq 150 ] || fail "(b) the requeued run has losses for $(wc -l < "$dir/losses-b") steps, expected 150"
[ "$(wc -l < "$dir/losses-ref")" -eq 150 ] || fail "(b) the uninterrupted run has losses for $(wc -l < "$dir/losses-ref") steps, expected 150"
echo "(b) per-step loss: step, requeued job, uninterrupted run (around the signal and the end):"
awk -v s="$s" '$1 >= s - 1 && $1 <= s + 2 || $1 >= 149 { print "    " $0 }' "$dir/losses-both"
cmp="$(awk '{ d = $2 - $3; if (d < 0) d = -d; r = d / ($3 < 0 ? -$3 : $3); if (r > max) max = r
              if ($2 == $3) same++; if (r > 1e-6) bad++ }
            END { printf "%d %d %d %g", NR, same, bad, max }' "$dir/losses-both")"
read -r n same bad max <<< "$cmp"
[ "$n" -eq 150 ] && [ "$bad" -eq 0 ] ||
  fail "(b) losses differ: $n steps compared, $bad beyond 1e-6 relative (max relative difference $max)"
echo "(b) 150 steps: $same identical losses, max relative difference $max ($(elapsed))"

# (c) A 3-point sweep as a job array of launch/sweep.sbatch; array task 1 gets
# the time-limit signal mid-run, is requeued alone and finishes its point.
"$LONGREC" sweep --help > /dev/null 2>&1 || fail "(c) $LONGREC has no \`sweep\` command"
mkdir -p "$dir/sweep"
cp configs/synth/hstu-demo.ini "$dir/sweep/hstu-demo.ini"
cat > "$dir/sweep/sweep.ini" << EOF
[sweep]
name = slurm-test
base = hstu-demo.ini
budget = steps
budgets = 150

[set]
train.dataset = $dir/data
train.log_every = 1
data.batch_size = 16

[grid]
model.seed = 1, 2, 3
EOF
"$LONGREC" sweep plan --sweep "$dir/sweep/sweep.ini" --out "$dir/plan" > "$dir/out-c-plan" 2>&1 ||
  fail "(c) longrec sweep plan" $?
grep -q "planned 3 points" "$dir/out-c-plan" || fail "(c) longrec sweep plan did not plan 3 points"
[ "$(tail -n +2 "$dir/plan/plan.csv" | wc -l)" -eq 3 ] || fail "(c) plan.csv does not hold 3 points"
timeout 150 sbatch --wait --array=0-2 --ntasks=1 --cpus-per-task=1 --gpus-per-task=0 --time=10 \
  --output="$dir/out-c.%A_%a" launch/sweep.sbatch "$dir/plan" > "$dir/out-c-sbatch" 2>&1 &
sbatch_pid=$!
metrics="$dir/plan/points/001/run/metrics-rank-00000.jsonl"
ok=0
for _ in $(seq 1 600); do  # 60 s
  n="$(grep -c '"kind":"train"' "$metrics" 2> /dev/null)" || n=0
  [ "$n" -ge 3 ] && { ok=1; break; }
  kill -0 "$sbatch_pid" 2> /dev/null || fail "(c) sbatch --wait ended before point 1 trained"
  sleep 0.1
done
[ "$ok" = 1 ] || fail "(c) point 1 logged no training step within 60 s"
arr="$(sed -n 's/^Submitted batch job \([0-9]*\).*/\1/p' "$dir/out-c-sbatch")"
[ -n "$arr" ] || fail "(c) no job id from sbatch"
# The signal to array task 1 only, as its own time limit would send it.
scancel --signal=USR1 "${arr}_1" || fail "(c) scancel --signal=USR1 ${arr}_1" $?
echo "(c) array job $arr: SIGUSR1 sent to task ${arr}_1 after $(grep -c '"kind":"train"' "$metrics") steps ($(elapsed))"
code=0
wait "$sbatch_pid" || code=$?
[ "$code" -eq 0 ] || fail "(c) sbatch --wait --array=0-2 launch/sweep.sbatch" "$code"
state="$(job_state "${arr}_1")"
[ "${state#* }" -ge 1 ] 2> /dev/null || fail "(c) array task ${arr}_1 was not restarted: '$state'"
out_c1="$(ls "$dir"/out-c.*_1)"
stopped="$(grep -o "stopped by a signal at step [0-9]* of 150" "$out_c1")" ||
  fail "(c) no 'stopped by a signal' in array task ${arr}_1's output"
grep -q "requeueing array task ${arr}_1" "$out_c1" || fail "(c) array task ${arr}_1 was not requeued by its script"
grep -q "resumed from .* at step" "$out_c1" || fail "(c) array task ${arr}_1 did not resume from its checkpoint"
"$LONGREC" sweep collect --plan "$dir/plan" > "$dir/out-c-collect" 2>&1 || fail "(c) longrec sweep collect" $?
[ -f "$dir/plan/results.csv" ] || fail "(c) no results.csv"
done_points="$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "status") c = i; next }
                         c && $c == "done" { n++ } END { print n + 0 }' "$dir/plan/results.csv")"
[ "$done_points" -eq 3 ] || { cat "$dir/plan/results.csv"; fail "(c) $done_points of 3 points done in results.csv"; }
echo "(c) array task ${arr}_1: ${stopped}, requeued (Restarts=${state#* }), resumed;" \
     "sweep collect reports 3 points done ($(elapsed))"

echo "PASS: slurm_cluster ($(elapsed))"
