#!/usr/bin/env bash
# The checks build: the torch-free modules (core, data readers and the history
# store, config, serving request parsing, the user-state layout, safetensors, SentencePiece tokenizers) and their
# tests compiled with clang under AddressSanitizer + UndefinedBehaviorSanitizer,
# plus the libFuzzer targets, each fuzzed for a few seconds from its seed
# corpus. Part of scripts/test.sh.
#   scripts/check_sanitizers.sh            # build into build-checks/ and run its tests
# LONGREC_FUZZ_SECONDS=N sets the seconds per fuzz smoke test (default 4).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD_DIR="${LONGREC_CHECKS_BUILD_DIR:-build-checks}"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$ROOT}"
echo "[checks] configuring $BUILD_DIR (clang, address + undefined sanitizers, libFuzzer)"
mkdir -p "$BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DLONGREC_TORCH_FREE=ON -DLONGREC_SANITIZE=address,undefined -DLONGREC_FUZZ=ON \
  -DLONGREC_FUZZ_SECONDS="${LONGREC_FUZZ_SECONDS:-4}" > "$BUILD_DIR/configure.log" 2>&1 \
  || { cat "$BUILD_DIR/configure.log"; echo "[checks] FAILED at step: cmake configure" >&2; exit 1; }
cmake --build "$BUILD_DIR" -j "${LONGREC_JOBS:-2}" || { echo "[checks] FAILED at step: compile" >&2; exit 1; }
# Any sanitizer report ends the test that caused it with a failure.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
cd "$BUILD_DIR"
ctest --output-on-failure -j "${LONGREC_JOBS:-2}" --timeout 600
