# A throw-away one-machine Slurm cluster for the tests (sourced, bash):
#   source tests/launch/local_slurm.sh
#   trap 'slurm_stop || exit $?' EXIT   # its status: STATUS (default $?), or 1 if processes were left
#   slurm_start DIR      # DIR: a new or empty directory, removed by slurm_stop
#   sbatch ...           # SLURM_CONF points at DIR/slurm.conf
#
# slurm_start starts munged (its own key and socket), slurmctld and slurmd on
# this machine: one node of $(nproc) CPUs, one partition `debug`, state, spool,
# logs and sockets all in DIR, private TCP ports picked at random and checked
# free, job ids from a random start, so that two test runs at once do not
# meet. It returns once the node is idle. Where such a cluster cannot start
# here (not root, a binary missing) it prints `SKIP: <reason>` and exits 77,
# the tests' skip code.
#
# slurm_stop [STATUS] cancels the cluster's jobs, stops the daemons it started by PID
# (TERM, then KILL after a grace period), then ends any process still holding
# this cluster's SLURM_CONF in its environment (slurmstepd and the job's tasks,
# which slurmd starts outside the test's process tree), checks that none is
# left and removes DIR. Returns STATUS (default: $? when called), or 1 where
# processes were left. Safe to call twice and before slurm_start.
#
# The configuration is the least that runs jobs as root without cgroups:
# proctrack/linuxproc, task/none (so srun warns "cluster configuration lacks
# support for cpu binding"), select/cons_tres, and MpiDefault=none as Debian's
# slurm-wlm ships, so a job's srun gets an MPI plugin only by asking for one.
# The controller and the node are addressed as 127.0.0.1, so neither needs the
# host name to resolve. AuthInfo cred_expire=10: Slurm holds a requeued batch
# job for the credential lifetime (default 120 s) before it may start again;
# 10 s keeps the requeue test short.

# Locals carry a _sl_ prefix: slurm_start may exit (skip, failure), and the
# caller's EXIT trap then runs inside its scope, seeing its locals.
SLURM_LOCAL_DIR=""
SLURM_LOCAL_PIDS=()      # munged, slurmctld, slurmd: "name:pid"

slurm_skip() { echo "SKIP: $*"; exit 77; }

# Prints a free TCP port in [LOW, HIGH) or nothing.
slurm_free_port() {
  local low="$1" high="$2" p _
  for _ in $(seq 1 50); do
    p=$((low + RANDOM % (high - low)))
    if ! ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null | grep -q .; then echo "$p"; return 0; fi
  done
  return 1
}

# Fails the caller naming WHAT, with the tail of each daemon log.
slurm_fail_start() {
  echo "FAIL: local Slurm: $1"
  local _sl_f
  for _sl_f in "$SLURM_LOCAL_DIR"/log/*; do
    [ -f "$_sl_f" ] || continue
    echo "--- tail of $_sl_f:"; tail -n 20 "$_sl_f"
  done
  exit 1
}

slurm_start() {
  local _sl_dir="$1" _sl_b _sl_host _sl_ctld_port _sl_slurmd_port _sl_first_job _sl_conf
  [ "$(id -u)" = 0 ] || slurm_skip "a local Slurm cluster needs root (slurmd runs jobs as their user); running as $(id -un)"
  for _sl_b in munged munge slurmctld slurmd sbatch srun scontrol scancel squeue sinfo ss; do
    command -v "$_sl_b" > /dev/null || slurm_skip "'$_sl_b' not found (scripts/setup.sh installs slurm-wlm and munge)"
  done
  mkdir -p "$_sl_dir"
  SLURM_LOCAL_DIR="$(cd "$_sl_dir" && pwd)"
  # munged refuses a socket its clients cannot reach: the path must be searchable.
  chmod 0755 "$SLURM_LOCAL_DIR"
  mkdir -p "$SLURM_LOCAL_DIR"/{munge,state,spool,log,tmp}
  chmod 0711 "$SLURM_LOCAL_DIR/munge"

  # munge: a fresh key, its own socket; foreground (-F) in the background so the PID is ours.
  dd if=/dev/urandom of="$SLURM_LOCAL_DIR/munge/munge.key" bs=1024 count=1 status=none
  chmod 0400 "$SLURM_LOCAL_DIR/munge/munge.key"
  local _sl_sock="$SLURM_LOCAL_DIR/munge/munge.sock"
  # (In the foreground munged logs to stderr, not to --log-file.)
  munged -F --force --socket="$_sl_sock" --key-file="$SLURM_LOCAL_DIR/munge/munge.key" \
    --pid-file="$SLURM_LOCAL_DIR/munge/munged.pid" --log-file="$SLURM_LOCAL_DIR/log/munged.log" \
    --seed-file="$SLURM_LOCAL_DIR/munge/munged.seed" > "$SLURM_LOCAL_DIR/log/munged.out" 2>&1 &
  SLURM_LOCAL_PIDS+=("munged:$!")
  local _sl_ok=0 _
  for _ in $(seq 1 100); do
    if munge -S "$_sl_sock" -n 2> /dev/null | unmunge -S "$_sl_sock" > /dev/null 2>&1; then _sl_ok=1; break; fi
    sleep 0.1
  done
  [ "$_sl_ok" = 1 ] || slurm_fail_start "munged did not answer on $_sl_sock within 10 s"

  _sl_host="$(hostname -s)"
  _sl_ctld_port="$(slurm_free_port 20000 45000)" || slurm_fail_start "no free TCP port for slurmctld"
  _sl_slurmd_port="$(slurm_free_port 45000 60000)" || slurm_fail_start "no free TCP port for slurmd"
  # Job ids from a random start: srun-launched Open MPI ranks name their shared
  # memory (/dev/shm/vader_segment.HOST.JOBID...) after the PMIx namespace,
  # slurm.pmix.JOBID.STEP, so two clusters both at job 3 would share segments.
  _sl_first_job=$((1000 + (RANDOM * 32768 + RANDOM) % 60000000))
  _sl_conf="$SLURM_LOCAL_DIR/slurm.conf"
  cat > "$_sl_conf" << EOF
# Generated by tests/launch/local_slurm.sh: a one-machine cluster for the tests.
ClusterName=longrec-test
SlurmctldHost=$_sl_host(127.0.0.1)
SlurmctldPort=$_sl_ctld_port
SlurmdPort=$_sl_slurmd_port
AuthType=auth/munge
AuthInfo=socket=$_sl_sock,cred_expire=10
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$SLURM_LOCAL_DIR/state
SlurmdSpoolDir=$SLURM_LOCAL_DIR/spool
TmpFS=$SLURM_LOCAL_DIR/tmp
SlurmctldPidFile=$SLURM_LOCAL_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_LOCAL_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_LOCAL_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_LOCAL_DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
JobRequeue=1
FirstJobId=$_sl_first_job
SchedulerParameters=sched_interval=2,bf_interval=2
ReturnToService=2
SlurmdTimeout=30
KillWait=5
MailProg=/bin/true
NodeName=$_sl_host NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$_sl_conf"
  # Foreground (-D) in the background: the PIDs are ours to stop. -c: no state to recover.
  slurmctld -D -c -f "$_sl_conf" > "$SLURM_LOCAL_DIR/log/slurmctld.out" 2>&1 &
  SLURM_LOCAL_PIDS+=("slurmctld:$!")
  slurmd -D -f "$_sl_conf" > "$SLURM_LOCAL_DIR/log/slurmd.out" 2>&1 &
  SLURM_LOCAL_PIDS+=("slurmd:$!")

  local _sl_state="" _sl_entry
  for _ in $(seq 1 300); do
    for _sl_entry in "${SLURM_LOCAL_PIDS[@]}"; do
      kill -0 "${_sl_entry#*:}" 2> /dev/null || slurm_fail_start "${_sl_entry%%:*} exited during start-up"
    done
    _sl_state="$(sinfo -h -n "$_sl_host" -o %t 2> /dev/null || true)"
    [ "$_sl_state" = idle ] && break
    sleep 0.1
  done
  [ "$_sl_state" = idle ] ||
    slurm_fail_start "node $_sl_host not idle 30 s after start (state '${_sl_state}'); logs in $SLURM_LOCAL_DIR/log"
  echo "local Slurm: node $_sl_host idle, $(nproc) CPUs, slurmctld port $_sl_ctld_port, slurmd port $_sl_slurmd_port," \
       "SLURM_CONF=$_sl_conf (pids ${SLURM_LOCAL_PIDS[*]})"
}

# PIDs of processes other than this shell whose environment holds this cluster's SLURM_CONF.
slurm_cluster_pids() {
  local p pid
  for p in /proc/[0-9]*; do
    pid="${p#/proc/}"
    if [ "$pid" = "$$" ] || [ "$pid" = "$BASHPID" ]; then continue; fi
    grep -qzxF "SLURM_CONF=$SLURM_LOCAL_DIR/slurm.conf" "$p/environ" 2> /dev/null && echo "$pid"
  done
  return 0
}

# TERM the PIDs, KILL those alive after GRACE seconds.
slurm_kill_pids() {
  local grace="$1" pid alive _
  shift
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2> /dev/null || true
  for _ in $(seq 1 $((grace * 10))); do
    alive=0
    for pid in "$@"; do kill -0 "$pid" 2> /dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.1
  done
  for pid in "$@"; do
    kill -0 "$pid" 2> /dev/null && { echo "local Slurm: pid $pid ignored TERM for ${grace} s, KILL"; kill -KILL "$pid" 2> /dev/null; }
  done
  return 0
}

slurm_stop() {
  local code="${1:-$?}" entry i had_e=0 pids=() left=() _
  [ -n "$SLURM_LOCAL_DIR" ] || return "$code"
  # Runs from an EXIT trap: no command here may end it half-way.
  case "$-" in *e*) had_e=1 ;; esac
  set +e
  # Jobs first, while slurmctld and slurmd still run to end them.
  if [ ${#SLURM_LOCAL_PIDS[@]} -eq 3 ] && kill -0 "${SLURM_LOCAL_PIDS[1]#*:}" 2> /dev/null &&
     [ -n "$(squeue -h -o %i 2> /dev/null)" ]; then
    scancel --user=root 2> /dev/null
    for _ in $(seq 1 150); do [ -z "$(squeue -h -o %i 2> /dev/null)" ] && break; sleep 0.1; done
  fi
  # The daemons, in the reverse order of their start.
  for ((i = ${#SLURM_LOCAL_PIDS[@]} - 1; i >= 0; i--)); do
    entry="${SLURM_LOCAL_PIDS[$i]}"
    slurm_kill_pids 10 "${entry#*:}"
    wait "${entry#*:}" 2> /dev/null
  done
  SLURM_LOCAL_PIDS=()
  # What slurmd started outside our process tree: slurmstepd, the jobs' tasks.
  mapfile -t pids < <(slurm_cluster_pids)
  if [ ${#pids[@]} -gt 0 ]; then
    echo "local Slurm: ending processes left by the cluster: ${pids[*]}"
    slurm_kill_pids 5 "${pids[@]}"
  fi
  mapfile -t left < <(slurm_cluster_pids)
  if [ ${#left[@]} -gt 0 ]; then
    echo "FAIL: local Slurm: processes still running after slurm_stop: ${left[*]} (kept $SLURM_LOCAL_DIR)"
    [ "$code" = 0 ] && code=1
  else
    rm -rf "$SLURM_LOCAL_DIR"
  fi
  SLURM_LOCAL_DIR=""
  [ "$had_e" = 1 ] && set -e
  return "$code"
}
