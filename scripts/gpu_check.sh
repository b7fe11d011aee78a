#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, the CUDA toolkit and torch
# 2.x, build longrec with CUDA/NCCL, run the unit tests (the NCCL ones run
# instead of skipping), train one rank on the GPU for a few hundred steps
# (bf16 autocast) and run the collective benchmark over NCCL; print a short
# table to paste into docs/results.md.
#
#   bash scripts/gpu_check.sh                      # machine with network: scripts/setup.sh installs the rest
#   LONGREC_DEBS=shared/debs bash scripts/gpu_check.sh   # offline: Debian packages from a directory
#   bash scripts/gpu_check.sh --pack shared/debs   # (on a Debian 12 machine with network) fetch those packages
#
# Environment: LONGREC_TORCH_PYTHON (a python whose torch to build against;
# default: .venv, else python3), STEPS (training steps, default 300),
# GPU_CHECK_BUILD (build directory, default build-gpu).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DEBS=(libopenmpi-dev openmpi-bin libhdf5-dev zlib1g-dev libboost-program-options-dev libfmt-dev
      libgtest-dev nlohmann-json3-dev libsentencepiece-dev libcpp-httplib-dev)

if [ "${1:-}" = "--pack" ]; then
  out="${2:?usage: $0 --pack DIR}"
  mkdir -p "$out"
  # The packages and every dependency a bare Debian 12 image lacks.
  deps=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
           --no-enhances "${DEBS[@]}" | grep '^[a-z0-9]' | sort -u)
  (cd "$out" && apt-get download $deps)
  du -sh "$out"
  exit 0
fi

STEPS="${STEPS:-300}"
BUILD="${GPU_CHECK_BUILD:-build-gpu}"
log() { echo "[gpu_check] $*"; }
command -v nvidia-smi > /dev/null || { log "no nvidia-smi: not a GPU machine"; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

if [ -n "${LONGREC_DEBS:-}" ]; then
  log "installing Debian packages from $LONGREC_DEBS"
  dpkg -i --force-depends "$LONGREC_DEBS"/*.deb > "$ROOT/gpu-check-dpkg.log" 2>&1 || true
elif ! dpkg-query -W libhdf5-dev > /dev/null 2>&1; then
  bash scripts/setup.sh
fi

PY="${LONGREC_TORCH_PYTHON:-}"
[ -n "$PY" ] || { [ -x .venv/bin/python ] && PY=.venv/bin/python || PY=python3; }
TORCH_CMAKE=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
log "torch $("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)') from $PY"
# NCCL from the nvidia-nccl wheel next to torch when the system has none.
NCCL_ROOT=$("$PY" -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null || true)
if [ -n "$NCCL_ROOT" ] && [ ! -e "$NCCL_ROOT/lib/libnccl.so" ]; then
  ln -sf "$(ls "$NCCL_ROOT"/lib/libnccl.so.* | head -1)" "$NCCL_ROOT/lib/libnccl.so"
fi

log "configuring $BUILD with LONGREC_CUDA=ON"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGREC_CUDA=ON \
  -DCMAKE_PREFIX_PATH="$TORCH_CMAKE" ${NCCL_ROOT:+-DCMAKE_INCLUDE_PATH=$NCCL_ROOT/include} \
  ${NCCL_ROOT:+-DCMAKE_LIBRARY_PATH=$NCCL_ROOT/lib} > gpu-check-configure.log 2>&1 ||
  { tail -30 gpu-check-configure.log; exit 1; }
start=$(date +%s)
cmake --build "$BUILD" -j "$(nproc)" > gpu-check-build.log 2>&1 || { tail -40 gpu-check-build.log; exit 1; }
build_s=$(( $(date +%s) - start ))

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
start=$(date +%s)
(cd "$BUILD" && ctest -j "$(nproc)" --timeout 900 > "$ROOT/gpu-check-ctest.log" 2>&1) && tests="all passed" ||
  tests="FAILED: $(grep -c 'Failed\|Not Run' gpu-check-ctest.log) (gpu-check-ctest.log)"
tests_s=$(( $(date +%s) - start ))
summary=$(grep "tests passed" "$ROOT/gpu-check-ctest.log" || true)

LONGREC="$BUILD/src/cli/longrec"
RUN=$(mktemp -d)
"$LONGREC" synth --config configs/synth/demo.ini --out "$RUN/data" --overwrite > /dev/null
start=$(date +%s)
"$LONGREC" train --config configs/synth/hstu-demo.ini --dataset "$RUN/data" --run_dir "$RUN/train" \
  --train.device=cuda --train.max_steps="$STEPS" --train.log_every=50 > gpu-check-train.log 2>&1 ||
  { tail -20 gpu-check-train.log; exit 1; }
train_s=$(( $(date +%s) - start ))
last_step=$(grep "^step" gpu-check-train.log | tail -1 || true)
eval_line=$(grep "eval test" gpu-check-train.log | tail -1 || true)

"$LONGREC" bench comm --bench.device=cuda -b 8 -e 256M -f 4 > gpu-check-comm.log 2>&1 || true
GPUS=$(nvidia-smi -L | wc -l)
watchdog="needs 2 GPUs"
if [ "$GPUS" -ge 2 ]; then
  mpirun -np 2 --bind-to none "$LONGREC" bench comm --bench.device=cuda -b 8 -e 256M -f 4 > gpu-check-comm.log 2>&1 || true
  # The NCCL watchdog (issue 14): rank 1 stopped while training on 2 GPUs; the
  # job must end within the 10 s collective timeout (plus start-up) with a report.
  mpirun -np 2 --bind-to none "$LONGREC" train --config configs/synth/hstu-demo.ini --dataset "$RUN/data" \
    --run_dir "$RUN/watchdog" --train.device=cuda --train.epochs=1000 --train.log_every=1 \
    --train.collective_timeout=10 > gpu-check-watchdog.log 2>&1 &
  job=$!
  for _ in $(seq 1 600); do grep -q "^\[info\] step" "$RUN/watchdog/train-rank-00001.log" 2>/dev/null && break; sleep 0.2; done
  pid=$(grep -m 1 -o "pid [0-9]*" "$RUN/watchdog/train-rank-00001.log" | cut -d' ' -f2 || true)
  start=$(date +%s)
  [ -n "$pid" ] && kill -STOP "$pid"
  for _ in $(seq 1 600); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$job" 2>/dev/null && { kill -9 "$job"; watchdog="FAILED: still running 60 s after rank 1 was stopped"; }
  [ -n "$pid" ] && { kill -CONT "$pid"; kill -9 "$pid"; } 2>/dev/null || true
  report=$(grep -m 1 "did not complete on the GPU" gpu-check-watchdog.log || true)
  [ "$watchdog" = "needs 2 GPUs" ] && watchdog="ended after $(( $(date +%s) - start )) s: ${report:-FAILED: no report}"
fi

echo
echo "| check | result |"
echo "|---|---|"
echo "| GPU | $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x $GPUS |"
echo "| build (CUDA + NCCL) | ${build_s} s |"
echo "| unit tests | $tests, ${tests_s} s; $summary |"
echo "| train $STEPS steps (hstu-demo, bf16) | ${train_s} s; $last_step |"
echo "| eval after training | ${eval_line#*: } |"
largest=$(awk '/^# all_reduce/ {f = 1; next} /^# all_gather/ {f = 0} f && !/^#/ {l = $0} END {print l}' gpu-check-comm.log)
echo "| bench comm (largest all_reduce: size count type us algbw busbw #wrong) | $largest |"
echo "| NCCL watchdog: rank 1 of 2 stopped (SIGSTOP), 10 s timeout | $watchdog |"
rm -rf "$RUN"
