#!/usr/bin/env python3
"""Scaling laws from a sweep: fits of the loss and a ranking metric against
model size, data and training compute, from the results.csv that
`longrec sweep collect` writes (one row per point of the sweep).

  .venv/bin/python scripts/sweep_fit.py DIR [--loss final_train_loss]
      [--metric valid_ndcg@10] [--group data.max_len,name] [--size non_embedding_parameters]
      [--data samples|tokens] [--holdout 1] [--bootstrap 1000] [--seed 0] [--out DIR/fit]

Only rows with status "done" are used; how many rows of each other status were
skipped is printed. Rows are split into groups (--group: override keys and/or
`name`, one curve per history length or method; default: by name when the
names differ, unless they only label the sizes, one name per size as in a size
sweep's point list); every group is fitted on its own:

- size law: L = E + A N^-a against the size column N (--size). When the data
  size D (--data: samples or tokens) differs between points of equal N (a
  sweep over budgets as well as sizes), the two-variable form
  L = E + A N^-a + B D^-b is fitted instead.
- compute law: L = E + A C^-alpha against the training FLOPs C, fitted to the
  group's compute-efficient points: the cells (seeds averaged) that no cell
  of the group with at most 5% more compute beats (5%: an equal-FLOP sweep's
  points fall a little under their budget, each by its own whole steps). Away
  from that lower envelope a small model given more compute saturates, and a
  single power law in C does not describe it.

Fits are least squares in log space (residual log L_fit - log L, so every
point weighs by its relative error) by scipy.optimize.least_squares with
E >= 0, A > 0, exponents in (0, 3], x scaled by its geometric mean, from a grid
of starting points; the best converged one is kept. A one-variable law needs
at least 4 distinct values of x; the two-variable law at least 3 of N and of
D and more distinct (N, D) points than its 5 parameters. A fit without enough
is not made, and the output says which, for which group and why; the plots,
the frontier and the other fits are still written.

Uncertainty: --bootstrap B resamples the group's rows with replacement B
times and refits (starting from the full fit); the 2.5 and 97.5 percentiles of
each exponent are its 95% interval. Resamples whose fit fails (no convergence,
or too few distinct values left) are counted and reported.

Held-out check: the size law is refitted without the group's largest --holdout
K sizes and predicts them; the absolute and relative errors per held-out size
(mean over its (N, D) cells, seeds averaged) are reported.

The metric (--metric, higher is better, in [0, 1)) is fitted through its
complement: 1 - m = E + A N^-a (+ B D^-b), i.e. m = (1 - E) - A N^-a - ...
This is the same family as m = m_inf - A N^-a, with the ceiling m_inf = 1 - E
kept <= 1 by E >= 0, and it reuses the loss's fit, bounds and log-space
residuals unchanged. The reported ceiling is 1 - E.

Compute frontier: for every training-FLOP level the best loss over all groups
(their lower envelopes, interpolated linearly in log FLOPs). For each group the
report gives the compute ranges where it is on the frontier and by how much its
loss is below the best other group's at the same compute, and where it is
above, by how much (relative gaps). The same is done for the metric.

Writes into --out (default DIR/fit): fit.md (tables), fit.json (the same
numbers), loss_vs_flops.png, loss_vs_params.png, metric_vs_params.png. Every
file is rendered to a temporary file first and all are renamed at the end, so
an error leaves no half-written output. Bad input (no results.csv, a missing
column, a non-numeric value in a done row, no done rows, an unknown --group
key) is refused with the file, line and column named.
"""
import argparse
import csv
import io
import json
import math
import os
import sys

import numpy as np

try:
    import scipy.optimize
except ImportError:  # refused in main() with the fix named
    scipy = None

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402

PROG = "sweep_fit.py"
COLUMNS = ["point", "name", "overrides", "budget_kind", "budget", "parameters", "non_embedding_parameters",
           "flops_per_sample", "planned_steps", "planned_flops", "steps", "samples", "tokens", "train_flops",
           "wall_seconds", "final_train_loss", "valid_hr@10", "valid_ndcg@10", "test_hr@10", "test_ndcg@10",
           "status", "error"]
TEXT_COLUMNS = {"name", "overrides", "budget_kind", "status", "error"}
# `longrec sweep collect`'s states; "interrupted": started, nobody runs it now.
STATUSES = ("done", "running", "pending", "interrupted", "failed")
MIN_DISTINCT = 4  # a 3-parameter law through fewer distinct x values is exact or underdetermined
MIN_DISTINCT_EACH_OF_TWO = 3
# Cells within 5% of each other's compute count as one budget when finding the
# compute-efficient ones: integer step counts leave the FLOPs of an equal-FLOP
# sweep's points a little under the planned budget, each by its own amount.
COMPUTE_TIE = 0.05
EXPONENT_MAX = 3.0
EXPONENT_MIN = 1e-4
LOG_A_BOUND = 40.0


class Refusal(Exception):
    """Bad input or options: the message names what is wrong and where."""


def fail(message):
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(1)


def warn(message):
    print(f"{PROG}: {message}", file=sys.stderr)


# ----------------------------------------------------------------------------- reading

class Row:
    """One done point: its line in results.csv, text fields and numbers."""

    def __init__(self, line, text, numbers, overrides):
        self.line = line
        self.text = text
        self.numbers = numbers
        self.overrides = overrides


def parse_number(path, line, column, value):
    if value == "":
        return None
    try:
        x = float(value)
    except ValueError:
        raise Refusal(f"{path}:{line}: column '{column}': '{value}' is not a number")
    if not math.isfinite(x):
        raise Refusal(f"{path}:{line}: column '{column}': '{value}' is not a finite number")
    return x


def parse_overrides(path, line, value):
    overrides = {}
    for token in value.split():
        key, eq, val = token.partition("=")
        if not eq or not key:
            raise Refusal(f"{path}:{line}: column 'overrides': '{token}' is not key=value")
        overrides[key] = val
    return overrides


def read_results(path, option_columns):
    """The done rows of results.csv and the count of every other status.
    option_columns: {option: column} of the columns the options name."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # a BOM (spreadsheet export) is not part of "point"
            content = f.read()
    except FileNotFoundError:
        raise Refusal(f"{path}: no such file (results.csv is written by `longrec sweep collect`)")
    except OSError as e:
        raise Refusal(f"{path}: cannot read ({e.strerror})")
    except UnicodeDecodeError as e:
        raise Refusal(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})")
    reader = csv.reader(io.StringIO(content, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise Refusal(f"{path}: empty (expected a header line: {','.join(COLUMNS)})")
    except csv.Error as e:
        raise Refusal(f"{path}:1: not CSV ({e})")
    for column in COLUMNS:
        if column not in header:
            raise Refusal(f"{path}:1: missing column '{column}' (the header has: {','.join(header)})")
    for option, column in option_columns.items():
        if column not in header:
            raise Refusal(f"{option}: {path} has no column '{column}' (it has: {','.join(header)})")
        if column in TEXT_COLUMNS:
            raise Refusal(f"{option}: '{column}' is a text column, not a number to fit")
    duplicates = sorted({c for c in header if header.count(c) > 1})
    if duplicates:
        raise Refusal(f"{path}:1: column '{duplicates[0]}' appears more than once")
    index = {c: i for i, c in enumerate(header)}
    numeric = [c for c in header if c not in TEXT_COLUMNS]
    done, skipped = [], {s: 0 for s in STATUSES if s != "done"}
    line = reader.line_num  # physical line where the next record starts, minus one
    while True:
        start = line + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise Refusal(f"{path}:{start}: not CSV ({e})")
        line = reader.line_num
        if not fields:
            continue  # a blank line
        if len(fields) != len(header):
            raise Refusal(f"{path}:{start}: {len(fields)} fields, the header has {len(header)}")
        status = fields[index["status"]]
        if status != "done":
            if status not in skipped:
                warn(f"{path}:{start}: column 'status': '{status}' is none of {', '.join(STATUSES)}; "
                     f"the row is skipped")
            skipped[status] = skipped.get(status, 0) + 1
            continue
        numbers = {c: parse_number(path, start, c, fields[index[c]]) for c in numeric}
        text = {c: fields[index[c]] for c in TEXT_COLUMNS}
        done.append(Row(start, text, numbers, parse_overrides(path, start, text["overrides"])))
    return done, skipped


def require_positive(path, rows, column, what):
    for row in rows:
        value = row.numbers[column]
        if value is None:
            raise Refusal(f"{path}:{row.line}: column '{column}': empty in a done row ({what} is needed)")
        if value <= 0:
            raise Refusal(f"{path}:{row.line}: column '{column}': {value:g} is not positive ({what})")


# ----------------------------------------------------------------------------- the law

class Law:
    """y = E + sum_i A_i x_i^-alpha_i over k = 1 or 2 variables, fitted in log
    space. Internally x_i is scaled by its geometric mean s_i and A_i is kept
    as log A'_i with A_i = A'_i s_i^alpha_i: theta = [E, log A'_1, alpha_1, ...]."""

    def __init__(self, names, scale, theta):
        self.names = names
        self.scale = np.asarray(scale, dtype=float)
        self.theta = np.asarray(theta, dtype=float)

    def predict(self, x):
        return law_value(self.theta, np.asarray(x, dtype=float) / self.scale)

    @property
    def E(self):
        return float(self.theta[0])

    def coefficients(self):
        """[(A_i, alpha_i)] in the columns' own units."""
        out = []
        for i in range(len(self.names)):
            log_a, alpha = self.theta[1 + 2 * i], self.theta[2 + 2 * i]
            out.append((float(math.exp(log_a + alpha * math.log(self.scale[i]))), float(alpha)))
        return out

    def exponents(self):
        return [float(self.theta[2 + 2 * i]) for i in range(len(self.names))]


def law_terms(theta, z):
    k = z.shape[1]
    return [np.exp(theta[1 + 2 * i]) * z[:, i] ** (-theta[2 + 2 * i]) for i in range(k)]


def law_value(theta, z):
    return theta[0] + sum(law_terms(theta, z))


def residuals(theta, z, log_y):
    return np.log(law_value(theta, z)) - log_y


def jacobian(theta, z, log_y):
    terms = law_terms(theta, z)
    value = theta[0] + sum(terms)
    columns = [1.0 / value]
    for i, term in enumerate(terms):
        columns.append(term / value)
        columns.append(-term * np.log(z[:, i]) / value)
    return np.stack(columns, axis=1)


def bounds(k):
    lower = [0.0] + [-LOG_A_BOUND, EXPONENT_MIN] * k
    upper = [np.inf] + [LOG_A_BOUND, EXPONENT_MAX] * k
    return lower, upper


def starting_points(y, k):
    y_min, y_mean = float(np.min(y)), float(np.mean(y))
    alphas = [0.1, 0.3, 0.7, 1.5]
    starts = []
    for e in (0.0, 0.5 * y_min, 0.9 * y_min):
        log_a = math.log(max((y_mean - e) / k, 1e-3 * y_mean))
        combos = [[a] for a in alphas] if k == 1 else [[a, b] for a in alphas for b in alphas]
        for combo in combos:
            theta = [e]
            for alpha in combo:
                theta += [log_a, alpha]
            starts.append(np.array(theta))
    return starts


def solve(z, log_y, start):
    lower, upper = bounds(z.shape[1])
    try:
        with np.errstate(all="ignore"):
            result = scipy.optimize.least_squares(residuals, start, jac=jacobian, bounds=(lower, upper),
                                                  args=(z, log_y), method="trf", max_nfev=2000)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError):
        return None
    if not result.success or not np.all(np.isfinite(result.x)) or not math.isfinite(result.cost):
        return None
    return result


def fit_law(names, x, y, starts=None):
    """The best converged fit of y over x [n, k] from the starting points, or None."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    scale = np.exp(np.mean(np.log(x), axis=0))
    z, log_y = x / scale, np.log(y)
    best = None
    for start in starts if starts is not None else starting_points(y, x.shape[1]):
        result = solve(z, log_y, start)
        if result is not None and (best is None or result.cost < best.cost):
            best = result
    if best is None:
        return None
    law = Law(names, scale, best.x)
    law.rmse_log = float(np.sqrt(np.mean(best.fun ** 2)))
    return law


def too_few(names, x):
    """Why a law over x [n, k] cannot be fitted, or None."""
    k = x.shape[1]
    # One variable: E, A, alpha through >= 4 distinct x. Two: each term's A and
    # exponent are pinned by differences along its own variable at fixed other
    # (2 differences: 3 values), E is shared.
    need = MIN_DISTINCT if k == 1 else MIN_DISTINCT_EACH_OF_TWO
    for i, name in enumerate(names):
        distinct = len(np.unique(x[:, i]))
        if distinct < need:
            law = "a saturating power law E + A x^-alpha" if k == 1 else "the two-variable law E + A N^-a + B D^-b"
            return f"{distinct} distinct value{'s' if distinct != 1 else ''} of {name}; {law} needs at least {need}"
    cells = len({tuple(r) for r in x})
    if cells <= 1 + 2 * k:
        return f"{cells} distinct points for {1 + 2 * k} parameters"
    return None


# ----------------------------------------------------------------------------- one group

class Quantity:
    """What is fitted: the loss (lower is better) or a metric (fitted as 1 - m)."""

    def __init__(self, column, is_metric):
        self.column = column
        self.is_metric = is_metric

    def fitted(self, values):
        """The lower-is-better, positive value the law describes."""
        return 1.0 - values if self.is_metric else values

    def shown(self, fitted):
        return 1.0 - fitted if self.is_metric else fitted


def cells_of(x, y):
    """Distinct rows of x with the mean of their y (seeds averaged): x [c, k], y [c]."""
    keys = {}
    for xi, yi in zip(map(tuple, x), y):
        keys.setdefault(xi, []).append(yi)
    cx = np.array(list(keys.keys()), dtype=float).reshape(-1, x.shape[1])
    cy = np.array([float(np.mean(v)) for v in keys.values()])
    return cx, cy


def envelope(c, y):
    """Indices of the compute-efficient cells, by compute: those that no cell
    with at most COMPUTE_TIE more compute beats (y lower is better)."""
    c, y = np.asarray(c, dtype=float), np.asarray(y, dtype=float)
    beaten = (y[None, :] < y[:, None]) & (c[None, :] <= c[:, None] * (1 + COMPUTE_TIE))
    keep = np.flatnonzero(~beaten.any(axis=1))
    return keep[np.lexsort((y[keep], c[keep]))]


def bootstrap(names, x, y, law, prepare, resamples, rng):
    """Exponent percentiles over resampled rows; prepare(x, y) -> (x, y) of the
    points the law is fitted to (cells, envelope), or a reason string."""
    exponents, failures, too_few_left = [], 0, 0
    starts = [law.theta]
    n = len(y)
    for _ in range(resamples):
        pick = rng.integers(0, n, size=n)
        prepared = prepare(x[pick], y[pick])
        if isinstance(prepared, str):
            too_few_left += 1
            continue
        bx, by = prepared
        fitted = fit_law(names, bx, by, starts=starts)
        if fitted is None:
            fitted = fit_law(names, bx, by, starts=starting_points(by, bx.shape[1])[::6])
        if fitted is None:
            failures += 1
            continue
        exponents.append(fitted.exponents())
    out = {"resamples": resamples, "fitted": len(exponents), "not_converged": failures,
           "too_few_distinct": too_few_left}
    if exponents:
        e = np.array(exponents)
        out["intervals"] = [[float(np.percentile(e[:, i], 2.5)), float(np.percentile(e[:, i], 97.5))]
                            for i in range(e.shape[1])]
    return out


def law_report(law, exponent_names, quantity):
    coefficients = law.coefficients()
    report = {"E": law.E, "rmse_log": law.rmse_log, "terms": []}
    for (a, alpha), exponent_name, variable in zip(coefficients, exponent_names, law.names):
        report["terms"].append({"variable": variable, "A": a, "exponent_name": exponent_name,
                                "exponent": alpha, "at_bound": bool(alpha >= EXPONENT_MAX * 0.999
                                                                    or alpha <= EXPONENT_MIN * 1.001)})
    if quantity.is_metric:
        report["ceiling"] = 1.0 - law.E
    return report


def fit_size(group, quantity, rows, args, rng, refusals):
    """The size law (one or two variables) with bootstrap and held-out check."""
    size = np.array([r.numbers[args.size] for r in rows])
    data = np.array([r.numbers[args.data] for r in rows])
    y = quantity.fitted(np.array([r.numbers[quantity.column] for r in rows]))
    data_varies = any(len(np.unique(data[size == n])) > 1 for n in np.unique(size))
    if data_varies:
        names, exponent_names, x = [args.size, args.data], ["a", "b"], np.stack([size, data], axis=1)
        form = "E + A*N^-a + B*D^-b"
    else:
        names, exponent_names, x = [args.size], ["a"], size[:, None]
        form = "E + A*N^-a"
    label = f"{quantity.column} vs {' and '.join(names)}, group '{group}'"
    reason = too_few(names, x)
    if reason:
        refusals.append(f"{label}: {reason}; not fitted")
        return None
    law = fit_law(names, x, y)
    if law is None:
        refusals.append(f"{label}: the least-squares fit did not converge from any starting point")
        return None
    report = {"form": form, "variables": names, "points": len(y), "cells": len(cells_of(x, y)[1])}
    report.update(law_report(law, exponent_names, quantity))
    report["bootstrap"] = bootstrap(names, x, y, law, lambda bx, by: too_few(names, bx) or (bx, by),
                                    args.bootstrap, rng)
    report["heldout"] = heldout(label, names, x, y, quantity, args.holdout, refusals)
    report["_law"] = law
    return report


def heldout(label, names, x, y, quantity, k, refusals):
    sizes = np.unique(x[:, 0])
    if k <= 0:
        return None
    if len(sizes) <= k:
        refusals.append(f"{label}: held-out check: the group has {len(sizes)} size(s), {k} would be held out; "
                        f"not done")
        return None
    held = sizes[-k:]
    train = ~np.isin(x[:, 0], held)
    reason = too_few(names, x[train])
    law = None if reason else fit_law(names, x[train], y[train])
    if law is None:
        refusals.append(f"{label}: held-out check, the fit without the largest {k} size(s): "
                        f"{reason or 'did not converge'}; not done")
        return None
    out = {"held_out_sizes": [float(s) for s in held], "fit_exponents": law.exponents(), "sizes": []}
    for s in held:
        cx, cy = cells_of(x[x[:, 0] == s], y[x[:, 0] == s])
        observed = quantity.shown(cy)
        predicted = quantity.shown(law.predict(cx))
        absolute = np.abs(predicted - observed)
        out["sizes"].append({"size": float(s), "cells": len(cy), "observed": float(np.mean(observed)),
                             "predicted": float(np.mean(predicted)), "abs_error": float(np.mean(absolute)),
                             "rel_error": float(np.mean(absolute / np.abs(observed)))})
    return out


def fit_compute(group, quantity, rows, args, rng, refusals):
    """The compute law on the group's compute-efficient cells."""
    c = np.array([r.numbers["train_flops"] for r in rows])
    size = np.array([r.numbers[args.size] for r in rows])
    y = quantity.fitted(np.array([r.numbers[quantity.column] for r in rows]))
    x = np.stack([c, size], axis=1)
    label = f"{quantity.column} vs train_flops, group '{group}'"

    def prepare(px, py):
        cx, cy = cells_of(px, py)
        keep = envelope(cx[:, 0], cy)
        fx, fy = cx[keep, :1], cy[keep]
        return too_few(["train_flops among the compute-efficient points"], fx) or (fx, fy)

    prepared = prepare(x, y)
    if isinstance(prepared, str):
        refusals.append(f"{label}: {prepared}; not fitted")
        return None
    fx, fy = prepared
    law = fit_law(["train_flops"], fx, fy)
    if law is None:
        refusals.append(f"{label}: the least-squares fit did not converge from any starting point")
        return None
    report = {"form": "E + A*C^-alpha", "variables": ["train_flops"], "points": len(fy),
              "cells": len(cells_of(x, y)[1])}
    report.update(law_report(law, ["alpha"], quantity))
    report["bootstrap"] = bootstrap(["train_flops"], x, y, law, prepare, args.bootstrap, rng)
    report["_law"] = law
    return report


# ----------------------------------------------------------------------------- frontier

def frontier(groups, quantity, size_column):
    """Per group: where its lower envelope (interpolated in log FLOPs) is the
    best of all groups, and by how much. Returns (global envelope points, report).
    A group's curve spans its efficient cells' compute widened by COMPUTE_TIE
    either way (flat beyond them), so that groups whose points fall a little
    apart under the same budget are compared there, not each alone."""
    curves, all_c, all_y, all_g = {}, [], [], []
    for label, rows in groups.items():
        rows = [r for r in rows if r.numbers[quantity.column] is not None]
        if not rows:
            continue
        cn = np.array([[r.numbers["train_flops"], r.numbers[size_column]] for r in rows])
        y = quantity.fitted(np.array([r.numbers[quantity.column] for r in rows]))
        cx, cy = cells_of(cn, y)  # seeds averaged; two sizes at equal compute stay apart
        keep = envelope(cx[:, 0], cy)
        tie = math.log1p(COMPUTE_TIE)
        curves[label] = (np.log(cx[keep, 0]), cy[keep], math.log(cx[keep[0], 0]) - tie, math.log(cx[:, 0].max()) + tie)
        all_c += list(cx[:, 0])
        all_y += list(cy)
        all_g += [label] * len(cy)
    all_c, all_y = np.array(all_c), np.array(all_y)
    best = envelope(all_c, all_y) if len(all_c) else np.array([], dtype=int)
    global_points = {"train_flops": [float(all_c[i]) for i in best],
                     quantity.column: [float(quantity.shown(all_y[i])) for i in best],
                     "group": [all_g[i] for i in best]}
    if len(curves) < 2:
        return global_points, {}
    low, high = math.log(min(all_c[best])), math.log(max(all_c))  # the compute the points span
    grid = np.unique(np.concatenate([np.concatenate([v[0] for v in curves.values()]),
                                     np.linspace(low, high, 400)]))
    grid = grid[(grid >= low) & (grid <= high)]

    def value(curve, g):
        log_c, y, start, end = curve
        if g < start or g > end:
            return math.nan
        return float(np.interp(g, log_c, y))  # flat before the first and past the last efficient cell

    values = {label: np.array([value(curve, g) for g in grid]) for label, curve in curves.items()}
    report = {}
    for label in curves:
        others = np.array([v for other, v in values.items() if other != label])
        with np.errstate(all="ignore"):
            best_other = np.nanmin(np.where(np.isnan(others), np.inf, others), axis=0)
        best_other[~np.isfinite(best_other)] = np.nan
        mine = values[label]
        shared = ~np.isnan(mine) & ~np.isnan(best_other)
        gap = (mine - best_other) / best_other  # > 0: worse than the best other group
        if quantity.is_metric:  # relative to the metric itself, not its complement
            gap = (quantity.shown(best_other) - quantity.shown(mine)) / quantity.shown(best_other)
        segments = []
        i = 0
        while i < len(grid):
            if not shared[i]:
                i += 1
                continue
            on = gap[i] <= 0
            j = i
            while j + 1 < len(grid) and shared[j + 1] and (gap[j + 1] <= 0) == on:
                j += 1
            part = gap[i:j + 1]
            segments.append({"on_frontier": bool(on), "from_flops": float(math.exp(grid[i])),
                             "to_flops": float(math.exp(grid[j])),
                             "min_gap": float(np.min(np.abs(part))), "max_gap": float(np.max(np.abs(part)))})
            i = j + 1
        alone = ~np.isnan(mine) & np.isnan(best_other)
        report[label] = {"segments": segments,
                         "alone_flops": ([float(math.exp(grid[alone].min())), float(math.exp(grid[alone].max()))]
                                         if alone.any() else None)}
    return global_points, report


def frontier_sentence(label, entry, what):
    parts = []
    for s in entry["segments"]:
        span = (f"{s['from_flops']:.3g}-{s['to_flops']:.3g} FLOPs" if f"{s['from_flops']:.3g}" != f"{s['to_flops']:.3g}"
                else f"{s['from_flops']:.3g} FLOPs")
        amount = (f"{100 * s['max_gap']:.2f}%" if s["min_gap"] == s["max_gap"] or s["from_flops"] == s["to_flops"]
                  else f"{100 * s['min_gap']:.2f}-{100 * s['max_gap']:.2f}%")
        if s["on_frontier"]:
            parts.append(f"on the frontier at {span} ({what} better than the best other group by {amount})")
        else:
            parts.append(f"off it at {span} ({what} worse than the best other group by {amount})")
    if entry["alone_flops"]:
        parts.append(f"the only group at {entry['alone_flops'][0]:.3g}-{entry['alone_flops'][1]:.3g} FLOPs")
    return f"**{label}**: " + ("; ".join(parts) if parts else "no compute range shared with another group")


# ----------------------------------------------------------------------------- groups

def default_grouping(rows, size_column):
    """By name when the names tell methods (or history lengths) apart; not when
    each name is one size and each size one name (the names label the sizes,
    as in a size sweep's point list: grouping by them would leave one size per
    group)."""
    names = {r.text["name"] for r in rows}
    if len(names) < 2:
        return [], "one name"
    sizes_of, names_of = {}, {}
    for r in rows:
        sizes_of.setdefault(r.text["name"], set()).add(r.numbers[size_column])
        names_of.setdefault(r.numbers[size_column], set()).add(r.text["name"])
    if all(len(v) == 1 for v in sizes_of.values()) and all(len(v) == 1 for v in names_of.values()):
        return [], f"the names label the sizes, one name per {size_column}"
    return ["name"], "the names differ"


def group_rows(rows, keys):
    groups = {}
    for row in rows:
        parts = []
        for key in keys:
            if key == "name":
                parts.append(row.text["name"] or "(unnamed)")
            else:
                parts.append(f"{key}={row.overrides.get(key, '(default)')}")
        groups.setdefault(" ".join(parts) or "all", []).append(row)
    return dict(sorted(groups.items(), key=lambda kv: natural_key(kv[0])))


def natural_key(text):
    out = []
    for token in text.replace("=", " ").split():
        try:
            out.append((0, float(token), ""))
        except ValueError:
            out.append((1, 0.0, token))
    return out


# ----------------------------------------------------------------------------- outputs

def exponent_cell(report, i):
    term = report["terms"][i]
    text = f"{term['exponent_name']} = {term['exponent']:.3f}"
    intervals = report["bootstrap"].get("intervals")
    if intervals:
        text += f" [{intervals[i][0]:.3f}, {intervals[i][1]:.3f}]"
    if term["at_bound"]:
        text += " (at its bound)"
    return text


def fit_table(results, quantity_key):
    lines = ["| group | against | law | E | coefficients | exponents [95% bootstrap] | points | rms log residual "
             "| bootstrap failures |", "|---|---|---|---|---|---|---|---|---|"]
    for label, entry in results.items():
        for kind in ("size", "compute"):
            report = entry[quantity_key].get(kind)
            if not report:
                continue
            letters = ["A", "B"]
            coefficients = ", ".join(f"{letters[i]} = {t['A']:.4g}" for i, t in enumerate(report["terms"]))
            exponents = "; ".join(exponent_cell(report, i) for i in range(len(report["terms"])))
            e = f"{report['E']:.4g}" + (f" (ceiling {report['ceiling']:.4g})" if "ceiling" in report else "")
            b = report["bootstrap"]
            failures = b["not_converged"] + b["too_few_distinct"]
            against = " and ".join(report["variables"])
            if kind == "compute":
                against += f" ({report['points']} efficient cells)"
            lines.append(f"| {label} | {against} | {report['form']} | {e} | {coefficients} | {exponents} "
                         f"| {report['points']} | {report['rmse_log']:.3g} | {failures}/{b['resamples']}"
                         + (f" ({b['not_converged']} not converged, {b['too_few_distinct']} too few distinct)"
                            if failures else "") + " |")
    return lines


def heldout_table(results, quantity_key, size_column):
    lines = [f"| group | held-out {size_column} | cells | observed | predicted | abs error | rel error |",
             "|---|---|---|---|---|---|---|"]
    any_row = False
    for label, entry in results.items():
        report = entry[quantity_key].get("size")
        if not report or not report.get("heldout"):
            continue
        for s in report["heldout"]["sizes"]:
            any_row = True
            lines.append(f"| {label} | {s['size']:.4g} | {s['cells']} | {s['observed']:.4g} | {s['predicted']:.4g} "
                         f"| {s['abs_error']:.3g} | {100 * s['rel_error']:.2f}% |")
    return lines if any_row else ["(no held-out check could be made)"]


def grouping(args):
    keys = ", ".join(args.group_keys)
    return f"grouped by {keys} ({args.group_why})" if keys else f"not grouped ({args.group_why})"


def markdown(args, path, counts, results, frontiers, refusals, metric):
    skipped = ", ".join(f"{n} {s}" for s, n in counts["skipped"].items() if n) or "none"
    lines = [f"# Scaling fits: {path}", "",
             f"{counts['done']} done points in {len(results)} group{'s' if len(results) != 1 else ''} "
             f"({grouping(args)}); skipped: {skipped}.",
             f"Loss: `{args.loss}`; size N: `{args.size}`; data D: `{args.data}`; compute C: `train_flops`. "
             f"Least squares in log space; 95% intervals from {args.bootstrap} bootstrap resamples of the rows "
             f"(seed {args.seed}); held-out check: the largest {args.holdout} size(s) of each group.", ""]
    sections = [("loss", args.loss, False)]
    if metric:
        sections.append(("metric", args.metric, True))
    for key, column, is_metric in sections:
        lines += [f"## {'Metric' if is_metric else 'Loss'}: `{column}`", ""]
        if is_metric:
            lines += [f"Fitted as 1 - {column} (lower is better); the ceiling is 1 - E.", ""]
        lines += fit_table(results, key) + ["", f"### Held-out prediction of the largest size(s)", ""]
        lines += heldout_table(results, key, args.size) + ["", "### Compute frontier", ""]
        what = column
        entries = frontiers[key][1]
        if entries:
            lines += [f"- {frontier_sentence(label, entry, what)}" for label, entry in entries.items()]
        else:
            lines.append("One group: its lower envelope is the frontier.")
        lines.append("")
    if refusals:
        lines += ["## Not fitted", ""] + [f"- {r}" for r in refusals] + [""]
    lines += ["## Plots", "", "![loss vs training FLOPs](loss_vs_flops.png)", "",
              "![loss vs parameters](loss_vs_params.png)", ""]
    if metric:
        lines += ["![metric vs parameters](metric_vs_params.png)", ""]
    return "\n".join(lines)


def public(report):
    if isinstance(report, dict):
        return {k: public(v) for k, v in report.items() if not k.startswith("_")}
    if isinstance(report, list):
        return [public(v) for v in report]
    if isinstance(report, float) and not math.isfinite(report):
        return None
    return report


def colours(labels):
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {label: cycle[i % len(cycle)] for i, label in enumerate(labels)}


def plot_flops(groups, results, frontier_points, args, colour):
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for label, rows in groups.items():
        c = [r.numbers["train_flops"] for r in rows]
        ax.scatter(c, [r.numbers[args.loss] for r in rows], s=18, color=colour[label], label=label, alpha=0.8)
        report = results[label]["loss"].get("compute")
        if report:
            grid = np.geomspace(min(c), max(c), 200)
            ax.plot(grid, report["_law"].predict(grid[:, None]), color=colour[label], lw=1.5,
                    label=f"{label}: fit, alpha = {report['terms'][0]['exponent']:.3f}")
    if frontier_points["train_flops"]:
        ax.plot(frontier_points["train_flops"], frontier_points[args.loss], color="black", ls="--", lw=1.2,
                label="compute frontier", zorder=0)
    ax.set(xscale="log", xlabel="training FLOPs", ylabel=args.loss, title=f"{args.loss} vs training compute")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_size(groups, results, args, key, column, is_metric, colour):
    quantity = Quantity(column, is_metric)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for label, rows in groups.items():
        rows = [r for r in rows if r.numbers[column] is not None]
        if not rows:
            continue
        n = np.array([r.numbers[args.size] for r in rows])
        ax.scatter(n, [r.numbers[column] for r in rows], s=18, color=colour[label], label=label, alpha=0.8)
        report = results[label][key].get("size")
        if not report:
            continue
        law = report["_law"]
        exponents = ", ".join(f"{t['exponent_name']} = {t['exponent']:.3f}" for t in report["terms"])
        if len(report["variables"]) == 1:
            grid = np.geomspace(n.min(), n.max(), 200)
            ax.plot(grid, quantity.shown(law.predict(grid[:, None])), color=colour[label], lw=1.5,
                    label=f"{label}: fit, {exponents}")
            continue
        # Two variables: one curve per budget level, D interpolated along N in log-log.
        levels = {}
        for r in rows:
            levels.setdefault((r.text["budget_kind"], r.numbers["budget"]), []).append(r)
        first = True
        for level_rows in levels.values():
            cx, _ = cells_of(np.array([[r.numbers[args.size], r.numbers[args.data]] for r in level_rows]),
                             np.zeros(len(level_rows)))
            sizes = np.unique(cx[:, 0])
            if len(sizes) < 2:
                continue
            log_d = [np.mean(np.log(cx[cx[:, 0] == s, 1])) for s in sizes]
            grid = np.geomspace(sizes.min(), sizes.max(), 100)
            d = np.exp(np.interp(np.log(grid), np.log(sizes), log_d))
            ax.plot(grid, quantity.shown(law.predict(np.stack([grid, d], axis=1))), color=colour[label], lw=1.2,
                    label=f"{label}: fit per budget, {exponents}" if first else None)
            first = False
    ax.set(xscale="log", xlabel=args.size, ylabel=column, title=f"{column} vs {args.size}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def write_outputs(out_dir, files, stale):
    """files: {name: bytes}. All are written to temporaries first and renamed
    last, so an error leaves the previous outputs (or none), never half of one.
    stale: earlier outputs this run does not make (removed, not left to mislead)."""
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise Refusal(f"{out_dir}: cannot create ({e.strerror})")
    temporaries = []
    try:
        for name, content in files.items():
            temporary = os.path.join(out_dir, f".{name}.tmp-{os.getpid()}")
            temporaries.append((temporary, os.path.join(out_dir, name)))
            with open(temporary, "wb") as f:
                f.write(content)
        for temporary, final in temporaries:
            os.replace(temporary, final)
        for name in stale:
            if os.path.exists(os.path.join(out_dir, name)):
                os.remove(os.path.join(out_dir, name))
    except OSError as e:
        for temporary, _ in temporaries:
            if os.path.exists(temporary):
                os.remove(temporary)
        raise Refusal(f"{out_dir}: cannot write ({e.strerror})")


def png_bytes(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- main

def run(args):
    path = os.path.join(args.dir, "results.csv")
    metric = args.metric if args.metric not in ("", "none") else None
    if args.data not in ("samples", "tokens"):
        raise Refusal(f"--data: '{args.data}' is neither samples nor tokens")
    if args.holdout < 0 or args.bootstrap < 0:
        raise Refusal("--holdout and --bootstrap must not be negative")
    options = {"--loss": args.loss, "--size": args.size}
    if metric:
        options["--metric"] = metric
    rows, skipped = read_results(path, options)
    if not rows:
        counts = ", ".join(f"{n} {s}" for s, n in skipped.items() if n) or "no rows"
        raise Refusal(f"{path}: no done rows to fit ({counts})")
    require_positive(path, rows, args.loss, f"the loss, --loss {args.loss}")
    require_positive(path, rows, args.size, f"the size axis, --size {args.size}")
    require_positive(path, rows, "train_flops", "the compute axis")
    require_positive(path, rows, args.data, f"the data axis, --data {args.data}")
    metric_missing = 0
    if metric:
        for row in rows:
            m = row.numbers[metric]
            if m is None:
                metric_missing += 1
            elif not 0 <= m < 1:
                raise Refusal(f"{path}:{row.line}: column '{metric}': {m:g} is not in [0, 1) (a ranking metric, "
                              f"higher is better)")
        if metric_missing == len(rows):
            warn(f"no done row has a value of {metric}: the metric is not fitted")
            metric = None
        elif metric_missing:
            warn(f"{metric_missing} done row(s) without a value of {metric}: left out of the metric's fits")

    if args.group is None:
        args.group_keys, args.group_why = default_grouping(rows, args.size)
    else:
        args.group_why = "--group"
        args.group_keys = [k for k in args.group.split(",") if k and k != "none"]
    known = sorted({k for r in rows for k in r.overrides})
    for key in args.group_keys:
        if key != "name" and key not in known:
            raise Refusal(f"--group: no done point sets '{key}' (their overrides set: {', '.join(known) or 'nothing'}; "
                          f"or use 'name')")
    groups = group_rows(rows, args.group_keys)

    rng = np.random.default_rng(args.seed)
    refusals, results = [], {}
    quantities = [("loss", Quantity(args.loss, False))]
    if metric:
        quantities.append(("metric", Quantity(metric, True)))
    for label, group in groups.items():
        results[label] = {"rows": len(group), "sizes": sorted({r.numbers[args.size] for r in group})}
        for key, quantity in quantities:
            usable = [r for r in group if r.numbers[quantity.column] is not None]
            results[label][key] = {
                "size": fit_size(label, quantity, usable, args, rng, refusals) if usable else None,
                "compute": fit_compute(label, quantity, usable, args, rng, refusals) if usable else None}
    frontiers = {key: frontier(groups, quantity, args.size) for key, quantity in quantities}
    for r in refusals:
        warn(r)

    counts = {"done": len(rows), "skipped": skipped}
    document = {
        "source": path, "rows": counts, "loss": args.loss, "metric": metric, "size": args.size, "data": args.data,
        "group_keys": args.group_keys, "bootstrap": args.bootstrap, "seed": args.seed, "holdout": args.holdout,
        "metric_rows_without_value": metric_missing,
        "groups": results, "frontier": {key: {"envelope": f[0], "groups": f[1]} for key, f in frontiers.items()},
        "not_fitted": refusals}
    colour = colours(list(groups))
    files = {
        "fit.md": markdown(args, path, counts, results, frontiers, refusals, metric).encode(),
        "fit.json": (json.dumps(public(document), indent=1, allow_nan=False) + "\n").encode(),
        "loss_vs_flops.png": png_bytes(plot_flops(groups, results, frontiers["loss"][0], args, colour)),
        "loss_vs_params.png": png_bytes(plot_size(groups, results, args, "loss", args.loss, False, colour)),
    }
    if metric:
        files["metric_vs_params.png"] = png_bytes(plot_size(groups, results, args, "metric", metric, True, colour))
    out_dir = args.out or os.path.join(args.dir, "fit")
    write_outputs(out_dir, files, stale=[] if metric else ["metric_vs_params.png"])
    return out_dir, files, counts, results, quantities, refusals


def summary(args, out_dir, files, counts, results, quantities, refusals):
    skipped = ", ".join(f"{n} {s}" for s, n in counts["skipped"].items() if n) or "none"
    print(f"wrote {', '.join(os.path.join(out_dir, f) for f in files)}")
    print(f"{counts['done']} done points in {len(results)} group(s), {grouping(args)}; skipped: {skipped}")
    fitted = sum(1 for entry in results.values() for key, _ in quantities for r in entry[key].values() if r)
    if refusals:
        print(f"{len(refusals)} fit(s) or check(s) not made{'' if fitted else ', nothing fitted'} "
              f"(the reasons above and in fit.md)")
    for label, entry in results.items():
        for key, quantity in quantities:
            for kind in ("size", "compute"):
                report = entry[key].get(kind)
                if not report:
                    continue
                exponents = "; ".join(exponent_cell(report, i) for i in range(len(report["terms"])))
                print(f"  {label}: {quantity.column} = {report['form']} over {' and '.join(report['variables'])}: "
                      f"E = {report['E']:.4g}, {exponents}")
                held = report.get("heldout")
                if held:
                    for s in held["sizes"]:
                        print(f"    held out {s['size']:.4g}: predicted {s['predicted']:.4g}, observed "
                              f"{s['observed']:.4g} ({100 * s['rel_error']:.2f}% error)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", help="sweep directory holding results.csv")
    parser.add_argument("--loss", default="final_train_loss", help="the loss column (default final_train_loss)")
    parser.add_argument("--metric", default="valid_ndcg@10",
                        help="a ranking metric column in [0, 1), higher is better (default valid_ndcg@10; none: off)")
    parser.add_argument("--group", help="comma list of override keys and/or 'name': one curve per group "
                                        "(default: name when the names differ, else one group)")
    parser.add_argument("--size", default="non_embedding_parameters", help="the model-size column")
    parser.add_argument("--data", default="samples", help="the data-size column: samples or tokens")
    parser.add_argument("--holdout", type=int, default=1, help="hold out the largest K sizes of each group")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--out", help="output directory (default DIR/fit)")
    args = parser.parse_args()
    if scipy is None:
        fail("scipy is not installed in this Python (bash scripts/setup.sh installs the pinned one into .venv)")
    try:
        outcome = run(args)
    except Refusal as e:
        fail(str(e))
    summary(args, *outcome)


if __name__ == "__main__":
    main()
