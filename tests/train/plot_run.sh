#!/usr/bin/env bash
# scripts/plot_run.py: a PNG of a run's curves from its metrics JSONL (loss, lr,
# evaluation metrics over steps), a torn last line skipped, and the refusals
# (missing run, malformed line, unknown metric) naming what is wrong.
#   plot_run.sh PYTHON SCRIPT
set -u
PY=$1
SCRIPT=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir "$dir/run"
m="$dir/run/metrics-rank-00000.jsonl"
for s in 10 20 30 40; do
  echo "{\"kind\":\"train\",\"step\":$s,\"loss\":$((50 - s)).5,\"lr\":0.001,\"epoch\":0}" >> "$m"
done
echo '{"kind":"eval","step":20,"ndcg@10":0.1,"hr@10":0.2,"mrr":0.05}' >> "$m"
echo '{"kind":"eval","step":40,"ndcg@10":0.2,"hr@10":0.3,"mrr":0.07}' >> "$m"
printf '{"kind":"train","step":50,"lo' >> "$m"   # torn by a kill mid-write

out=$("$PY" "$SCRIPT" "$dir/run" 2>&1) || { echo "$out"; fail "plot"; }
echo "$out" | grep -q "wrote $dir/run/curves.png: 4 training points, 2 evaluations" || { echo "$out"; fail "summary"; }
echo "$out" | grep -q "metrics-rank-00000.jsonl:7: torn last line skipped" || { echo "$out"; fail "torn line not named"; }
[ "$(head -c 8 "$dir/run/curves.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "not a PNG"
[ "$(stat -c %s "$dir/run/curves.png")" -gt 10000 ] || fail "PNG too small to hold three plots"
ls "$dir/run" | grep -q "tmp-" && fail "temporary left behind"

out=$("$PY" "$SCRIPT" "$dir/run" --metrics ndcg@5 2>&1) && fail "unknown metric accepted"
echo "$out" | grep -q "'ndcg@5' is not in the run's evaluations (it has hr@10, mrr, ndcg@10)" || { echo "$out"; fail "metric"; }
out=$("$PY" "$SCRIPT" "$dir/nothing" 2>&1) && fail "missing run accepted"
echo "$out" | grep -q "$dir/nothing: not a run directory" || { echo "$out"; fail "missing run"; }
sed -i '2s/.*/not json/' "$m"
out=$("$PY" "$SCRIPT" "$dir/run" 2>&1) && fail "malformed line accepted"
echo "$out" | grep -q "metrics-rank-00000.jsonl:2: not a JSON object" || { echo "$out"; fail "malformed line"; }
echo "PASS: plot_run"
