#!/usr/bin/env bash
# A full disk (issue 14): `prepare`, `synth`, `export` and a training run's
# checkpoint, writing onto a 1 MiB tmpfs, each end with exit code 1 (not a
# crash inside HDF5 at exit), a message naming the file being written and
# saying "No space left on device", and nothing under the target name: no
# dataset, bundle or step directory, no temporary left behind.
# Mounting needs root (CAP_SYS_ADMIN): elsewhere the test is skipped (exit 77).
#   tests/data/disk_full.sh LONGREC
set -euo pipefail
LONGREC="$1"
dir="$(mktemp -d)"
mnt="$dir/full"
trap 'mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"; rm -rf "$dir"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/../support/script_checks.sh"  # fail, ERR trap
mkdir -p "$mnt"
if [ "$(id -u)" -ne 0 ]; then
  echo "skipped: mounting a small tmpfs needs root, this is uid $(id -u)"; exit 77
fi
if ! mount -t tmpfs -o size=1m tmpfs "$mnt" 2> "$dir/mount.err"; then
  echo "skipped: cannot mount a tmpfs here: $(cat "$dir/mount.err")"; exit 77
fi

# Runs a command that must fail for want of space: exit code 1, the message,
# the mount left empty (or holding only what `keep` lists).
expect_full() {
  local what="$1"; shift
  local rc=0
  "$@" > "$dir/out.$what" 2>&1 || rc=$?
  [ "$rc" -eq 1 ] || fail "$what on a full disk: expected exit code 1" "$rc"
  grep -q "No space left on device" "$dir/out.$what" || fail "$what: no 'No space left on device' message"
  grep -q "$mnt/" "$dir/out.$what" || fail "$what: the message names no file under $mnt"
}
empty_mount() {
  local left
  left="$(cd "$mnt" && find . -mindepth 1 | sort | tr '\n' ' ')"
  [ -z "$left" ] || fail "$1: left behind on the full disk: $left"
  rm -rf "${mnt:?}"/* "$mnt"/.[!.]* 2>/dev/null || true
}

# prepare: 20000 users x 40 random items (a store of a few MiB).
awk 'BEGIN { srand(7); for (u = 1; u <= 20000; ++u) { line = u; for (t = 0; t < 40; ++t) line = line " " int(1 + rand() * 100000); print line } }' \
  > "$dir/seq.txt"
expect_full prepare "$LONGREC" prepare --input "$dir/seq.txt" --out "$mnt/store"
empty_mount prepare

expect_full synth "$LONGREC" synth --out "$mnt/synth" --users 20000 --items 5000 --mean_length 100
empty_mount synth

# export: a 5000 x 64 item table (1.3 MB) from a checkpoint on the ordinary disk.
"$LONGREC" synth --out "$dir/data" --users 60 --items 5000 --clusters 6 --mean_length 30 > /dev/null || fail synth $?
train=(--dataset "$dir/data" --model.dim=64 --model.blocks=1 --model.max_len=32 --data.max_len=32
       --train.max_steps=3 --train.threads=1 --train.eval_every=0)
"$LONGREC" train "${train[@]}" --run_dir "$dir/run" > "$dir/out.train" 2>&1 || fail "train on the ordinary disk" $?
expect_full export "$LONGREC" export --checkpoint "$dir/run" --out "$mnt/model.h5"
empty_mount export

# A checkpoint: the run directory on the full disk; the run's own files stay,
# no step directory, temporary or LATEST does, and the metrics hold whole lines.
expect_full checkpoint "$LONGREC" train "${train[@]}" --run_dir "$mnt/run"
grep -q "$mnt/run/ckpt/.step-000000003.tmp/" "$dir/out.checkpoint" || fail "checkpoint: the file is not named"
left="$(cd "$mnt/run/ckpt" && find . -mindepth 1 | tr '\n' ' ')"
[ -z "$left" ] || fail "checkpoint: left in ckpt/: $left"
for f in "$mnt"/run/metrics-rank-*.jsonl; do
  [ ! -s "$f" ] || [ "$(tail -c 1 "$f" | od -An -c | tr -d ' ')" = '\n' ] || fail "$f ends in a torn line"
done
echo "PASS: disk full"
