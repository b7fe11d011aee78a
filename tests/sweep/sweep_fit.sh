#!/usr/bin/env bash
# scripts/sweep_fit.py against a results.csv drawn from known laws: the fitted
# exponents near the truth and inside their bootstrap intervals, the held-out
# largest size predicted closely, the compute frontier, real PNGs and the
# markdown tables; and the refusals (missing column, a non-numeric value named
# by line and column, too few sizes, no done rows, unknown --group key).
#   sweep_fit.sh PYTHON SCRIPT
# Exit 77 (skipped) when PYTHON lacks numpy, scipy or matplotlib.
set -u
PY=$1
SCRIPT=$2
[ -x "$PY" ] || { echo "SKIP: $PY not found (bash scripts/setup.sh makes .venv)"; exit 77; }
"$PY" -c "import numpy, scipy, matplotlib" 2>/dev/null \
  || { echo "SKIP: numpy, scipy or matplotlib missing in $PY (bash scripts/setup.sh installs them)"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# results.csv as `longrec sweep collect` writes it, from known laws with 0.2%
# (loss) and 0.0005 (NDCG) noise. Group "full": 5 sizes over 30x, 3 epoch
# budgets, 2 seeds, L = 1.5 + 40 N^-0.3 + 100 D^-0.4 (data varies at equal N:
# the two-variable law). Group "truncated": the same sizes, one budget,
# L = 1.7 + 40 N^-0.3 + const (the one-variable law, exponent 0.3). The third
# record is a failed point whose error spans two lines (RFC 4180 quoting).
# Mode isoflop: the size labels as names (d32 ... d128) and 3 equal-FLOP
# budgets, each point's FLOPs a little under its budget (whole steps).
# Mode methods: three methods (names) x 2 sizes x 2 equal-FLOP budgets, as
# configs/sweeps/pt-frontier.ini; "short" is best at every budget.
#   gen.py OUT main|few|none|isoflop|methods
cat > "$dir/gen.py" <<'EOF'
import csv, sys
import numpy as np
out, mode = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(2)
rows = []
def add(name, over, kind, budget, n, samples, loss, ndcg, length=200):
    fps = 6.0 * n * length
    rows.append({"point": 0, "name": name, "overrides": over, "budget_kind": kind, "budget": budget,
                 "parameters": n + 3.7e6, "non_embedding_parameters": n, "flops_per_sample": fps,
                 "planned_steps": samples / 128, "planned_flops": fps * samples, "steps": samples / 128,
                 "samples": samples, "tokens": samples * 200, "train_flops": fps * samples, "wall_seconds": 12.5,
                 "final_train_loss": loss, "valid_hr@10": 2 * ndcg, "valid_ndcg@10": ndcg,
                 "test_hr@10": 2 * ndcg, "test_ndcg@10": ndcg, "status": "done", "error": ""})
def not_done(status, over, error="", **numbers):
    rows.append({c: "" for c in rows[0]} | {"name": "full", "overrides": over, "budget_kind": "epochs",
                 "budget": 1, "status": status, "error": error} | numbers)
if mode == "methods":
    for name, length, gain in (("short", 128, 0.0), ("long", 512, 0.08), ("tokens", 524, 0.06)):
        for n in (2.5e4, 9e4):
            for budget in (3e12, 1e13):
                fps = 6.0 * n * length
                d = float(np.floor(budget / fps / 32) * 32)  # whole steps of 32 samples
                loss = 1.0 + 20 * n ** -0.3 + 50 * d ** -0.4 - gain
                add(name, f"data.max_len={length} model.size=d{int(n)}", "flops", budget, n, d, loss,
                    0.2 - d ** -0.3, length)
sizes = 1e5 * np.geomspace(1, 30, 3 if mode == "few" else 5)
dims = [32, 48, 64, 96, 128]
for i, n in enumerate(sizes if mode != "methods" else []):
    n = float(round(n))
    if mode == "isoflop":
        for budget in (3e14, 1e15, 3e15):
            for seed in (1, 2):
                fps = 6.0 * n * 200
                d = float(np.floor(budget / fps / 128) * 128)  # whole steps of 128 samples
                loss = (1.5 + 40 * n ** -0.3 + 100 * d ** -0.4) * np.exp(rng.normal(0, 0.002))
                ndcg = 1 - (0.7 + 2 * n ** -0.25 + 5 * d ** -0.3) + rng.normal(0, 0.0005)
                add(f"d{dims[i]}", f"model.seed={seed}", "flops", budget, n, d, loss, ndcg)
        continue
    for epochs in [10] if mode == "few" else [1, 3, 10]:
        d = 1e6 * epochs
        for seed in (1, 2):
            over = f"model.dim={dims[i]} model.seed={seed} data.max_len=1024"
            loss = (1.5 + 40 * n ** -0.3 + 100 * d ** -0.4) * np.exp(rng.normal(0, 0.002))
            ndcg = 1 - (0.7 + 2 * n ** -0.25 + 5 * d ** -0.3) + rng.normal(0, 0.0005)
            add("full", over, "epochs", epochs, n, d, loss, ndcg)
            if len(rows) == 2 and mode != "few":
                not_done("failed", "model.dim=256 model.seed=1", 'out of memory at step 3,\n"CUDA" said so',
                         steps=3, samples=384)
    if mode == "few":
        continue
    for seed in (1, 2):
        d = 1e7
        over = f"model.dim={dims[i]} model.seed={seed} data.max_len=256"
        loss = (1.7 + 40 * n ** -0.3 + 100 * d ** -0.4) * np.exp(rng.normal(0, 0.002))
        ndcg = 1 - (0.72 + 2 * n ** -0.25 + 5 * d ** -0.3) + rng.normal(0, 0.0005)
        add("truncated", over, "epochs", 10, n, d, loss, ndcg)
if mode in ("main", "none"):
    not_done("pending", "model.dim=256 model.seed=2")
    not_done("running", "model.dim=256 model.seed=3", steps=40, samples=5120)
    not_done("interrupted", "model.dim=256 model.seed=4", steps=80, samples=10240)
if mode == "none":
    rows = [r for r in rows if r["status"] != "done"]
for i, r in enumerate(rows):
    r["point"] = i
with open(out, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{float(v):.6g}" if isinstance(v, (float, np.floating)) else v) for k, v in r.items()})
EOF
gen() { mkdir -p "$(dirname "$1")" && "$PY" "$dir/gen.py" "$@" || fail "generator"; }

gen "$dir/s/results.csv" main
out=$("$PY" "$SCRIPT" "$dir/s" --bootstrap 400 --seed 1 2>&1) || { echo "$out"; fail "fit"; }
echo "$out"
echo "$out" | grep -q "^wrote $dir/s/fit/fit.md, $dir/s/fit/fit.json, $dir/s/fit/loss_vs_flops.png, $dir/s/fit/loss_vs_params.png, $dir/s/fit/metric_vs_params.png$" || fail "summary: files"
echo "$out" | grep -q "^40 done points in 2 group(s), grouped by name (the names differ); skipped: 1 running, 1 pending, 1 interrupted, 1 failed$" || fail "summary: groups, skipped rows"
for png in loss_vs_flops loss_vs_params metric_vs_params; do
  f="$dir/s/fit/$png.png"
  [ "$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "$png.png: not a PNG"
  [ "$(stat -c %s "$f")" -gt 20000 ] || fail "$png.png: too small to hold the points and curves"
done
ls -A "$dir/s/fit" | grep -q "tmp-" && fail "temporary left behind"

# The numbers, from fit.json: the truth inside the intervals, the point
# estimates close, the largest size predicted within 2%.
"$PY" - "$dir/s/fit/fit.json" <<'EOF' || fail "fit.json"
import json, sys
d = json.load(open(sys.argv[1]))
bad = []
def check(what, value, truth, tolerance, interval=None):
    ok = abs(value - truth) <= tolerance and (interval is None or interval[0] <= truth <= interval[1])
    print(f"{'ok ' if ok else 'BAD'} {what}: {value:.4f} (truth {truth}, tolerance {tolerance}), 95% interval {interval}")
    if not ok:
        bad.append(what)
assert d["rows"] == {"done": 40, "skipped": {"running": 1, "pending": 1, "interrupted": 1, "failed": 1}}, d["rows"]
full, truncated = d["groups"]["full"], d["groups"]["truncated"]
size = full["loss"]["size"]
assert size["form"] == "E + A*N^-a + B*D^-b" and size["variables"] == ["non_embedding_parameters", "samples"]
assert size["points"] == 30 and size["cells"] == 15, (size["points"], size["cells"])
boot = size["bootstrap"]
assert boot["resamples"] == 400 and boot["fitted"] + boot["not_converged"] + boot["too_few_distinct"] == 400, boot
check("full: a (loss vs N)", size["terms"][0]["exponent"], 0.3, 0.02, boot["intervals"][0])
check("full: b (loss vs D)", size["terms"][1]["exponent"], 0.4, 0.06, boot["intervals"][1])
check("full: E", size["E"], 1.5, 0.08)
one = truncated["loss"]["size"]
assert one["form"] == "E + A*N^-a" and one["points"] == 10, one
check("truncated: a (loss vs N)", one["terms"][0]["exponent"], 0.3, 0.02, one["bootstrap"]["intervals"][0])
check("truncated: E", one["E"], 1.7 + 100 * 1e7 ** -0.4, 0.05)
metric = full["metric"]["size"]
check("full: a (1 - NDCG@10 vs N)", metric["terms"][0]["exponent"], 0.25, 0.03, metric["bootstrap"]["intervals"][0])
check("full: NDCG@10 ceiling", metric["ceiling"], 0.3, 0.03)
for label, group in (("full", full), ("truncated", truncated)):
    held = group["loss"]["size"]["heldout"]
    assert held["held_out_sizes"] == [3e6], held
    s = held["sizes"][0]
    assert abs(s["abs_error"] - abs(s["predicted"] - s["observed"])) < 1e-12 or label == "full"
    check(f"{label}: held-out relative error at 3e6", s["rel_error"], 0.0, 0.02)
compute = full["loss"]["compute"]
assert compute["form"] == "E + A*C^-alpha" and compute["points"] >= 4, compute
# No exact truth here: the efficient frontier of L(N, D) is only near a power law in C; a sanity range.
check("full: alpha (compute-efficient loss vs C), in", compute["terms"][0]["exponent"], 0.2, 0.15)
frontier = d["frontier"]["loss"]["groups"]
assert all(s["on_frontier"] for s in frontier["full"]["segments"]), frontier["full"]
assert not any(s["on_frontier"] for s in frontier["truncated"]["segments"]), frontier["truncated"]
assert frontier["full"]["alone_flops"] == [1.2e14, 1.2e15] or abs(frontier["full"]["alone_flops"][0] / 1.2e14 - 1) < 1e-6
assert d["not_fitted"] == [], d["not_fitted"]
sys.exit(1 if bad else 0)
EOF

md="$dir/s/fit/fit.md"
grep -q "^| group | against | law | E | coefficients | exponents \[95% bootstrap\] | points | rms log residual | bootstrap failures |$" "$md" || fail "fit.md: no fit table"
grep -q "^| full | non_embedding_parameters and samples | E + A\*N^-a + B\*D^-b | " "$md" || fail "fit.md: the two-variable row"
grep -q "^| truncated | non_embedding_parameters | E + A\*N^-a | " "$md" || fail "fit.md: the one-variable row"
grep -q "^| group | held-out non_embedding_parameters | cells | observed | predicted | abs error | rel error |$" "$md" || fail "fit.md: no held-out table"
grep -q "^| truncated | 3e+06 | 1 | " "$md" || fail "fit.md: the held-out row"
# (truncated's curve starts at 1.2e15 less the 5% compute tie)
grep -qE "^- \*\*full\*\*: on the frontier at 1\.1[4-9]e\+15-3\.6e\+16 FLOPs \(final_train_loss better than the best other group by [0-9.]+-[0-9.]+%\); the only group at 1\.2e\+14-1\.1[0-9]e\+15 FLOPs$" "$md" || fail "fit.md: frontier of full"
grep -q "^- \*\*truncated\*\*: off it at " "$md" || fail "fit.md: frontier of truncated"
grep -q "skipped: 1 running, 1 pending, 1 interrupted, 1 failed" "$md" || fail "fit.md: skipped rows"

# Grouping by an override key and the name; a held-out check that leaves too
# few sizes is refused for that group alone, the rest still written.
out=$("$PY" "$SCRIPT" "$dir/s" --group data.max_len,name --holdout 2 --bootstrap 20 --out "$dir/g" 2>&1) || { echo "$out"; fail "--group"; }
echo "$out" | grep -q "^40 done points in 2 group(s), grouped by data.max_len, name (--group)" || { echo "$out"; fail "--group: groups"; }
echo "$out" | grep -q "data.max_len=1024 full: final_train_loss = E + A\*N^-a + B\*D^-b" || { echo "$out"; fail "--group: labels"; }
msg="final_train_loss vs non_embedding_parameters, group 'data.max_len=256 truncated': held-out check, the fit without the largest 2 size(s): 3 distinct values of non_embedding_parameters; a saturating power law E + A x^-alpha needs at least 4; not done"
echo "$out" | grep -qF "$msg" || { echo "$out"; fail "held-out refusal not printed"; }
grep -qF -- "- $msg" "$dir/g/fit.md" || fail "held-out refusal not in fit.md"

# A method comparison at equal FLOPs (2 sizes, 2 budgets per method: nothing
# to fit): the frontier compares the methods at each budget although their
# points fall a little apart in FLOPs.
gen "$dir/c/results.csv" methods
out=$("$PY" "$SCRIPT" "$dir/c" --group name --bootstrap 10 2>&1) || { echo "$out"; fail "methods"; }
echo "$out" | grep -qF "12 done points in 3 group(s), grouped by name (--group)" || { echo "$out"; fail "methods: groups"; }
md="$dir/c/fit/fit.md"
grep -qE "^- \*\*short\*\*: on the frontier at (2\.9[0-9]*|3)e\+12-1e\+13 FLOPs \(final_train_loss better than the best other group by [0-9.]+-[0-9.]+%\)$" "$md" \
  || { cat "$md"; fail "methods: short on the frontier"; }
grep -qE "^- \*\*long\*\*: off it at (2\.9[0-9]*|3)e\+12-1e\+13 FLOPs" "$md" || { cat "$md"; fail "methods: long off it"; }
grep -qE "^- \*\*tokens\*\*: off it at (2\.9[0-9]*|3)e\+12-1e\+13 FLOPs" "$md" || { cat "$md"; fail "methods: tokens off it"; }
grep -q "the only group" "$md" && { cat "$md"; fail "methods: a group alone where all have points"; }

# Refusals, naming file, line and column; nothing written.
out=$("$PY" "$SCRIPT" "$dir/nothing" 2>&1) && fail "missing results.csv accepted"
echo "$out" | grep -qF "$dir/nothing/results.csv: no such file" || { echo "$out"; fail "missing results.csv"; }

mkdir "$dir/m"
"$PY" -c "
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline='')))
i = rows[0].index('test_hr@10')
csv.writer(open(sys.argv[2], 'w', newline=''), lineterminator='\n').writerows([r[:i] + r[i + 1:] for r in rows])
" "$dir/s/results.csv" "$dir/m/results.csv"
out=$("$PY" "$SCRIPT" "$dir/m" 2>&1) && fail "missing column accepted"
echo "$out" | grep -qF "$dir/m/results.csv:1: missing column 'test_hr@10'" || { echo "$out"; fail "missing column"; }
[ -e "$dir/m/fit" ] && fail "output written on a refusal"

# The 6th record starts on line 8: header 1, records 2, 3, the failed one on 4-5.
mkdir "$dir/n"
"$PY" -c "
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline='')))
assert '\n' in rows[3][-1] and rows[6][0] == '5'
rows[6][rows[0].index('train_flops')] = '1.2e15x'
csv.writer(open(sys.argv[2], 'w', newline=''), lineterminator='\n').writerows(rows)
" "$dir/s/results.csv" "$dir/n/results.csv"
out=$("$PY" "$SCRIPT" "$dir/n" 2>&1) && fail "non-numeric value accepted"
echo "$out" | grep -qF "$dir/n/results.csv:8: column 'train_flops': '1.2e15x' is not a number" || { echo "$out"; fail "non-numeric value"; }

# Too few sizes: every fit refused by name and reason, the points and the
# frontier still plotted and reported.
gen "$dir/f/results.csv" few
out=$("$PY" "$SCRIPT" "$dir/f" --bootstrap 10 2>&1) || { echo "$out"; fail "3 sizes: not a refusal of the whole run"; }
msg="final_train_loss vs non_embedding_parameters, group 'all': 3 distinct values of non_embedding_parameters; a saturating power law E + A x^-alpha needs at least 4; not fitted"
echo "$out" | grep -qF "$msg" || { echo "$out"; fail "too few sizes"; }
grep -qF -- "- $msg" "$dir/f/fit/fit.md" || fail "too few sizes: not in fit.md"
echo "$out" | grep -qxF "4 fit(s) or check(s) not made, nothing fitted (the reasons above and in fit.md)" || { echo "$out"; fail "too few sizes: summary"; }
echo "$out" | grep -qF "6 done points in 1 group(s), not grouped (one name)" || { echo "$out"; fail "one name: grouping"; }

# A size sweep's labels as names: not grouped by them; equal-FLOP budgets give
# one compute-efficient point per budget (the 5% tie), too few for the compute
# law, while the two-variable size law is fitted.
gen "$dir/i/results.csv" isoflop
out=$("$PY" "$SCRIPT" "$dir/i" --bootstrap 100 2>&1) || { echo "$out"; fail "isoflop"; }
echo "$out" | grep -qF "30 done points in 1 group(s), not grouped (the names label the sizes, one name per non_embedding_parameters)" \
  || { echo "$out"; fail "isoflop: the size labels taken for groups"; }
echo "$out" | grep -qF "final_train_loss vs train_flops, group 'all': 3 distinct values of train_flops among the compute-efficient points; a saturating power law E + A x^-alpha needs at least 4; not fitted" \
  || { echo "$out"; fail "isoflop: one efficient point per budget"; }
echo "$out" | grep -qE "^  all: final_train_loss = E \+ A\*N\^-a \+ B\*D\^-b over non_embedding_parameters and samples: E = [0-9.]+, a = 0\.(2[89]|3[01])[0-9]* \[" \
  || { echo "$out"; fail "isoflop: the two-variable law"; }

gen "$dir/z/results.csv" none
out=$("$PY" "$SCRIPT" "$dir/z" 2>&1) && fail "no done rows accepted"
echo "$out" | grep -qF "$dir/z/results.csv: no done rows to fit (1 running, 1 pending, 1 interrupted, 1 failed)" || { echo "$out"; fail "no done rows"; }

out=$("$PY" "$SCRIPT" "$dir/s" --group data.maxlen 2>&1) && fail "unknown --group key accepted"
echo "$out" | grep -qF "error: --group: no done point sets 'data.maxlen' (their overrides set: data.max_len, model.dim, model.seed; or use 'name')" \
  || { echo "$out"; fail "unknown --group key"; }
echo "PASS: sweep_fit"
