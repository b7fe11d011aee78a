#!/usr/bin/env bash
# llama_parity.sh TEST_LLAMA PYTHON REFERENCE_SCRIPT [HEAD_DIM]: writes the transformers reference into a
# temporary directory, then runs test_llama's LlamaParity suite against it.
set -euo pipefail
exe="$1"; python="$2"; script="$3"; shift 3
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$python" "$script" "$dir" "$@"
LONGREC_LLAMA_REFERENCE="$dir" "$exe" --gtest_filter='LlamaParity.*'
# What longrec saved (the suite wrote $dir/cpp and $dir/cpp-bf16) loads in transformers with the same outputs.
"$python" "$script" --check "$dir"
