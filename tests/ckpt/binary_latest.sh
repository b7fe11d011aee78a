#!/usr/bin/env bash
# `longrec eval --checkpoint RUN` where RUN/ckpt/LATEST holds 13 binary bytes
# and there is no step directory: prints longrec's message and exits with its code.
#   tests/ckpt/binary_latest.sh LONGREC
set -u
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/ckpt"
printf '\000\001\002\377step\177\n\000\000\000' > "$dir/ckpt/LATEST"
"$1" eval --checkpoint "$dir"
