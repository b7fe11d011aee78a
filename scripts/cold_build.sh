#!/usr/bin/env bash
# Times a cold build (no ccache) of a commit in a fresh clone: first the
# `longrec` binary alone (what scripts/demo.sh builds), then every other
# target (what scripts/test.sh adds), printing wall and CPU seconds of each.
# CPU seconds (user + sys) are what to compare on a shared machine: other
# jobs inflate the wall time, not them.
#   bash scripts/cold_build.sh [REV]      # default HEAD; ~8-15 minutes on 2 cores
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REV="${1:-HEAD}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
git clone -q "$ROOT" "$dir/src"
git -C "$dir/src" checkout -q "$(git -C "$ROOT" rev-parse "$REV")"
ln -s "$ROOT/.venv" "$dir/src/.venv"
cd "$dir/src"
export CCACHE_DISABLE=1
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > "$dir/configure.log" 2>&1 \
  || { cat "$dir/configure.log"; exit 1; }
timed() {  # timed NAME ARGS...: one build step, its wall and CPU seconds
  local name=$1; shift
  /usr/bin/time -f "$name: wall %e s, CPU %U s user + %S s sys" -o "$dir/$name.time" "$@" > "$dir/$name.log" 2>&1 \
    || { tail -n 30 "$dir/$name.log"; echo "cold_build: $name failed" >&2; exit 1; }
  cat "$dir/$name.time"
}
echo "cold build of $(git rev-parse --short HEAD), -j2, ccache off"
timed longrec cmake --build build -j2 --target longrec
timed rest cmake --build build -j2
