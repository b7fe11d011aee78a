#!/usr/bin/env bash
# `longrec sweep plan / run / collect` end to end on a tiny synthetic store:
# the plan's figures, a point stopped by SIGUSR1 resumed to the losses of an
# uninterrupted run, a 2-rank point equal to the 1-rank one, a failed point
# recorded while the others finish, a busy point refused, collect's counts;
# and the refusals (unknown key, bad value, a budget below one step, another
# sweep's plan directory), nothing written by a refused plan.
#   sweep_cli.sh LONGREC REPO_ROOT
set -u
LONGREC=$1
ROOT=$2
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export OMP_NUM_THREADS=1

"$LONGREC" synth --config "$ROOT/configs/synth/demo.ini" --synth.users=300 --synth.items=500 --synth.mean_length=60 \
  --synth.min_length=20 --synth.max_length=200 --synth.num_parts=2 --synth.out="$dir/data" > /dev/null ||
  fail "synth"

descriptor() {  # name budget-line extra-lines...
  local name=$1 budgets=$2
  shift 2
  {
    printf '[sweep]\nname = %s\nbase = %s\nbudget = steps\nbudgets = %s\n' "$name" "$ROOT/configs/synth/hstu-demo.ini" "$budgets"
    printf '[set]\ntrain.dataset = %s\ntrain.log_every = 1\ntrain.ckpt_every = 4\ntrain.threads = 1\n' "$dir/data"
    printf 'data.split = last2\ndata.batch_size = 32\nmodel.num_negatives = 32\nmodel.dropout = 0\n'  # dropout masks depend on the rank
    printf '%s\n' "$@"
  } > "$dir/$name.ini"
}
descriptor s 12 '[points]' 'd16 = model.size=hstu-d16-l1-h1' 'd32 = model.size=hstu-d32-l2-h2' '[grid]' 'model.seed = 1, 2'

# --- refusals: the point and the key named, nothing written
descriptor bad1 12 '[grid]' 'model.dimm = 8, 16'
out=$("$LONGREC" sweep plan --sweep "$dir/bad1.ini" --out "$dir/p-bad" 2>&1) && fail "unknown key accepted"
echo "$out" | grep -q "sweep point 0 (model.dimm=8)" || { echo "$out"; fail "unknown key: point not named"; }
echo "$out" | grep -q "model.dimm" || { echo "$out"; fail "unknown key not named"; }
descriptor bad2 12 '[points]' 'ok = model.size=hstu-d16-l1-h1' 'odd = model.size=hstu-d16-l1-h1 model.temperature=-1'
out=$("$LONGREC" sweep plan --sweep "$dir/bad2.ini" --out "$dir/p-bad" 2>&1) && fail "bad heads accepted"
echo "$out" | grep -q "config key 'model.temperature': sweep point 1 (odd: model.size=hstu-d16-l1-h1 model.temperature=-1)" ||
  { echo "$out"; fail "bad value: point/key not named"; }
sed 's/^budget = steps/budget = flops/; s/^budgets = 12/budgets = 1000/' "$dir/s.ini" > "$dir/bad3.ini"
out=$("$LONGREC" sweep plan --sweep "$dir/bad3.ini" --out "$dir/p-bad" 2>&1) && fail "tiny budget accepted"
echo "$out" | grep -q "config key 'sweep.budgets': sweep point 0 (d16: model.size=hstu-d16-l1-h1 model.seed=1): a budget of 1e+03 FLOPs is less than one training step" ||
  { echo "$out"; fail "budget below one step"; }
descriptor bad4 12 '[grid]' 'model.seed ='
out=$("$LONGREC" sweep plan --sweep "$dir/bad4.ini" --out "$dir/p-bad" 2>&1) && fail "empty grid accepted"
echo "$out" | grep -q "bad4.ini:.*\[grid\] model.seed has no values" || { echo "$out"; fail "empty grid"; }
[ -e "$dir/p-bad" ] && fail "a refused plan wrote $dir/p-bad"

# --- plan: 4 points, figures
out=$("$LONGREC" sweep plan --sweep "$dir/s.ini" --out "$dir/A" 2>&1) || { echo "$out"; fail "plan"; }
echo "$out" | grep -q "planned 4 points into $dir/A" || { echo "$out"; fail "plan summary"; }
echo "$out" | grep -q "sbatch --array=0-3 --ntasks=1 launch/sweep.sbatch $dir/A" || { echo "$out"; fail "sbatch hint"; }
[ "$(wc -l < "$dir/A/plan.csv")" -eq 5 ] || fail "plan.csv rows"
grep -q '^2,d32,model.size=hstu-d32-l2-h2 model.seed=1,steps,12,' "$dir/A/plan.csv" || { cat "$dir/A/plan.csv"; fail "plan.csv row 2"; }
grep -q '^max_steps = 12$' "$dir/A/points/003/config.ini" || fail "point config has no budget"
grep -q '^seed = 2$' "$dir/A/points/003/config.ini" || fail "point config has no seed"
# The same descriptor again: accepted (the plan is rewritten, runs kept); another sweep's: refused.
"$LONGREC" sweep plan --sweep "$dir/s.ini" --out "$dir/A" > /dev/null 2>&1 || fail "re-plan of the same sweep"
descriptor other 12
out=$("$LONGREC" sweep plan --sweep "$dir/other.ini" --out "$dir/A" 2>&1) && fail "another sweep's plan directory accepted"
echo "$out" | grep -q "$dir/A holds the plan of sweep 's'" || { echo "$out"; fail "foreign plan not named"; }
mkdir "$dir/junk" && touch "$dir/junk/x"
out=$("$LONGREC" sweep plan --sweep "$dir/s.ini" --out "$dir/junk" 2>&1) && fail "non-empty directory accepted"
echo "$out" | grep -q "is not empty and holds no sweep plan" || { echo "$out"; fail "junk dir"; }
out=$("$LONGREC" sweep run --plan "$dir/junk" --all 2>&1) && fail "run of a non-plan accepted"
echo "$out" | grep -q "$dir/junk is not a sweep plan (no sweep.json)" || { echo "$out"; fail "run non-plan"; }
out=$("$LONGREC" sweep run --plan "$dir/A" --point 4 2>&1) && fail "point 4 of 4 accepted"
echo "$out" | grep -q "got 4, the plan $dir/A has points 0 to 3" || { echo "$out"; fail "point range"; }
cp -r "$dir/A" "$dir/B"

# --- collect before anything ran: 4 pending
"$LONGREC" sweep collect --plan "$dir/A" | grep -q "4 points: 4 pending" || fail "collect pending"

# --- a stop signal: exit 75 with a checkpoint, collect says interrupted, a second run resumes
"$LONGREC" sweep run --plan "$dir/A" --point 2 > "$dir/stop.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
  [ -f "$dir/A/points/002/run/metrics-rank-00000.jsonl" ] &&
    [ "$(grep -c '"kind":"train"' "$dir/A/points/002/run/metrics-rank-00000.jsonl")" -ge 5 ] && break
  sleep 0.05
done
kill -USR1 $pid
wait $pid
code=$?
[ $code -eq 75 ] || { cat "$dir/stop.log"; fail "stopped run exited $code, expected 75"; }
ls "$dir/A/points/002/run/ckpt" | grep -q step- || fail "no checkpoint after the stop"
"$LONGREC" sweep collect --plan "$dir/A" | grep -q "4 points: 1 interrupted, 3 pending" || fail "collect interrupted"
# A point another process holds is refused (flock(1) stands in for it).
flock --no-fork "$dir/A/points/002/.lock" sleep 30 &  # --no-fork: $! holds the lock itself
holder=$!
sleep 0.3
out=$("$LONGREC" sweep run --plan "$dir/A" --point 2 2>&1) && fail "a busy point ran"
echo "$out" | grep -q "sweep point 2 is being run by another process" || { echo "$out"; fail "busy point"; }
"$LONGREC" sweep collect --plan "$dir/A" | grep -q "1 running" || fail "collect running"
kill $holder; wait $holder 2>/dev/null

# --- a failed point: its config edited after the plan; --all records it and runs the others
echo "# edited" >> "$dir/A/points/001/config.ini"
"$LONGREC" sweep run --plan "$dir/A" --all > "$dir/all.log" 2>&1
code=$?
[ $code -eq 1 ] || { tail -20 "$dir/all.log"; fail "--all with a failed point exited $code, expected 1"; }
grep -q "differs from the config the plan checked" "$dir/A/points/001/error.txt" || fail "error.txt"
grep -q "resumed from .*step-0000000" "$dir/A/points/002/run/train-rank-00000.log" ||
  { grep resumed "$dir/A/points/002/run/train-rank-00000.log"; fail "point 2 did not resume"; }
out=$("$LONGREC" sweep collect --plan "$dir/A") || fail "collect"
echo "$out" | grep -q "4 points: 3 done, 1 failed" || { echo "$out"; fail "collect counts"; }
grep -q '^1,d16,.*,failed,.*differs from the config the plan checked' "$dir/A/results.csv" || fail "failed row"
# A finished point is skipped.
"$LONGREC" sweep run --plan "$dir/A" --point 0 2>&1 | grep -q "sweep point 0 is done .*: skipped" || fail "done point not skipped"

# --- plan B uninterrupted, point 2 on 2 ranks: the same losses
"$LONGREC" sweep run --plan "$dir/B" --point 2 > /dev/null 2>&1 || fail "point 2 of B"
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 2 --oversubscribe --bind-to none \
  --mca btl self,vader "$LONGREC" sweep run --plan "$dir/B" --point 0 > "$dir/mpi.log" 2>&1 ||
  { tail -20 "$dir/mpi.log"; fail "2-rank point"; }
[ -f "$dir/B/points/000/run/train-rank-00001.log" ] || fail "point 0 of B did not run on 2 ranks"
"$LONGREC" sweep collect --plan "$dir/B" > /dev/null || fail "collect B"
python3 - "$dir" <<'EOF' || fail "losses differ"
import csv, json, sys
d = sys.argv[1]
def losses(plan, point):
    by_step = {}
    for line in open(f"{d}/{plan}/points/{point:03d}/run/metrics-rank-00000.jsonl"):
        r = json.loads(line)
        if r["kind"] == "train":
            by_step[int(r["step"])] = r["loss"]  # the last record of a step (a resumed run repeats steps)
    return by_step
# sweep run evaluates valid and test itself: training's own final evaluation is off.
assert not any(json.loads(l)["kind"] == "eval" for l in open(f"{d}/A/points/000/run/metrics-rank-00000.jsonl"))
a, b = losses("A", 2), losses("B", 2)
assert sorted(a) == list(range(1, 13)) and sorted(b) == sorted(a), (sorted(a), sorted(b))
diff = max(abs(a[s] - b[s]) for s in a)
print(f"stopped and resumed vs uninterrupted: {len(a)} steps, max loss difference {diff:.3g}")
assert diff == 0, diff
one, two = losses("A", 0), losses("B", 0)
rel = max(abs(one[s] - two[s]) / abs(one[s]) for s in one)
print(f"2 ranks vs 1 rank: {len(one)} steps, max relative loss difference {rel:.3g}")
assert sorted(one) == sorted(two) and rel < 1e-4, rel
rows = {int(r["point"]): r for r in csv.DictReader(open(f"{d}/A/results.csv"))}
for p in (0, 2, 3):
    r = rows[p]
    assert r["status"] == "done" and r["steps"] == "12" and int(r["samples"]) > 11 * 8, r
    assert float(r["train_flops"]) > 0 and 0 < float(r["valid_ndcg@10"]) <= 1 and float(r["test_hr@10"]) > 0, r
# The interrupted point counts each step once: its FLOPs equal the uninterrupted run's.
rb = {int(r["point"]): r for r in csv.DictReader(open(f"{d}/B/results.csv"))}
assert rows[2]["train_flops"] == rb[2]["train_flops"] and rows[2]["tokens"] == rb[2]["tokens"], (rows[2], rb[2])
assert rows[2]["valid_ndcg@10"] == rb[2]["valid_ndcg@10"], (rows[2], rb[2])
EOF
echo "PASS: sweep_cli"
