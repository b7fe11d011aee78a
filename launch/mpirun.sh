#!/usr/bin/env bash
# Starts a longrec command on N local ranks with the Open MPI flags this
# project needs: running as root where needed, shared-memory transport,
# no binding unless ranks x threads fills the cores, one intra-op thread per
# rank by default.
#   launch/mpirun.sh -n 2 build/src/cli/longrec info
set -euo pipefail
RANKS=2
while getopts "n:t:" opt; do
  case "$opt" in
    n) RANKS="$OPTARG" ;;
    t) export OMP_NUM_THREADS="$OPTARG" ;;
    *) echo "usage: $0 [-n ranks] [-t threads per rank] command ..." >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "usage: $0 [-n ranks] [-t threads per rank] command ..." >&2; exit 2; }
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
CORES=$(nproc)
FLAGS=(--mca btl self,vader -x OMP_NUM_THREADS)
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
if [ $((RANKS * OMP_NUM_THREADS)) -eq "$CORES" ]; then
  FLAGS+=(--bind-to core --map-by "ppr:${RANKS}:node:pe=${OMP_NUM_THREADS}")
else
  FLAGS+=(--bind-to none)
fi
[ "$RANKS" -gt "$CORES" ] && FLAGS+=(--oversubscribe)
exec mpirun -np "$RANKS" "${FLAGS[@]}" "$@"
