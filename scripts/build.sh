#!/usr/bin/env bash
# Configures and builds longrec into build/ (Release, Ninja, ccache), after
# making sure the dependencies are installed. Extra arguments go to CMake,
# e.g. scripts/build.sh -DLONGREC_CUDA=OFF. LONGREC_BUILD_TARGETS limits the
# build to some targets (scripts/demo.sh: `longrec` only, not the test suite).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
BUILD_DIR="${LONGREC_BUILD_DIR:-build}"
# Paths relative to the checkout in ccache keys, so that a fresh clone reuses the cache.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$ROOT}"
# Two parallel jobs at most: a translation unit that sees LibTorch needs ~1.5 GB.
JOBS="${LONGREC_JOBS:-2}"
echo "[build] configuring $BUILD_DIR"
mkdir -p "$BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" > "$BUILD_DIR/configure.log" 2>&1 \
  || { cat "$BUILD_DIR/configure.log"; echo "[build] FAILED at step: cmake configure" >&2; exit 1; }
TARGETS=()
for t in ${LONGREC_BUILD_TARGETS:-}; do TARGETS+=(--target "$t"); done
echo "[build] building ${LONGREC_BUILD_TARGETS:-every target} with $JOBS jobs"
cmake --build "$BUILD_DIR" -j "$JOBS" "${TARGETS[@]}" || { echo "[build] FAILED at step: compile" >&2; exit 1; }
