"""Statistics across seeds: t tests against a margin, t and Fieller intervals, Holm, trends, power.

Every test here is about one linear contrast of two groups of per-seed values, ``x`` (the
group, e.g. the runs at alpha = -1) and ``y`` (the baseline, alpha = 0):

    c = mean(x) - ratio * mean(y)

``ratio = 1`` compares differences ("accuracy is not lower by more than 1 point");
``ratio = 0.5`` compares a ratio without dividing ("mean SI at most half the baseline's" is
c < 0). Paired designs (the same seeds in both groups) use the per-seed contrasts
d_i = x_i - ratio * y_i; unpaired designs use Welch's standard error and degrees of freedom.

Seeds lie on the last axis of every array argument, so one call can test many contrasts at
once (the simulations that check coverage and error rates run thousands of replicates as
arrays). The t and non-central t distributions come from ``scipy.special``.

Intervals: :func:`contrast_ci` is the t interval of c (paired: n - 1 df; unpaired:
Welch-Satterthwaite), :func:`fieller_ci` Fieller's interval of mean(x) / mean(y); both have
their nominal coverage at 3 seeds under normal data. :func:`bootstrap_ci` (percentile) is
kept for large n only: with 3 paired seeds it is the min-max range and covers ~75%.

Families: a claim over several alphas is decided by :func:`family_verdict`: supported when
every alpha's test of the claim rejects (intersection-union: level alpha as it stands), refuted
when any alpha's opposite test rejects after Holm's step-down adjustment (:func:`holm`), so
the chance of a false refutation is at most alpha whatever the correlation between alphas.
Each alpha's own verdict is Holm-adjusted on both sides.

Resolution: a metric measured on a finite set (accuracy on n test images moves in steps of
1/n) can show no spread at all over a few seeds. Without its ``resolution`` such a test has no
p-value (NaN: "no spread"), not p = 0. With it, the standard error of the contrast is floored
at half the contrast's step (rounding to the grid can move every seed the same way when runs
differ by less than a step, so the mean is known no better than that) and the contrast is
moved half a step of its mean toward the null (a continuity correction). Seeded simulations
of quantised accuracy in ``tests/analysis/test_stats.py`` keep the one-sided error at the
level where the plain t test gave up to 70%.

Trends: :func:`slope_test` fits a slope within each seed (the networks of one seed share it:
they are not independent) and tests the seeds' slopes; a seed may lack some settings (NaN).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import special

__all__ = [
    "TestResult",
    "dunnett_intervals",
    "mean_ci",
    "mean_difference",
    "cohens_d",
    "hedges_g",
    "hedges_correction",
    "bootstrap_ci",
    "contrast_ci",
    "fieller_ci",
    "effect_size",
    "holm",
    "FamilyVerdict",
    "family_verdict",
    "slope_test",
    "per_seed_slopes",
    "within_seed_r",
    "nonequivalence_test",
    "contrast_test",
    "noninferiority_test",
    "equivalence_test",
    "seeds_needed",
]

_ALTERNATIVES = ("greater", "less", "two-sided")


@dataclass(frozen=True)
class TestResult:
    """One t test of the contrast c = mean(x) - ratio * mean(y) against ``null``.

    estimate: c; se: its standard error; df: degrees of freedom (n - 1 paired, Welch's
    otherwise); statistic: t = (c - null) / se; p_value: for ``alternative``.
    Fields are floats for 1-D input, arrays for batched input.
    """

    __test__ = False  # a result, not a pytest test class

    estimate: float | np.ndarray
    se: float | np.ndarray
    df: float | np.ndarray
    statistic: float | np.ndarray
    p_value: float | np.ndarray
    alternative: str
    null: float
    paired: bool


def _as_array(values, name: str, allow_nan: bool = False) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim == 0:
        raise ValueError(f"{name} must hold one value per seed (an array), got a scalar")
    if not allow_nan and np.isnan(array).any():
        raise ValueError(f"{name} contains NaN: drop the runs without a value before testing")
    if np.isinf(array).any():
        raise ValueError(f"{name} contains inf: a run with an infinite value (a diverged loss) has no value to "
                         "test; drop it or score it")
    return array


def _resolution(resolution) -> tuple[float, float]:
    """(step of x, step of y) from None (0: continuous), one number, or a pair."""
    if resolution is None:
        return 0.0, 0.0
    rx, ry = (resolution, resolution) if np.ndim(resolution) == 0 else resolution
    rx, ry = float(rx), float(ry)
    if not (rx >= 0 and ry >= 0 and np.isfinite(rx) and np.isfinite(ry)):
        raise ValueError(f"resolution must be finite numbers >= 0, got {resolution!r}")
    return rx, ry


def _scalar(value):
    """0-d arrays back to floats, so 1-D inputs give plain numbers."""
    return float(value) if np.ndim(value) == 0 else value


def _var(x: np.ndarray) -> np.ndarray:
    """Sample variance (ddof = 1) on the last axis; NaN with fewer than two seeds, silently.

    A spread within rounding of the values themselves (identical values that float arithmetic
    made differ in the last bits) is no spread: 0.
    """
    n = x.shape[-1]
    if n < 2:
        return np.full(x.shape[:-1], np.nan)
    var = x.var(axis=-1, ddof=1)
    scale = np.abs(x).max(axis=-1) if x.size else 0.0
    return np.where(np.sqrt(var) <= 1e-12 * scale, 0.0, var)


def _t_sf(t, df):
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    return special.stdtr(df, -np.asarray(t, dtype=float))


def _p_value(t, df, alternative: str):
    if alternative == "greater":
        return _t_sf(t, df)
    if alternative == "less":
        return _t_sf(-np.asarray(t), df)
    return np.minimum(1.0, 2.0 * _t_sf(np.abs(t), df))


def mean_ci(x, level: float = 0.95):
    """Student-t interval of a mean over seeds: mean(x) -+ t_{(1+level)/2, n-1} * s / sqrt(n).

    x: (..., n) values, one per seed. Returns (mean, low, high); low and high are NaN with
    fewer than two seeds.

    >>> m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    >>> round(m, 3), round(lo, 3), round(hi, 3)
    (2.0, -0.484, 4.484)
    """
    x = _as_array(x, "x")
    n = x.shape[-1]
    mean = x.mean(axis=-1)
    if n < 2:
        nan = np.full_like(mean, np.nan)
        return _scalar(mean), _scalar(nan), _scalar(nan)
    half = special.stdtrit(n - 1, 0.5 + level / 2) * np.sqrt(_var(x) / n)
    return _scalar(mean), _scalar(mean - half), _scalar(mean + half)


def _dunnett_law(sizes: tuple[int, ...], control: int, seed: int):
    """(the multivariate t of Dunnett's statistics for these group sizes, its df): T_i = (mean_i - mean_c) /
    (s sqrt(1/n_i + 1/n_c)) with the pooled s, whose correlations are (1/n_c) / sqrt(v_i v_j), v = 1/n + 1/n_c."""
    from scipy import stats as sps

    n = np.asarray(sizes, dtype=float)
    v = 1.0 / n + 1.0 / control
    corr = (1.0 / control) / np.sqrt(np.outer(v, v))
    np.fill_diagonal(corr, 1.0)
    df = int(n.sum() + control - (len(sizes) + 1))
    return sps.multivariate_t(shape=corr, df=df, seed=seed), df


@functools.lru_cache(maxsize=256)
def _dunnett_quantile(sizes: tuple[int, ...], control: int, level: float, seed: int) -> float:
    """The two-sided critical value q: P(max_i |T_i| <= q) = level."""
    from scipy import optimize

    law, _ = _dunnett_law(sizes, control, seed)
    k = len(sizes)
    inside = lambda q: law.cdf(np.full(k, q), lower_limit=np.full(k, -q), random_state=seed) - level  # noqa: E731
    return float(optimize.brentq(inside, 1e-3, 1e3, xtol=1e-7))


def dunnett_intervals(samples, control, level: float = 0.95, seed: int = 0,
                      p_values: bool = True) -> list[tuple[float, float, float]]:
    """Many-to-one simultaneous intervals of mean(sample_i) - mean(control), with Dunnett's adjusted p.

    Several conditions compared with one control share its draw; Dunnett's intervals hold for
    all comparisons at once (the chance that any misses its true difference is at most
    1 - ``level``): difference -+ q s sqrt(1/n_i + 1/n_c), with s the standard deviation pooled over
    every group and the control and q the ``level`` quantile of max_i |T_i| under the multivariate
    t of the comparisons (Dunnett 1955). The model is Dunnett's: independent groups with one
    variance (paired seeds are treated as independent, which only widens the intervals when the
    pairing helps). The multivariate t probability is scipy's quasi-Monte Carlo, seeded by
    ``seed`` so that a report gives the same numbers every time; q is computed once per group sizes.

    Returns [(low, high, two-sided adjusted p)] in the order of ``samples`` (p NaN unless ``p_values``).

    >>> out = dunnett_intervals([[1.0, 1.2, 0.9], [2.0, 2.3, 2.1]], [1.0, 1.1, 0.95])
    >>> [round(v, 2) for v in out[1][:2]]
    [0.81, 1.43]
    """
    groups = [np.asarray(x, dtype=float) for x in samples]
    base = np.asarray(control, dtype=float)
    sizes = tuple(len(g) for g in groups)
    if min(sizes + (len(base),)) < 1 or sum(sizes) + len(base) - len(groups) - 1 < 1:
        nan = float("nan")
        return [(nan, nan, nan) for _ in groups]
    law, df = _dunnett_law(sizes, len(base), seed)
    pooled = math.sqrt(sum(float(((g - g.mean()) ** 2).sum()) for g in [*groups, base]) / df)
    q = _dunnett_quantile(sizes, len(base), float(level), seed)
    k = len(groups)
    out = []
    for g in groups:
        difference = float(g.mean() - base.mean())
        se = pooled * math.sqrt(1.0 / len(g) + 1.0 / len(base))
        if se == 0:
            out.append((difference, difference, 0.0 if difference else 1.0))
            continue
        p = float("nan")
        if p_values:
            t = abs(difference) / se
            p = min(1.0, max(0.0, 1.0 - float(law.cdf(np.full(k, t), lower_limit=np.full(k, -t), random_state=seed))))
        out.append((difference - q * se, difference + q * se, p))
    return out


def mean_difference(x, y):
    """Raw effect: mean(x) - mean(y), in the metric's units (the same paired or not)."""
    return _scalar(_as_array(x, "x").mean(axis=-1) - _as_array(y, "y").mean(axis=-1))


def cohens_d(x, y, paired: bool = False):
    """Standardized difference d = (mean(x) - mean(y)) / s.

    Unpaired: s is the pooled standard deviation,
    s^2 = ((nx - 1) sx^2 + (ny - 1) sy^2) / (nx + ny - 2).
    Paired (``paired=True``, same seeds in the same order): d_z = mean(x - y) / sd(x - y).
    NaN when s cannot be estimated (one seed per group); +-inf when s = 0.

    >>> round(cohens_d([2.0, 3.0, 4.0], [1.0, 2.0, 3.0]), 6)
    1.0
    """
    x, y = _as_array(x, "x"), _as_array(y, "y")
    if paired:
        _check_paired(x, y)
        d = x - y
        s = np.sqrt(_var(d))
        diff = d.mean(axis=-1)
    else:
        nx, ny = x.shape[-1], y.shape[-1]
        if nx + ny < 3:
            s = np.full(np.broadcast_shapes(x.shape[:-1], y.shape[:-1]), np.nan)
        else:
            ssx = ((x - x.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
            ssy = ((y - y.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
            s = np.sqrt((ssx + ssy) / (nx + ny - 2))
        diff = x.mean(axis=-1) - y.mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _scalar(diff / s)


def hedges_correction(df):
    """Small-sample bias correction of d: J(df) = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2)).

    Close to 1 - 3 / (4 df - 1); J(4) = 0.7979 (d from 3 + 3 seeds shrinks by a fifth).
    """
    df = np.asarray(df, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_j = special.gammaln(df / 2) - 0.5 * np.log(df / 2) - special.gammaln((df - 1) / 2)
    return _scalar(np.where(df > 1, np.exp(log_j), np.nan))


def hedges_g(x, y, paired: bool = False):
    """Bias-corrected standardized difference g = J(df) * d (see :func:`cohens_d`).

    df = nx + ny - 2 unpaired, n - 1 paired.

    >>> round(hedges_g([2.0, 3.0, 4.0], [1.0, 2.0, 3.0]), 4)
    0.7979
    """
    x, y = _as_array(x, "x"), _as_array(y, "y")
    df = x.shape[-1] - 1 if paired else x.shape[-1] + y.shape[-1] - 2
    return _scalar(hedges_correction(df) * cohens_d(x, y, paired=paired))


def _check_paired(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"a paired test needs the same seeds in both groups, "
                         f"got {x.shape[-1]} and {y.shape[-1]} values")


def _contrast(x: np.ndarray, y: np.ndarray, ratio: float, paired: bool, resolution=None):
    """(estimate, se, df, cc) of c = mean(x) - ratio * mean(y).

    With a ``resolution`` (the steps of x and y), se is floored at half the contrast's step
    max(step_x, |ratio| step_y), and cc is the continuity correction: half a step of the
    contrast's mean (0 without a resolution).
    """
    rx, ry = _resolution(resolution)
    ratio_abs = abs(float(ratio)) if np.ndim(ratio) == 0 else np.abs(ratio)
    if paired:
        _check_paired(x, y)
        d = x - ratio * y
        n = d.shape[-1]
        step = np.maximum(rx, ratio_abs * ry)
        se = np.maximum(np.sqrt(_var(d) / n), step / 2)  # NaN (one seed) stays NaN
        return d.mean(axis=-1), se, np.full(d.shape[:-1], n - 1.0), step / (2 * n)
    nx, ny = x.shape[-1], y.shape[-1]
    a, b = _var(x) / nx, ratio**2 * _var(y) / ny
    se = np.maximum(np.sqrt(a + b), np.maximum(rx, ratio_abs * ry) / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = (a + b) ** 2 / (a**2 / (nx - 1) + b**2 / (ny - 1)) if min(nx, ny) > 1 else np.full(se.shape, np.nan)
    # Both groups without spread: Welch's df is 0/0; the test then has no p (see _t_and_p), or,
    # with a resolution, the floored se and the df of equal spreads.
    df = np.where((a + b) == 0, nx + ny - 2.0, df)
    cc = np.maximum(rx / nx, ratio_abs * ry / ny) / 2
    return x.mean(axis=-1) - ratio * y.mean(axis=-1), se, df, cc


def _t_and_p(distance, se, df, cc, alternative: str):
    """t and p of a test of distance = estimate - null, with the continuity correction cc
    moving the estimate toward the null; no spread (se = 0) gives NaN, never p = 0."""
    distance = np.asarray(distance, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if alternative == "greater":
            t = (distance - cc) / se
        elif alternative == "less":
            t = (distance + cc) / se
        else:
            t = np.maximum(np.abs(distance) - cc, 0.0) / se
    t = np.where(np.asarray(se) > 0, t, np.nan)
    return t, _p_value(t, df, alternative)


def contrast_test(x, y, *, alternative: str, null: float = 0.0, ratio: float = 1.0, paired: bool = False,
                  resolution=None) -> TestResult:
    """t test of c = mean(x) - ratio * mean(y) against ``null``: t = (c - null) / se(c).

    alternative 'greater': H1 c > null (p = P(T_df > t)); 'less': H1 c < null;
    'two-sided': H1 c != null. Paired: se = sd(x - ratio*y) / sqrt(n), df = n - 1 (equals
    ``scipy.stats.ttest_rel``). Unpaired: Welch, se^2 = sx^2/nx + ratio^2 sy^2/ny,
    df = se^4 / ((sx^2/nx)^2/(nx-1) + (ratio^2 sy^2/ny)^2/(ny-1)) (equals ``ttest_ind``
    with ``equal_var=False``). With one seed (paired) or one seed in a group (Welch) the
    spread is unknown and p is NaN; so is it when the values show no spread at all and no
    ``resolution`` is given. ``resolution``: the step of the metric (1 / n_test for
    accuracy), one number or (step of x, step of y): the sd is floored at half the
    contrast's step and the estimate moved half a step of its mean toward the null.

    >>> r = contrast_test([2.0, 3.0, 4.5], [1.0, 2.0, 3.0], alternative="greater", paired=True)
    >>> round(r.statistic, 4), round(r.p_value, 4)
    (7.0, 0.0099)
    """
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    x, y = _as_array(x, "x"), _as_array(y, "y")
    estimate, se, df, cc = _contrast(x, y, ratio, paired, resolution)
    t, p = _t_and_p(estimate - null, se, df, cc, alternative)
    return TestResult(_scalar(estimate), _scalar(se), _scalar(df), _scalar(t), _scalar(p), alternative, float(null),
                      paired)


def noninferiority_test(x, y, margin: float, *, paired: bool = False) -> TestResult:
    """One-sided test that x is not lower than y by ``margin`` or more: H1 mean(x) - mean(y) > -margin.

    A small p supports "no worse than the baseline, up to the margin" (margin > 0, in the
    metric's units: 0.01 is one point of accuracy given as a fraction).
    """
    if not margin > 0:
        raise ValueError(f"margin must be positive, got {margin!r}")
    return contrast_test(x, y, alternative="greater", null=-margin, paired=paired)


def equivalence_test(x, y, margin: float, *, ratio: float = 1.0, paired: bool = False,
                     resolution=None) -> TestResult:
    """TOST: H1 -margin < mean(x) - ratio * mean(y) < margin; p = max(p_lower, p_upper).

    p_lower tests c > -margin, p_upper tests c < +margin; the statistic returned is the t
    of the side with the larger p (the binding one).
    """
    if not margin > 0:
        raise ValueError(f"margin must be positive, got {margin!r}")
    lower = contrast_test(x, y, alternative="greater", null=-margin, ratio=ratio, paired=paired,
                          resolution=resolution)
    upper = contrast_test(x, y, alternative="less", null=margin, ratio=ratio, paired=paired, resolution=resolution)
    p = np.fmax(lower.p_value, upper.p_value)
    p = np.where(np.isnan(lower.p_value) | np.isnan(upper.p_value), np.nan, p)
    t = np.where(np.asarray(lower.p_value) >= np.asarray(upper.p_value), lower.statistic, upper.statistic)
    return TestResult(lower.estimate, lower.se, lower.df, _scalar(t), _scalar(p), "equivalence", float(margin), paired)


def nonequivalence_test(x, y, margin: float, *, ratio: float = 1.0, paired: bool = False,
                        resolution=None) -> TestResult:
    """Test that refutes an equivalence: H1 c >= margin or c <= -margin.

    The two one-sided tests (c > +margin, c < -margin) are each run at half the level:
    p = min(1, 2 min(p_above, p_below)). A refutation is then a 1 - 2 * level/2 two-sided t
    interval lying wholly outside the margin, and a true equivalence (|c| < margin) is refuted
    with probability at most the level (the two rejection regions are disjoint, each at most
    level / 2). The smaller p alone, uncorrected, refuted 8% at level 5% when the margin is
    small against the seed spread.
    """
    if not margin > 0:
        raise ValueError(f"margin must be positive, got {margin!r}")
    above = contrast_test(x, y, alternative="greater", null=margin, ratio=ratio, paired=paired,
                          resolution=resolution)
    below = contrast_test(x, y, alternative="less", null=-margin, ratio=ratio, paired=paired,
                          resolution=resolution)
    p = np.minimum(1.0, 2.0 * np.fmin(above.p_value, below.p_value))
    p = np.where(np.isnan(above.p_value) | np.isnan(below.p_value), np.nan, p)
    t = np.where(np.asarray(above.p_value) <= np.asarray(below.p_value), above.statistic, below.statistic)
    return TestResult(above.estimate, above.se, above.df, _scalar(t), _scalar(p), "non-equivalence", float(margin),
                      paired)


def bootstrap_ci(x, y=None, *, statistic: str = "difference", paired: bool = False, level: float = 0.95,
                 n_boot: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval over seeds of mean(x) - mean(y), mean(x) / mean(y) or mean(x).

    Each of ``n_boot`` resamples draws seeds with replacement: paired, one draw of seed
    indices serves both groups (the pairs stay together); unpaired, each group is drawn on
    its own. The interval is the (1 - level)/2 and (1 + level)/2 quantiles of the resampled
    statistic. With a handful of seeds it is narrower than the t interval (the bootstrap
    cannot see spread the seeds did not show): read it as a description, the t test as the
    decision.

    x, y: 1-D per-seed values. statistic: 'difference', 'ratio' or 'mean' (x alone).
    Deterministic for a given ``seed``.
    """
    if statistic not in ("difference", "ratio", "mean"):
        raise ValueError(f"statistic must be 'difference', 'ratio' or 'mean', got {statistic!r}")
    x = _as_array(x, "x")
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x must be a non-empty 1-D array, got shape {x.shape}")
    rng = np.random.default_rng(seed)
    qs = [(1 - level) / 2, (1 + level) / 2]
    ix = rng.integers(0, x.size, size=(n_boot, x.size))
    mx = x[ix].mean(axis=1)
    if statistic == "mean":
        low, high = np.quantile(mx, qs)
        return float(low), float(high)
    if y is None:
        raise ValueError(f"statistic {statistic!r} needs y")
    y = _as_array(y, "y")
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"y must be a non-empty 1-D array, got shape {y.shape}")
    if paired:
        _check_paired(x, y)
        my = y[ix].mean(axis=1)
    else:
        my = y[rng.integers(0, y.size, size=(n_boot, y.size))].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = mx - my if statistic == "difference" else mx / my
    low, high = np.quantile(values, qs)
    return float(low), float(high)


def _nct_cdf(df, ncp, t):
    """P(T' <= t) of the non-central t; scipy's nctdtr returns NaN in some far tails (df 16,
    ncp 40), where the answer is 0 (t far below ncp) or 1."""
    cdf = special.nctdtr(df, ncp, t)
    return np.where(np.isnan(cdf) & ~np.isnan(np.asarray(ncp, dtype=float)), np.where(ncp > t, 0.0, 1.0), cdf)


def _power(distances: np.ndarray, n: np.ndarray, sd_x: float, sd_y: float, ratio: float, paired: bool,
           alpha_level: float) -> np.ndarray:
    """Power at n seeds (per group) of one-sided level-alpha t tests, all of which must reject.

    Each test has t ~ non-central t(df, ncp = distance / se). Power of all together is
    bounded below by 1 - sum(1 - power_i) (Bonferroni), which is what is returned.
    """
    if paired:
        var = sd_x**2  # sd_x is the sd of the per-seed contrast
        se = np.sqrt(var / n)
        df = n - 1.0
    else:
        a, b = sd_x**2, ratio**2 * sd_y**2
        se = np.sqrt((a + b) / n)
        df = (a + b) ** 2 * (n - 1.0) / (a**2 + b**2)
    critical = special.stdtrit(df, 1 - alpha_level)
    miss = np.zeros_like(se)
    for distance in distances:
        power_i = 1.0 - _nct_cdf(df, distance / se, critical)
        miss = miss + (1.0 - power_i)
    return 1.0 - miss


def seeds_needed(distance, sd_x: float, sd_y: float | None = None, *, paired: bool = True, ratio: float = 1.0,
                 alpha_level: float = 0.05, power: float = 0.8, max_seeds: int = 1000) -> float:
    """Fewest seeds n (per group; pairs when paired) for a decisive one-sided t test.

    The test that would decide is c > null or c < null (or, for an equivalence, both sides
    of the margin); ``distance`` is how far the observed contrast lies from each boundary it
    must clear (a number, or a sequence for TOST). With se(n) = sd / sqrt(n) (paired:
    sd of x - ratio*y; unpaired: sqrt(sd_x^2 + ratio^2 sd_y^2), Welch's df), power(n) =
    P(T'(df, distance/se(n)) > t_{1-alpha, df}) with T' non-central t. Returns the smallest
    n >= 2 with power(n) >= ``power``: an integer-valued float; ``inf`` when no n up to
    ``max_seeds`` suffices (or a distance is not positive: the observed effect points the
    other way, or sits on the boundary); ``nan`` when the spread is unknown.

    >>> seeds_needed(1.0, 1.0)  # paired, effect one sd of the differences
    8.0
    """
    distances = np.atleast_1d(np.asarray(distance, dtype=float))
    sd_y = sd_x if sd_y is None else sd_y
    if np.isnan(distances).any() or np.isnan(sd_x) or (not paired and np.isnan(sd_y)):
        return float("nan")
    if (distances <= 0).any():
        return float("inf")
    spread = sd_x if paired else np.hypot(sd_x, ratio * sd_y)
    if spread == 0:
        return 2.0
    return _first_n(lambda n: _power(distances, n, sd_x, sd_y, ratio, paired, alpha_level) >= power, max_seeds)


def _first_n(enough, max_seeds: int) -> float:
    """The smallest n in [2, max_seeds] with ``enough(n)`` (an array of n -> bools, False then True:
    power grows with n), by bisection; inf when max_seeds is not enough."""
    def at(n: int) -> bool:
        return bool(np.asarray(enough(np.array([float(n)])))[0])

    if max_seeds < 2 or not at(max_seeds):
        return float("inf")
    low, high = 1, max_seeds  # enough(high) holds; enough(low) is taken as not
    while high - low > 1:
        middle = (low + high) // 2
        if at(middle):
            high = middle
        else:
            low = middle
    return float(high)


# --------------------------------------------------------------------------- intervals


def _t_quantile(df, level: float):
    """The two-sided ``level`` critical value t_{(1+level)/2, df} (NaN where df is NaN)."""
    return special.stdtrit(np.asarray(df, dtype=float), 0.5 + level / 2)


def contrast_ci(x, y, *, ratio: float = 1.0, paired: bool = False, level: float = 0.95, resolution=None):
    """t interval of c = mean(x) - ratio * mean(y): c -+ t_{(1+level)/2, df} se(c).

    Paired: se = sd(x - ratio y) / sqrt(n), df = n - 1 (the interval of the mean of the
    per-seed contrasts). Unpaired: Welch's se and Satterthwaite's df (as :func:`contrast_test`).
    Returns (estimate, low, high); low and high are NaN when the spread is unknown (one seed).
    It excludes a value v exactly when the two-sided test of c = v rejects at 1 - level. With a
    ``resolution`` (see :func:`contrast_test`) the sd is floored and the interval widened by
    the continuity correction; with no spread and no resolution it is NaN (not zero-width).
    """
    x, y = _as_array(x, "x"), _as_array(y, "y")
    estimate, se, df, cc = _contrast(x, y, ratio, paired, resolution)
    half = np.where(np.asarray(se) > 0, _t_quantile(df, level) * se + cc, np.nan)
    return _scalar(estimate), _scalar(estimate - half), _scalar(estimate + half)


def fieller_ci(x, y, *, paired: bool = False, level: float = 0.95, resolution=None):
    r"""Fieller's interval of the ratio of means theta = mean(x) / mean(y).

    The set of theta for which the t test of mean(x) - theta mean(y) = 0 does not reject:

    .. math:: (\bar x - \theta \bar y)^2 \le q^2 (v_{xx} - 2 \theta v_{xy} + \theta^2 v_{yy})

    with v the (co)variances of the means (paired: sample covariances / n, q = t_{n-1};
    unpaired: s^2 / n per group, v_xy = 0, q from Welch's df at the estimate). Exact for
    paired normal data. When mean(y) is not distinguishable from 0 (q^2 v_yy >= ybar^2) the
    set is unbounded and (-inf, inf) is returned. Returns (estimate, low, high). With a
    ``resolution`` the variances of the means are floored at (step / 2)^2; with no spread at
    all and no resolution the interval is NaN.
    """
    x, y = _as_array(x, "x"), _as_array(y, "y")
    rx, ry = _resolution(resolution)
    mx, my = x.mean(axis=-1), y.mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = mx / my
        if paired:
            _check_paired(x, y)
            n = x.shape[-1]
            if n < 2:
                nan = np.full(np.shape(mx), np.nan)
                return _scalar(estimate), _scalar(nan), _scalar(nan)
            dx, dy = x - mx[..., None], y - my[..., None]
            vxx, vyy = np.maximum(_var(x) / n, (rx / 2) ** 2), np.maximum(_var(y) / n, (ry / 2) ** 2)
            vxy = (dx * dy).sum(axis=-1) / (n - 1) / n
            df = np.full(np.shape(mx), n - 1.0)
        else:
            vxx = np.maximum(_var(x) / x.shape[-1], (rx / 2) ** 2)
            vyy = np.maximum(_var(y) / y.shape[-1], (ry / 2) ** 2)
            vxy = np.zeros(np.shape(mx))
            df = _contrast(x, y, np.where(np.isfinite(estimate), estimate, 1.0), False, resolution)[2]
        q2 = _t_quantile(df, level) ** 2
        a = my**2 - q2 * vyy
        b = mx * my - q2 * vxy
        c = mx**2 - q2 * vxx
        root = np.sqrt(np.maximum(b**2 - a * c, 0.0))
        low = np.where(a > 0, (b - root) / a, -np.inf)
        high = np.where(a > 0, (b + root) / a, np.inf)
    unknown = np.isnan(q2) | np.isnan(vxx) | np.isnan(vyy) | ((vxx == 0) & (vyy == 0))
    low, high = np.where(unknown, np.nan, low), np.where(unknown, np.nan, high)
    return _scalar(estimate), _scalar(low), _scalar(high)


def effect_size(x, y, paired: bool = False):
    """(value, name): d_z = mean(x - y) / sd(x - y) when paired, Hedges' g (pooled sd) otherwise."""
    if paired:
        return cohens_d(x, y, paired=True), "d_z"
    return hedges_g(x, y), "g"


# --------------------------------------------------------------------------- families of tests


def holm(p):
    """Holm's step-down adjusted p-values over the last axis (NaN counts as 1: it never rejects).

    Sorted ascending, p_(i) becomes max_{j <= i} min(1, (m - j + 1) p_(j)); rejecting where
    the adjusted p < alpha controls the family-wise error at alpha under any dependence.

    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p, dtype=float)
    filled = np.where(np.isnan(p), 1.0, p)
    m = p.shape[-1]
    order = np.argsort(filled, axis=-1, kind="stable")
    ranked = np.take_along_axis(filled, order, axis=-1) * (m - np.arange(m))
    ranked = np.minimum(1.0, np.maximum.accumulate(ranked, axis=-1))
    out = np.empty_like(ranked)
    np.put_along_axis(out, order, ranked, axis=-1)
    return np.where(np.isnan(p), np.nan, out)


SUPPORTED_CODE, INCONCLUSIVE_CODE, REFUTED_CODE = 1, 0, -1


class FamilyVerdict(NamedTuple):
    """What :func:`family_verdict` decides: per-alpha codes, the claim's code, and the
    Holm-adjusted p-values of both sides (over the last axis)."""

    per_alpha: np.ndarray
    claim: float | np.ndarray
    p_against: np.ndarray
    p_support: np.ndarray


def family_verdict(p_support, p_against, alpha_level: float) -> FamilyVerdict:
    """Verdicts of a claim over the alphas on the last axis, and of the claim as a whole.

    The claim: supported (1) when every alpha's p_support < alpha_level (an intersection-union
    test, level alpha_level without correction), refuted (-1) when some alpha's Holm-adjusted
    p_against < alpha_level (family-wise error <= alpha_level), else 0. Each alpha on its own:
    supported when its **Holm-adjusted** p_support < alpha_level, refuted when its Holm-adjusted
    p_against is, so that under no effect at all a "supported" badge shows at some alpha with
    probability at most alpha_level (uncorrected badges did in 16% of claims at 4 alphas). A
    supported claim holds at every alpha at once even where no alpha alone passes Holm.
    NaN p-values (too few seeds) decide nothing.
    """
    p_support, p_against = np.asarray(p_support, dtype=float), np.asarray(p_against, dtype=float)
    adjusted, adjusted_support = holm(p_against), holm(p_support)
    support = p_support < alpha_level  # NaN compares False
    against = adjusted < alpha_level
    per_alpha = np.where(adjusted_support < alpha_level, SUPPORTED_CODE,
                         np.where(against, REFUTED_CODE, INCONCLUSIVE_CODE))
    claim = np.where(support.all(axis=-1), SUPPORTED_CODE,
                     np.where(against.any(axis=-1), REFUTED_CODE, INCONCLUSIVE_CODE))
    return FamilyVerdict(per_alpha, _scalar(claim), adjusted, adjusted_support)


# --------------------------------------------------------------------------- trends


def _seed_fits(t: np.ndarray, v: np.ndarray):
    """Per seed over its finite points: (slope, Sxx, sum of |weights|, points); NaN slope with
    fewer than two distinct settings. t, v: (..., seeds, k), NaN where a run is missing."""
    ok = np.isfinite(t) & np.isfinite(v)
    count = ok.sum(axis=-1)
    t0, v0 = np.where(ok, t, 0.0), np.where(ok, v, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tm = t0.sum(axis=-1, keepdims=True) / count[..., None]
        vm = v0.sum(axis=-1, keepdims=True) / count[..., None]
        tc = np.where(ok, t0 - tm, 0.0)
        sxx = (tc**2).sum(axis=-1)
        scale = np.maximum(np.abs(t0).max(axis=-1), 1e-300)
        fit = (count >= 2) & (sxx > (1e-12 * scale) ** 2)
        slope = np.where(fit, (tc * np.where(ok, v0 - vm, 0.0)).sum(axis=-1) / sxx, np.nan)
        weights = np.where(fit, np.abs(tc).sum(axis=-1) / sxx, np.nan)
    return slope, sxx, weights, count


def per_seed_slopes(t, v):
    """Least-squares slope of v on t within each seed: (..., seeds, k) -> (..., seeds).

    NaN in t or v marks a missing run: each seed's slope is fitted on its own points (NaN
    where a seed has fewer than two distinct settings).
    """
    t, v = _as_array(t, "t", allow_nan=True), _as_array(v, "v", allow_nan=True)
    t, v = np.broadcast_arrays(t, v)
    return _scalar(_seed_fits(t, v)[0])


def within_seed_r(t, v):
    """Pearson's r of v and t after removing each seed's means (pooled over seeds): the
    scatter of every network with seed effects taken out. t, v: (..., seeds, k), NaN = missing."""
    t, v = _as_array(t, "t", allow_nan=True), _as_array(v, "v", allow_nan=True)
    t, v = np.broadcast_arrays(t, v)
    ok = np.isfinite(t) & np.isfinite(v)
    count = np.maximum(ok.sum(axis=-1, keepdims=True), 1)
    t0, v0 = np.where(ok, t, 0.0), np.where(ok, v, 0.0)
    tc = np.where(ok, t0 - t0.sum(axis=-1, keepdims=True) / count, 0.0)
    vc = np.where(ok, v0 - v0.sum(axis=-1, keepdims=True) / count, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _scalar((tc * vc).sum(axis=(-2, -1)) / np.sqrt((tc**2).sum(axis=(-2, -1)) * (vc**2).sum(axis=(-2, -1))))


@dataclass(frozen=True)
class SlopeResult:
    """A slope with its t interval and one-sided p-values (see :func:`slope_test`)."""

    estimate: float | np.ndarray
    se: float | np.ndarray
    df: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    p_greater: float | np.ndarray
    p_less: float | np.ndarray
    r: float | np.ndarray  # Pearson correlation of the pooled points (ols) or d_z of the slopes (per_seed)
    method: str
    n: float | np.ndarray = float("nan")  # seeds with a slope (per_seed) or points (ols)


def slope_test(t, v, *, per_seed: bool, level: float = 0.95, resolution: float | None = None) -> SlopeResult:
    """Test of a linear trend of v on t: H1 slope > 0 (p_greater) or slope < 0 (p_less).

    per_seed=True: t, v are (..., seeds, k), one row per seed, NaN where a run is missing.
    Each seed's slope is fitted on its own points (seed effects on the level of v, and on
    t, cancel), and the test is the one-sample t test of the seeds' slopes (df = seeds with a
    slope - 1): the networks of one seed are one cluster, never independent points, and a
    seed that lacks a setting still gives its slope (the model handles the missing cell, no
    pooling). It holds its level under random seed intercepts and slopes; fewer than two
    seeds with a slope give NaN. per_seed=False: t, v are (..., N) independent points (one
    network per seed); ordinary least squares, se = sqrt(RSS / (N - 2) / Sxx), df = N - 2.

    resolution: the step of v (per_seed only); rounding v to its grid moves a seed's slope by
    up to step/2 * sum|w| (w: the least-squares weights), the slope's step; se is floored at
    half of it and the estimate moved by half a step of the mean toward 0 (as in
    :func:`contrast_test`). No spread at all without it gives NaN p-values.
    """
    allow = per_seed
    t, v = _as_array(t, "t", allow_nan=allow), _as_array(v, "v", allow_nan=allow)
    cc = 0.0
    if per_seed:
        t, v = np.broadcast_arrays(t, v)
        slopes, _, weights, _ = _seed_fits(t, v)
        has = np.isfinite(slopes)
        n = has.sum(axis=-1).astype(float)
        s0 = np.where(has, slopes, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            estimate = np.where(n >= 1, s0.sum(axis=-1) / n, np.nan)
            ss = np.where(has, (s0 - estimate[..., None]) ** 2, 0.0).sum(axis=-1)
            sd = np.where(n >= 2, np.sqrt(ss / (n - 1)), np.nan)
            se = sd / np.sqrt(n)
            r = estimate / sd
            if resolution:
                # rounding v to its grid moves a seed's slope by at most step/2 * sum|w|
                step = float(resolution) / 2 * np.where(has, weights, 0.0).sum(axis=-1) / n
                se = np.maximum(se, step / 2)
                cc = step / (2 * n)
        df = np.where(n >= 2, n - 1.0, np.nan)
        method = "per_seed"
    else:
        n = float(t.shape[-1])
        tc, vc = t - t.mean(axis=-1, keepdims=True), v - v.mean(axis=-1, keepdims=True)
        sxx, syy, sxy = (tc**2).sum(axis=-1), (vc**2).sum(axis=-1), (tc * vc).sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            estimate = sxy / sxx
            rss = np.maximum(syy - estimate * sxy, 0.0)
            se = np.sqrt(rss / (n - 2) / sxx) if n > 2 else np.full(np.shape(estimate), np.nan)
            r = sxy / np.sqrt(sxx * syy)
        df = np.full(np.shape(estimate), n - 2.0)
        method = "ols"
    _, p_greater = _t_and_p(estimate, se, df, cc, "greater")
    _, p_less = _t_and_p(estimate, se, df, cc, "less")
    half = np.where(np.asarray(se) > 0, _t_quantile(df, level) * se + cc, np.nan)
    return SlopeResult(_scalar(estimate), _scalar(se), _scalar(df), _scalar(estimate - half),
                       _scalar(estimate + half), _scalar(p_greater), _scalar(p_less), _scalar(r), method,
                       _scalar(np.asarray(n, dtype=float)))


def slope_seeds_needed(distance: float, sd_unit: float, *, df_of_n, alpha_level: float = 0.05,
                       power: float = 0.8, max_seeds: int = 1000) -> float:
    """Fewest seeds n with one-sided power >= ``power`` when se(n) = sd_unit / sqrt(n).

    ``df_of_n`` maps n (an array) to the test's degrees of freedom. Like :func:`seeds_needed`:
    inf when the distance is not positive or no n up to max_seeds suffices, NaN when unknown.
    """
    if not np.isfinite(sd_unit) or np.isnan(distance):
        return float("nan")
    if distance <= 0:
        return float("inf")
    if sd_unit == 0:
        return 2.0

    def enough(n):
        df = np.asarray(df_of_n(n), dtype=float)
        ok = df >= 1
        crit = special.stdtrit(np.where(ok, df, 1.0), 1 - alpha_level)
        achieved = 1.0 - _nct_cdf(np.where(ok, df, 1.0), distance * np.sqrt(n) / sd_unit, crit)
        return ok & (achieved >= power)

    return _first_n(enough, max_seeds)
