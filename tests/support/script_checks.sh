# Sourced by the shell tests once they have set $dir (their scratch directory):
#   fail WHAT [EXIT_CODE]  names what failed (and how the command ended: exit
#                          code, signal), shows the outputs $dir/out*, exits 1;
# and an ERR trap: any other command that fails ends the test with its exit
# code, naming the line.
fail() {
  local how=""
  if [ $# -ge 2 ]; then
    how=" (exit code $2"
    if [ "$2" -gt 128 ]; then how+=", signal $(kill -l "$(($2 - 128))" 2>/dev/null || echo "$(($2 - 128))")"; fi
    how+=")"
  fi
  echo "FAIL: $1$how"; echo "--- output:"; cat "$dir"/out* 2>/dev/null || true; exit 1
}
trap 'code=$?; echo "FAIL: line $LINENO: a command exited with code $code"; exit $code' ERR
