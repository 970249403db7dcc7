"""Testing claims on a results table: the runs of each cell, the tests, and the verdicts.

A results table is first split into **cells** (:mod:`.cells`): one per combination of
``model``, ``dataset`` and every training setting of the runs' config.yaml that differs
between completed runs; alpha, seed, paths and the device never split. Each claim is tested
in every cell its ``where`` selects, and a claim over several cells is supported only when
every cell is. Within a cell a contrast claim compares one metric between a group of runs (an
alpha, or every alpha matching a condition) and the baseline (alpha = 0 by default):

    c = mean over seeds of metric(group) - ratio * mean over seeds of metric(baseline)

with a one-sided t test (or TOST) on c, paired on seeds when both alphas hold the same
seeds, Welch's otherwise. The verdict of a claim in a cell, at level ``alpha_level``:

- supported: every alpha's test of the claim rejects its negation (intersection-union);
- refuted: some alpha's opposite one-sided test rejects the claim after Holm's adjustment
  over the claim's alphas (family-wise error at most alpha_level);
- inconclusive: neither (the report gives the seeds to support and to refute), or planned
  runs of the cell gave no value and the claim does not say how they score (``failed:``);
- not tested: the cell has no runs for the claim's alphas (or its ``where`` filter), or its
  values have no spread and no known resolution.

Each alpha's own verdict is Holm-adjusted on both sides. Trend and association claims test
the sign of a slope of the metric on alpha or on another column such as mean_si, fitted
within each seed (the networks of one seed are one cluster) and tested over the seeds. The
schema is documented in ``claims.yaml``; the methods and what they guarantee in
docs/claims.md.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...analysis import stats
from ..cells import SCHEDULE_COLUMNS, assign_cells, cell_columns
from .results import _CODES, INCONCLUSIVE, NOT_TESTED, REFUTED, SUPPORTED, CellResult, ClaimResult, Comparison
from .schema import Claim, ClaimsError, _number, _same

__all__ = ["BOOTSTRAP_MIN_SEEDS", "evaluate_claim", "evaluate_claims", "metric_resolution"]


# --------------------------------------------------------------------------- the runs of a cell


def _usable(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Completed runs with a finite value in every column."""
    if "status" in frame.columns:
        ok = (frame["status"] == "completed").to_numpy(copy=True)
    else:
        ok = np.ones(len(frame), bool)
    for column in columns:
        ok &= np.isfinite(frame[column].to_numpy(dtype=float))
    return ok


def _why(rows: pd.DataFrame, columns: list[str]) -> str:
    """Why a planned run gave no value: its status, else the metric that is infinite or empty."""
    if "status" in rows.columns and (rows["status"] != "completed").all():
        return str(rows["status"].iloc[0])
    for column in columns:
        values = rows[column].to_numpy(dtype=float)
        if np.isinf(values).any():
            return f"{column} = {'inf' if values[np.isinf(values)][0] > 0 else '-inf'}"
        if np.isnan(values).all():
            return f"no {column}"
    return "no value"


@dataclass
class _Runs:
    """One alpha's runs in a cell: values per seed (completed, finite), and the planned seeds
    without a value with why."""

    values: pd.DataFrame  # index: seed; columns: the metric (and the trend's x)
    missing: list[tuple[object, str]]


class _CellRuns:
    """The runs of one cell as arrays, for the values per seed at each alpha (a seed run twice
    counts once, at its mean) and the planned seeds without a value."""

    def __init__(self, frame: pd.DataFrame, columns: list[str]):
        self.frame, self.columns = frame, columns
        self.alpha = frame["alpha"].to_numpy(dtype=float)
        self.seed = frame["seed"].to_numpy()
        self.ok = _usable(frame, columns)
        self.values = {c: frame[c].to_numpy(dtype=float) for c in columns}

    def at(self, alpha: float) -> _Runs:
        rows = np.flatnonzero(_same(self.alpha, alpha))
        good = rows[self.ok[rows]]
        seeds, inverse = np.unique(self.seed[good], return_inverse=True)
        counts = np.bincount(inverse, minlength=len(seeds))
        data = {c: np.bincount(inverse, weights=self.values[c][good], minlength=len(seeds)) / counts
                for c in self.columns}
        values = pd.DataFrame(data, index=pd.Index(seeds, name="seed"))
        missing: list = []
        for i in rows[~self.ok[rows]]:
            seed = self.seed[i]
            if seed in set(seeds) or any(seed == m for m, _ in missing):
                continue
            missing.append((seed, _why(self.frame.iloc[[i]], self.columns)))
        return _Runs(values, missing)

    def pooled_sd(self) -> float:
        """Within-alpha seed-to-seed sd of the cell, pooled over its alphas with two seeds or more."""
        groups = [self.at(a).values[self.columns[0]] for a in np.unique(self.alpha[self.ok])]
        dfs = sum(len(g) - 1 for g in groups if len(g) > 1)
        if dfs == 0:
            return float("nan")
        return math.sqrt(sum(float(((g - g.mean()) ** 2).sum()) for g in groups if len(g) > 1) / dfs)


def _seed_text(seed) -> str:
    try:
        return f"{int(seed)}"
    except (TypeError, ValueError):
        return "?"


def _missing_text(by: str, missing: dict[float, list]) -> str:
    """'alpha = -5: seeds 3, 4 diverged; alpha = 0: seed 2 unfinished'."""
    parts = []
    for alpha in sorted(missing):
        whys: dict[str, list] = {}
        for seed, why in missing[alpha]:
            whys.setdefault(why, []).append(_seed_text(seed))
        runs = ", ".join(f"seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)} {why}" for why, seeds in whys.items())
        parts.append(f"{by} = {alpha:g}: {runs}")
    return "; ".join(parts)


def _failure_value(claim: Claim, frame: pd.DataFrame) -> tuple[float | None, str]:
    """(the value a run without one scores, or None; why the rule cannot apply here)."""
    if claim.failed is None or claim.failed == "exclude":
        return None, ""
    if claim.failed == "chance":
        counts = frame["num_classes"].dropna().unique() if "num_classes" in frame.columns else []
        if len(counts) != 1:
            return None, ("failed: chance needs the number of classes, which these runs do not record "
                          "(no num_classes column): give the value, e.g. failed: 0.1 for 10 classes")
        return 1.0 / float(counts[0]), ""
    return float(claim.failed), ""


def metric_resolution(frame: pd.DataFrame, metric: str) -> float | None:
    """The step of a metric's values, when the runs record it: 1 / n_test for test_acc, 1 / n
    for robustness accuracies (``robustness_n``), 1 / (n x corruptions averaged) for
    corruption_acc. None when unknown (or not one value over the cell)."""
    from ...analysis.corruptions import CORRUPTIONS  # the benchmark's 15: a constant
    from ...runs.summary import SEVERITIES

    if metric == "test_acc":
        column, per = "n_test", 1
    elif metric == "clean_acc_eval" or metric.startswith("adv_acc/"):
        column, per = "robustness_n", 1
    elif metric == "corruption_acc":
        column, per = "robustness_n", len(CORRUPTIONS) * len(SEVERITIES)
    elif re.fullmatch(r"corruption_acc/s\d+", metric):
        column, per = "robustness_n", len(CORRUPTIONS)
    else:
        return None
    if column not in frame.columns:
        return None
    counts = pd.to_numeric(frame[column], errors="coerce").dropna().unique()
    return 1.0 / (float(counts[0]) * per) if len(counts) == 1 and counts[0] > 0 else None


# --------------------------------------------------------------------------- tests in a cell


def _distances(claim: Claim, c: float) -> tuple[list[float], list[float]]:
    """How far the contrast c lies past each boundary (support, refute): positive = on the side
    a decisive test needs; the test has power when every distance is positive and large."""
    if claim.side == "equivalence":
        m = claim.margin
        return [m - c, c + m], [abs(c) - m]
    sign = 1.0 if claim.side == "greater" else -1.0
    gap = sign * (c - claim.null)
    return [gap], [-gap]


def _seeds(claim: Claim, distances, paired: bool, sd_x: float, sd_y: float, level: float) -> float:
    return stats.seeds_needed(distances, sd_x, sd_y, paired=paired, ratio=claim.contrast_ratio,
                              alpha_level=level, power=claim.power)


def _test_pair(claim: Claim, xv: np.ndarray, yv: np.ndarray, paired: bool, resolution: float | None):
    """(support TestResult, raw p against) of one alpha."""
    r, side = claim.contrast_ratio, claim.side
    if side == "equivalence":
        support = stats.equivalence_test(xv, yv, claim.margin, ratio=r, paired=paired, resolution=resolution)
        against = stats.nonequivalence_test(xv, yv, claim.margin, ratio=r, paired=paired, resolution=resolution)
        return support, float(against.p_value)
    opposite = "less" if side == "greater" else "greater"
    support = stats.contrast_test(xv, yv, alternative=side, null=claim.null, ratio=r, paired=paired,
                                  resolution=resolution)
    against = stats.contrast_test(xv, yv, alternative=opposite, null=claim.null, ratio=r, paired=paired,
                                  resolution=resolution)
    return support, float(against.p_value)


def _interval(claim: Claim, xv, yv, paired: bool, level: float, interval: str, n_boot: int, seed: int,
              resolution: float | None):
    """(estimate, (low, high), interval name) on the claim's scale."""
    ratio_test = claim.ratio is not None
    if interval == "bootstrap" and min(len(xv), len(yv)) >= BOOTSTRAP_MIN_SEEDS:
        estimate = float(xv.mean() / yv.mean()) if ratio_test else float(xv.mean() - yv.mean())
        ci = stats.bootstrap_ci(xv, yv, statistic="ratio" if ratio_test else "difference", paired=paired,
                                level=level, n_boot=n_boot, seed=seed)
        return estimate, ci, "percentile bootstrap"
    floor = f" (se floored at half of the step {resolution:g})" if resolution else ""
    if ratio_test:
        estimate, low, high = stats.fieller_ci(xv, yv, paired=paired, level=level, resolution=resolution)
        return float(estimate), (float(low), float(high)), "Fieller" + (" (paired)" if paired else " (Welch)") + floor
    estimate, low, high = stats.contrast_ci(xv, yv, paired=paired, level=level, resolution=resolution)
    return float(estimate), (float(low), float(high)), ("paired t" if paired else "Welch t") + floor


#: The percentile bootstrap is offered only from this many seeds per group (below, its
#: coverage falls well short: 3 paired seeds give their min-max range, ~75%).
BOOTSTRAP_MIN_SEEDS = 20


@dataclass
class _Outcome:
    """What the tests of a cell found besides the verdict: runs without a value, no spread."""

    missing: dict = field(default_factory=dict)  # alpha -> [(seed, why)] of runs not scored by the claim
    scored: dict = field(default_factory=dict)  # alpha -> [(seed, why)] scored or excluded by the claim's rule
    no_spread: list = field(default_factory=list)  # labels of comparisons whose values show no spread
    unscorable: str = ""  # why the claim's rule cannot score the missing runs


def _with_failures(runs: _Runs, value: float | None, column: str) -> pd.Series:
    """The per-seed values, with the claim's score for each planned seed without one."""
    series = runs.values[column]
    if value is None or not runs.missing:
        return series
    extra = pd.Series(value, index=[seed for seed, _ in runs.missing], dtype=float)
    return pd.concat([series, extra]).sort_index()


def _no_spread(xv: np.ndarray, yv: np.ndarray, paired: bool) -> bool:
    """Values without seed-to-seed spread (within float rounding of the values)."""
    parts = [xv - yv] if paired else [xv, yv]
    return all(np.ptp(p) <= 1e-12 * max(np.abs(p).max(), 1e-300) for p in parts)


def _compare_alphas(claim: Claim, frame: pd.DataFrame, found: list[float], level: float, interval: str,
                    n_boot: int, seed: int, fail: float | None, resolution: float | None, dunnett: bool = False):
    """The comparisons of a contrast claim in one cell, Holm over its alphas; the cell verdict; the outcome."""
    outcome = _Outcome()
    samples: list[np.ndarray] = []
    cell = _CellRuns(frame, [claim.metric])
    base = cell.at(claim.baseline) if not claim.is_level else _Runs(pd.DataFrame(), [])
    y = _with_failures(base, fail, claim.metric) if not claim.is_level else None
    rows = []
    for alpha in found:
        runs = cell.at(alpha)
        x = _with_failures(runs, fail, claim.metric)
        if claim.is_level:  # a one-sample t test is the paired test against the constant level
            y = pd.Series(claim.value, index=x.index, dtype=float)
        paired = len(x) > 1 and list(x.index) == list(y.index)
        xv, yv = x.to_numpy(dtype=float), y.to_numpy(dtype=float)
        support, p_against = _test_pair(claim, xv, yv, paired, resolution)
        label = (f"{claim.by} = {alpha:g} vs {claim.value:g}" if claim.is_level else
                 f"{claim.by} = {alpha:g} vs {claim.baseline:g}")
        if min(len(xv), len(yv)) > 1 and support.se == 0:
            outcome.no_spread.append(label)
        estimate, ci, name = _interval(claim, xv, yv, paired, level, interval, n_boot, seed, resolution)
        if claim.ratio is not None:
            effect, effect_name = estimate, "ratio"
        elif len(xv) > 1 and len(yv) > 1 and not _no_spread(xv, yv, paired):
            effect, effect_name = stats.effect_size(xv, yv, paired=paired)
        else:  # one seed, or no spread: a standardized effect is undefined (not infinite)
            effect, effect_name = float("nan"), "d_z" if paired else "g"
        c = float(xv.mean() - claim.contrast_ratio * yv.mean())
        if paired:
            sd_x = sd_y = float(np.std(xv - claim.contrast_ratio * yv, ddof=1))
        else:
            sd_x = float(np.std(xv, ddof=1)) if len(xv) > 1 else cell.pooled_sd()
            sd_y = float(np.std(yv, ddof=1)) if len(yv) > 1 else cell.pooled_sd()
        missing = {a: r.missing for a, r in ((alpha, runs), (claim.baseline, base)) if r.missing}
        if claim.is_level and not paired:
            sd_y = 0.0  # the level is a constant: the group's spread is the test's
        (outcome.missing if fail is None and claim.failed != "exclude" else outcome.scored).update(missing)
        to_support, to_refute = _distances(claim, c)
        refute_level = claim.alpha_level / len(found) / (2 if claim.side == "equivalence" else 1)
        _, *group_ci = stats.mean_ci(xv, level)
        _, *base_ci = stats.mean_ci(yv, level) if not claim.is_level else (0.0, claim.value, claim.value)
        samples.append(xv)
        rows.append(dict(alpha=alpha, n_group=len(xv), n_baseline=len(yv), paired=paired,
                         ci_group=tuple(map(float, group_ci)), ci_baseline=tuple(map(float, base_ci)),
                         mean_group=float(xv.mean()), mean_baseline=float(yv.mean()), estimate=estimate, ci=ci,
                         effect_size=float(effect), effect_name=effect_name, p_value=float(support.p_value),
                         p_against_raw=p_against, scale="ratio" if claim.ratio is not None else "difference",
                         interval=name, label=label,
                         n_failed=sum(len(m) for m in missing.values()), failed_runs=_missing_text(claim.by, missing),
                         seeds_to_support=_seeds(claim, to_support, paired, sd_x, sd_y, claim.alpha_level),
                         seeds_to_refute=_seeds(claim, to_refute, paired, sd_x, sd_y, refute_level)))
    if dunnett and not claim.is_level and claim.ratio is None and len(rows) > 1:
        for row, (low, high, p) in zip(rows, stats.dunnett_intervals(samples, y.to_numpy(dtype=float), level),
                                       strict=True):
            row.update(dunnett_ci=(low, high), dunnett_p=p)
    family = stats.family_verdict([r["p_value"] for r in rows], [r["p_against_raw"] for r in rows],
                                  claim.alpha_level)
    comparisons = tuple(Comparison(**r, p_against=float(a), p_support_holm=float(s), verdict=_CODES[int(v)])
                        for r, a, s, v in zip(rows, family.p_against, family.p_support, family.per_alpha,
                                              strict=True))
    return comparisons, _CODES[int(family.claim)], outcome


def _network_grid(frame: pd.DataFrame, found: list[float], columns: list[str], x_col: str):
    """(x, metric) as (seeds, alphas) arrays over the networks of the cell, NaN where a network
    has no value; the seeds; and the planned runs without a value, by alpha."""
    alphas = frame["alpha"].to_numpy(dtype=float)
    keep = np.isin(alphas, found)
    sub = frame[keep]
    ok = _usable(sub, columns)
    codes, seeds = pd.factorize(sub["seed"], sort=True)
    cols = np.searchsorted(np.asarray(found, dtype=float), alphas[keep])
    shape = (len(seeds), len(found))
    total, count, xs = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    metric = sub[columns[0]].to_numpy(dtype=float)
    xvals = sub[x_col].to_numpy(dtype=float) if x_col != "alpha" else alphas[keep]
    good = ok & (codes >= 0)
    np.add.at(total, (codes[good], cols[good]), metric[good])  # a seed run twice counts once, at its mean
    np.add.at(xs, (codes[good], cols[good]), xvals[good])
    np.add.at(count, (codes[good], cols[good]), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        v, t = total / count, xs / count
    missing: dict = {}
    bad = np.flatnonzero(~ok)
    for i in bad:
        row_seed, row_alpha = codes[i], cols[i]
        if row_seed >= 0 and count[row_seed, row_alpha] > 0:
            continue  # the seed has a value at this alpha from another run
        entry = (seeds[row_seed] if row_seed >= 0 else np.nan, _why(sub.iloc[[i]], columns))
        runs = missing.setdefault(found[row_alpha], [])
        if entry[0] not in [s for s, _ in runs]:
            runs.append(entry)
    return t, v, list(seeds), missing


def _compare_trend(claim: Claim, frame: pd.DataFrame, found: list[float], level: float, fail: float | None,
                   resolution: float | None):
    """A trend or association claim in one cell: the seeds' slopes (networks of one seed are one
    cluster), or OLS when every seed has one network (then networks are independent).

    Returns (comparison or None, verdict, outcome, why not testable).
    """
    outcome = _Outcome()
    x_col = claim.against
    columns = [claim.metric] + ([x_col] if x_col != "alpha" else [])
    t, v, seed_ids, missing = _network_grid(frame, found, columns, x_col)
    if missing and fail is not None and x_col != "alpha":
        outcome.unscorable = (f"the claim's rule cannot score them: a run without a value has no {x_col} to place "
                              "it on the slope's x axis")
        fail = None
    (outcome.missing if fail is None and claim.failed != "exclude" else outcome.scored).update(missing)
    if fail is not None:  # scored runs sit at their alpha with the claim's value
        for alpha, runs in missing.items():
            j = found.index(alpha)
            for seed, _ in runs:
                i = seed_ids.index(seed)
                t[i, j], v[i, j] = alpha, fail
    if not np.isfinite(v).any():
        return None, NOT_TESTED, outcome, f"no completed run with {', '.join(columns)}"
    points_per_seed = np.isfinite(v).sum(axis=1)
    slopes = np.asarray(stats.per_seed_slopes(t, v), dtype=float).reshape(-1)
    with_slope = int(np.isfinite(slopes).sum())
    n_nets = int(points_per_seed.sum())
    label = f"slope on {claim.against}, {_alphas_text(found)}"
    if with_slope >= 2:
        result = stats.slope_test(t, v, per_seed=True, level=level, resolution=resolution)
        n_units, sd_unit = int(result.n), float(result.se) * math.sqrt(float(result.n))
        df_of_n = lambda m: m - 1.0  # noqa: E731
        name, paired = "t of per-seed slopes (networks clustered by seed)", True
        left = int((points_per_seed == 1).sum())
        label += f" ({with_slope} seeds, {n_nets} networks)" + (f"; {left} seed(s) with one network left out"
                                                                  if left else "")
        effect, effect_name = (float(result.r), "d_z") if claim.test == "trend" else \
            (float(stats.within_seed_r(t, v)), "r (within seeds)")
    elif (points_per_seed <= 1).all() and n_nets >= 3:  # one network per seed: independent networks
        ok = np.isfinite(v)
        result = stats.slope_test(t[ok], v[ok], per_seed=False, level=level)
        n_units, sd_unit = n_nets, float(result.se) * math.sqrt(n_nets)
        df_of_n = lambda m: m - 2.0  # noqa: E731
        name, paired = "OLS slope t (one network per seed: independent)", False
        label += f" ({n_nets} networks, one per seed)"
        effect, effect_name = float(result.r), "r"
    else:
        seeds = ", ".join(_seed_text(s) for s, k in zip(seed_ids, points_per_seed, strict=True) if k >= 2) or "none"
        return None, NOT_TESTED, outcome, (
            f"not testable: {with_slope} seed with networks at two or more {claim.by if x_col == 'alpha' else x_col} "
            f"values (seed {seeds}, {n_nets} networks): networks of one seed are not independent, so a slope "
            "across them has no valid test; run 2 seeds or more (3 recommended)")
    if result.se == 0:
        outcome.no_spread.append(label)
    greater = claim.side == "greater"
    p_support = float(result.p_greater if greater else result.p_less)
    p_against = float(result.p_less if greater else result.p_greater)
    gap = float(result.estimate) * (1 if greater else -1)
    family = stats.family_verdict([p_support], [p_against], claim.alpha_level)
    seeds = {side: stats.slope_seeds_needed(d, sd_unit, df_of_n=df_of_n, alpha_level=claim.alpha_level,
                                            power=claim.power) for side, d in (("support", gap), ("refute", -gap))}
    comparison = Comparison(alpha=float("nan"), n_group=n_units, n_baseline=0, paired=paired,
                            mean_group=float(np.nanmean(v)), mean_baseline=float("nan"),
                            estimate=float(result.estimate), ci=(float(result.low), float(result.high)),
                            effect_size=effect, effect_name=effect_name, p_value=p_support,
                            p_against=p_against, p_against_raw=p_against, p_support_holm=p_support,
                            verdict=_CODES[int(family.per_alpha[0])], seeds_to_support=seeds["support"],
                            seeds_to_refute=seeds["refute"], scale="slope", interval=name, label=label,
                            n_failed=sum(len(m) for m in missing.values()),
                            failed_runs=_missing_text(claim.by, missing))
    return comparison, _CODES[int(family.claim)], outcome, ""


def _alphas_text(alphas) -> str:
    return ", ".join(f"{a:g}" for a in sorted(alphas)) or "none"


def _apply_where(results: pd.DataFrame, claim: Claim) -> tuple[pd.DataFrame, str, list[str]]:
    """(rows the claim's ``where`` selects, why none, listed values with no run)."""
    frame, absent = results, []
    for column, wanted in claim.where.items():
        if column not in frame.columns:
            raise ClaimsError(f"{claim.origin}: claim '{claim.id}': 'where' names {column!r}, which is not a column "
                              f"of the results (columns: {', '.join(map(str, results.columns))})")
        options = wanted if isinstance(wanted, list) else [wanted]
        values = frame[column].astype(str)
        numbers = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)

        def matches(option) -> np.ndarray:  # -1 matches an alpha of -1.0; text matches text
            number = _number(option)
            same = (values == str(option)).to_numpy()
            return same | _same(number, numbers) if number is not None else same

        absent += [f"{column}={o}" for o in options if not matches(o).any()]
        keep = pd.Series(np.any([matches(o) for o in options], axis=0), index=frame.index)
        if not keep.any():
            present = ", ".join(sorted(results[column].astype(str).unique()))
            why = f"applies where {column} is {' or '.join(map(str, options))}; this sweep has {present}"
            return frame[keep], why, []
        frame = frame[keep]
    return frame, "", absent


#: Summary columns written by `selectivity robustness` / `selectivity analyze`: a claim on one
#: of them that the results lack is 'not tested' (run the evaluation first), not an error.
EVALUATION_COLUMNS = {"corruption_acc": "robustness", "adv_acc/": "robustness", "clean_acc_eval": "robustness",
                      "pc95": "analyze", "pr/": "analyze", "pr_early": "analyze", "delta_pc95": "analyze",
                      "pwcca": "analyze", "cka": "analyze", "grad_": "analyze",
                      # measures beside SI: written by `selectivity measure DIR --measures all`
                      # (MonoScore also by training, in final.json, since it was added)
                      "mean_monoscore": "measure --measures all", "mean_informedness": "measure --measures all"}


def _not_evaluated(results: pd.DataFrame, claim: Claim) -> str:
    """Why the claim cannot be tested yet, when a column comes from an evaluation not run."""
    for column in (claim.metric, claim.against):
        if column == "alpha" or column in results.columns:
            continue
        prefix, command = next(((pre, cmd) for pre, cmd in EVALUATION_COLUMNS.items() if column.startswith(pre)),
                               ("", ""))
        if command and column.startswith("adv_acc/") and any(str(c).startswith("adv_acc/") for c in results.columns):
            attack, eps = column.split("/", 2)[1:]
            ran = sorted(str(c)[len("adv_acc/"):] for c in results.columns if str(c).startswith("adv_acc/"))
            return (f"`selectivity robustness` ran without {attack} at epsilon {eps} (it has {', '.join(ran)}): run "
                    f"`selectivity robustness DIR --attacks {attack} --eps {eps}`")
        if command and any(str(c).startswith(prefix) for c in results.columns):
            return f"`selectivity {command}` ran, but the results have no {column} column"
        if command:
            return f"the results have no {column} column: run `selectivity {command} DIR` first"
    return ""


#: The regularizer's knobs (the results columns of their strengths) and the settings columns that
#: go with each. A run drives one knob (regularizer.kind); plain training has both at 0.
KNOB_SETTINGS = {"alpha": ("regularizer.alpha",), "lambda": ("regularizer.lambda", "regularizer.kind", "kind")}


def _other_knobs_off(results: pd.DataFrame, claim: Claim) -> pd.DataFrame:
    """The runs a claim compares: a claim over one knob (alpha, or ``by: lambda``) uses the runs
    whose other knobs are 0, so the baseline is plain training and no run of the other knob joins a
    group (a MonoLoss run has alpha 0). Runs that do not record a knob (older versions) have it at 0."""
    knob = claim.by if claim.by in KNOB_SETTINGS else ("alpha" if claim.by == "alpha" else None)
    if knob is None:
        return results
    keep = np.ones(len(results), dtype=bool)
    for other in KNOB_SETTINGS:
        if other != knob and other in results.columns:
            keep &= pd.to_numeric(results[other], errors="coerce").fillna(0.0).to_numpy() == 0
    return results[keep]


def _metric_values(results: pd.DataFrame, claim: Claim, metric: str) -> pd.Series:
    """A column the claim tests, as floats (missing values NaN, inf kept); an error if absent or not numbers."""
    if metric not in results.columns:
        numeric = [c for c in results.columns
                   if c not in ("alpha", "seed") and pd.api.types.is_numeric_dtype(results[c])]
        raise ClaimsError(f"{claim.origin}: claim '{claim.id}': metric {metric!r} is not a column of the results "
                          f"(numeric columns: {', '.join(numeric)})")
    column = results[metric]
    values = pd.to_numeric(column, errors="coerce").astype(float)
    if (column.notna() & values.isna()).any():
        raise ClaimsError(f"{claim.origin}: claim '{claim.id}': metric {metric!r} is not numeric")
    return values


def _no_value_reason(claim: Claim, where: str, alphas_missing: dict) -> str:
    text = _missing_text(claim.by, alphas_missing)
    return f"no completed run with a finite {claim.metric} at {where}" + (f" ({text})" if text else "")


def _evaluate_cell(claim: Claim, key: tuple, frame: pd.DataFrame, level: float, interval: str, n_boot: int,
                   seed: int, dunnett: bool = False) -> CellResult:
    """One cell: ``frame`` holds every planned run of the cell, whatever its status."""
    fail, why_not = _failure_value(claim, frame)
    if why_not:
        return CellResult(key, NOT_TESTED, why_not)
    columns = [claim.metric] + ([claim.against] if claim.is_trend and claim.against != "alpha" else [])
    usable = _usable(frame, columns)
    resolution = metric_resolution(frame[usable], claim.metric)
    planned = set(frame["alpha"].dropna().astype(float))
    with_values = set(frame.loc[usable, "alpha"].astype(float))
    # an alpha whose every run failed still counts when the claim scores failures
    available = planned if fail is not None else with_values

    def missing_at(alphas):
        runs = _CellRuns(frame, columns)
        out = {a: runs.at(a).missing for a in alphas}
        return {a: m for a, m in out.items() if m}

    if claim.is_trend:
        found, listed = claim.group.select(planned)
        if listed or len(found) < 2:
            lacking = f"alpha = {_alphas_text(listed)}" if listed else f"two alphas of {claim.group}"
            return CellResult(key, NOT_TESTED, f"no completed run with {', '.join(columns)} at {lacking} "
                                               f"(alphas here: {_alphas_text(with_values)})")
        if claim.failed == "exclude":
            found = [a for a in found if a in with_values]
            if len(found) < 2:
                return CellResult(key, NOT_TESTED, f"no two alphas of {claim.group} with completed runs with "
                                                   f"{', '.join(columns)} (alphas here: {_alphas_text(with_values)})")
        comparison, verdict, outcome, untestable = _compare_trend(claim, frame, found, level, fail, resolution)
        comparisons = (comparison,) if comparison is not None else ()
        if untestable:
            return _finish(claim, key, NOT_TESTED, untestable, comparisons, outcome)
        reason = "" if not math.isnan(comparison.p_value) or outcome.no_spread else \
            "too few seeds or points for a slope test"
        return _finish(claim, key, verdict, reason, comparisons, outcome, resolution)
    if claim.is_level:  # one sample against a fixed value: no baseline runs, the group may be alpha 0
        found, listed = claim.group.select(planned)
        lacking = [a for a in found if a not in available]
        if listed or not found or lacking:
            where = f"{claim.by} = {_alphas_text(listed or lacking)}" if (listed or lacking) else str(claim.group)
            return CellResult(key, NOT_TESTED, _no_value_reason(claim, where, missing_at(lacking))
                              + f" (values here: {_alphas_text(with_values)})")
        comparisons, verdict, outcome = _compare_alphas(claim, frame, found, level, interval, n_boot, seed, fail,
                                                        resolution, dunnett)
        return _finish(claim, key, verdict, "", comparisons, outcome, resolution)
    if claim.baseline_rule is not None:  # e.g. '> 0': exactly one other value of `by` must match
        matched = [a for a in claim.baseline_rule.select(planned)[0] if a not in claim.group.select(planned)[0]]
        if len(matched) != 1:
            return CellResult(key, NOT_TESTED, f"the baseline {claim.baseline_rule} must match one {claim.by} value "
                                               f"of this cell, it matches {_alphas_text(matched)}")
        claim = dataclasses.replace(claim, baseline=matched[0])
    if not any(_same(claim.baseline, a) for a in available):
        return CellResult(key, NOT_TESTED, _no_value_reason(claim, f"the baseline {claim.by} = {claim.baseline:g}",
                                                            missing_at([claim.baseline]))
                          + f" (alphas here: {_alphas_text(with_values)})")
    others = {a for a in planned if not _same(claim.baseline, a)}
    found, listed = claim.group.select(others)
    lacking = [a for a in found if a not in available]
    if listed or not found or lacking:
        where = f"alpha = {_alphas_text(listed or lacking)}" if (listed or lacking) else str(claim.group)
        return CellResult(key, NOT_TESTED, _no_value_reason(claim, where, missing_at(lacking))
                          + f" (alphas here: {_alphas_text(with_values)})")
    comparisons, verdict, outcome = _compare_alphas(claim, frame, found, level, interval, n_boot, seed, fail,
                                                    resolution, dunnett)
    reason = ""
    if verdict == INCONCLUSIVE and any(min(c.n_group, c.n_baseline) < 2 for c in comparisons):
        if all(math.isnan(c.seeds_to_support) for c in comparisons):
            reason = ("one seed per alpha and no seed-to-seed spread measured in this cell: no test can decide, "
                      "and the seeds a decisive answer needs cannot be estimated; run 3 seeds or more")
        else:
            reason = "one seed at an alpha: no test can decide (seeds needed from the spread at the other alphas)"
    return _finish(claim, key, verdict, reason, comparisons, outcome, resolution)


def _finish(claim: Claim, key: tuple, verdict: str, reason: str, comparisons: tuple, outcome: _Outcome,
            resolution: float | None = None) -> CellResult:
    """The cell's verdict after what the tests found: no spread makes it not testable; runs
    without a value that the claim does not score keep it from being decided."""
    notes = [reason] if reason else []
    if outcome.no_spread:
        step = "its resolution is unknown (the runs record no n_test)" if resolution is None else \
            f"even with the sd floored at the resolution {resolution:g}"
        return CellResult(key, NOT_TESTED, f"not testable: no spread: every seed gives the same {claim.metric} "
                                           f"({'; '.join(outcome.no_spread)}), and {step}", comparisons)
    blocked = bool(outcome.missing)
    if blocked:
        count = sum(len(m) for m in outcome.missing.values())
        notes.append(f"{count} planned run(s) gave no {claim.metric} ({_missing_text(claim.by, outcome.missing)}): "
                     "the survivors alone cannot decide the claim"
                     + (f"; {outcome.unscorable}" if outcome.unscorable else
                        "; say how they score in the claims file (failed: a value, chance or exclude)"))
        if verdict in (SUPPORTED, REFUTED):
            notes.append(f"{verdict} on the survivors alone")
            verdict = INCONCLUSIVE
            comparisons = tuple(dataclasses.replace(c, verdict=INCONCLUSIVE) for c in comparisons)
    if outcome.scored:
        how = {"exclude": "excluded", "chance": "scored at chance"}.get(claim.failed) or f"scored {claim.failed:g}"
        notes.append(f"{how} by the claim's rule ({claim.failed_text}): {_missing_text(claim.by, outcome.scored)}")
    return CellResult(key, verdict, "; ".join(notes), comparisons, blocked)


def _overall(claim: Claim, cells: list[CellResult], absent: list[str]) -> tuple[str, str]:
    """A claim over its cells: supported when every cell is (and no `where` value is absent);
    refuted when Holm over every (cell, alpha) refuting test of the cells that can decide rejects;
    else inconclusive."""
    tested = [c for c in cells if c.verdict != NOT_TESTED]
    if not tested:
        return NOT_TESTED, "; ".join(f"{c.label}: {c.reason}" if len(cells) > 1 else c.reason for c in cells)
    raw = [comp.p_against_raw for c in tested if not c.blocked for comp in c.comparisons]
    if all(c.verdict == SUPPORTED for c in tested):
        verdict = SUPPORTED  # intersection-union over cells and alphas
    elif raw and (stats.holm(raw) < claim.alpha_level).any():
        verdict = REFUTED  # Holm over every (cell, alpha) refuting test
    else:
        verdict = INCONCLUSIVE
    notes = [cells[0].reason] if len(cells) == 1 and cells[0].reason else []
    if verdict == SUPPORTED and (len(tested) < len(cells) or absent):
        verdict = INCONCLUSIVE
    if len(tested) < len(cells):
        notes.append("not tested in " + "; ".join(c.label for c in cells if c.verdict == NOT_TESTED))
    if absent:
        notes.append("no runs for " + ", ".join(absent))
    if len(cells) > 1 and any(c.blocked for c in cells):
        notes.append("runs without a value in " + "; ".join(c.label for c in cells if c.blocked))
    if len(cells) > 1 and verdict == INCONCLUSIVE and any(c.verdict == REFUTED for c in tested):
        notes.append("refuted in a cell, but not after Holm over every cell's alphas")
    return verdict, "; ".join(notes)


def evaluate_claim(results: pd.DataFrame, claim: Claim, *, level: float = 0.95, n_boot: int = 10_000,
                   seed: int = 0, interval: str = "t", dunnett: bool = False) -> ClaimResult:
    """Test one claim on a results table (one row per run: alpha, seed, status, metrics), per cell.

    Every run of the table counts as planned: completed runs with a finite value of the metric
    are tested, and the others (diverged, failed, unfinished, or a metric that is infinite or
    missing) are listed; they are scored, or left out, only as the claim's ``failed`` rule
    says, and without a rule the claim is neither supported nor refuted in their cell. Raises
    :class:`ClaimsError` for a metric or ``where`` column the table lacks; alphas a cell lacks,
    or a metric of an evaluation (robustness, analyze) not yet run, give 'not tested'.
    ``interval``: 't' (t, Welch or Fieller intervals) or 'bootstrap' (percentile, only where
    every group has BOOTSTRAP_MIN_SEEDS seeds or more; t elsewhere). ``dunnett``: also give each
    comparison of a claim over several conditions its many-to-one simultaneous interval and p
    (Dunnett's test, the groups taken as independent: :func:`selectivity.analysis.stats.dunnett_intervals`).
    """
    if interval not in ("t", "bootstrap"):
        raise ValueError(f"interval must be 't' or 'bootstrap', got {interval!r}")
    reason = _not_evaluated(results, claim)
    if reason:
        return ClaimResult(claim, NOT_TESTED, reason)
    columns = [claim.metric] + ([claim.against] if claim.is_trend and claim.against != "alpha" else [])
    results = results.assign(**{c: _metric_values(results, claim, c) for c in columns})
    if claim.by != "alpha" and claim.by not in results.columns:
        return ClaimResult(claim, NOT_TESTED, f"the results have no {claim.by} column (runs trained by an older "
                                              "version, or not with this kind of condition)")
    results = _other_knobs_off(results, claim)
    # the compared condition (and, for reg_from, what sets it) must not split cells
    exempt = (claim.by, *SCHEDULE_COLUMNS) if claim.by != "alpha" else ()
    exempt += KNOB_SETTINGS.get(claim.by, ())
    keys = cell_columns(results, exempt=exempt)
    results = assign_cells(results, keys)  # before `where`: a failed run may not record what it filters on
    frame, reason, absent = _apply_where(results, claim)
    if reason:
        return ClaimResult(claim, NOT_TESTED, reason)
    if claim.by != "alpha":  # groups by another config value: it plays alpha's part below (after `where`)
        by = _metric_values(frame, claim, claim.by)
        frame = frame.assign(alpha=by)[by.notna()]
    done = frame[frame["status"] == "completed"] if "status" in frame.columns else frame
    if done.empty:
        return ClaimResult(claim, NOT_TESTED, "no completed run")
    why = f"{claim.metric}_reason"  # an evaluation that left the column empty says why (corruption_acc)
    if done[claim.metric].isna().all() and why in done.columns and done[why].notna().any():
        return ClaimResult(claim, NOT_TESTED, f"no {claim.metric}: {done[why].dropna().iloc[0]}")
    if keys:
        groups = [(tuple(zip(keys, map(str, k if isinstance(k, tuple) else (k,)), strict=True)), g)
                  for k, g in frame.groupby(keys if len(keys) > 1 else keys[0], dropna=False, sort=True)]
    else:
        groups = [((), frame)]
    cells = [_evaluate_cell(claim, key, g, level, interval, n_boot, seed, dunnett) for key, g in groups
             if "status" not in g.columns or (g["status"] == "completed").any() or len(groups) == 1]
    lost = [g for _, g in groups if "status" in g.columns and not (g["status"] == "completed").any()]
    verdict, reason = _overall(claim, cells, absent)
    if lost and len(groups) > 1:  # runs matching no cell of completed runs: say so, never drop them silently
        runs = sum(len(g) for g in lost)
        reason = "; ".join(x for x in (reason, f"{runs} run(s) without a completed run in their cell "
                                               "(different settings, or too little recorded to place them)") if x)
        if verdict == SUPPORTED:
            verdict = INCONCLUSIVE
    return ClaimResult(claim, verdict, reason, tuple(cells))


def evaluate_claims(results: pd.DataFrame, claims: list[Claim], *, level: float = 0.95, n_boot: int = 10_000,
                    seed: int = 0, interval: str = "t", dunnett: bool = False) -> list[ClaimResult]:
    """:func:`evaluate_claim` for each claim, in order."""
    return [evaluate_claim(results, c, level=level, n_boot=n_boot, seed=seed, interval=interval, dunnett=dunnett)
            for c in claims]
