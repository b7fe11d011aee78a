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
# `longrec llama` (when LONGREC is given) loads the same directory and runs ids through it.
if [ -n "${LONGREC:-}" ]; then
  "$LONGREC" llama --dir "$dir" --ids 5,17,250 > "$dir/llama.out"
  cat "$dir/llama.out"
  grep -q "hidden 64, 2 layers, 4 heads (2 key/value)" "$dir/llama.out"
  [ "$(grep -c '^hidden state [0-2]: rms [0-9.]*$' "$dir/llama.out")" -eq 3 ]
  echo "PASS: longrec llama"
fi
