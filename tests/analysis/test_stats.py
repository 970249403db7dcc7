"""Tests of selectivity.analysis.stats against scipy.stats and small hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from selectivity.analysis import stats

RNG = np.random.default_rng(12345)
X = RNG.normal(0.90, 0.01, size=5)
Y = RNG.normal(0.89, 0.02, size=5)
Z = RNG.normal(0.88, 0.015, size=7)  # another group size: unpaired only


# --------------------------------------------------------------------------- t tests


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_paired_test_equals_scipy_ttest_rel(alternative):
    ours = stats.contrast_test(X, Y, alternative=alternative, paired=True)
    ref = sps.ttest_rel(X, Y, alternative=alternative)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert ours.df == 4
    assert ours.estimate == pytest.approx(X.mean() - Y.mean())


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_welch_test_equals_scipy_ttest_ind(alternative):
    ours = stats.contrast_test(X, Z, alternative=alternative, paired=False)
    ref = sps.ttest_ind(X, Z, equal_var=False, alternative=alternative)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert ours.df == pytest.approx(ref.df, rel=1e-12)


def test_null_and_ratio_shift_the_contrast():
    """c = mean(x) - r mean(y) tested against a null equals scipy on the shifted/scaled samples."""
    ours = stats.contrast_test(X, Y, alternative="greater", null=-0.01, paired=True)
    assert ours.p_value == pytest.approx(sps.ttest_1samp(X - Y, -0.01, alternative="greater").pvalue, rel=1e-10)
    ours = stats.contrast_test(X, Y, alternative="less", ratio=0.5, paired=True)
    assert ours.p_value == pytest.approx(sps.ttest_1samp(X - 0.5 * Y, 0.0, alternative="less").pvalue, rel=1e-10)
    ours = stats.contrast_test(X, Z, alternative="less", ratio=0.5, null=0.3, paired=False)
    ref = sps.ttest_ind(X - 0.3, 0.5 * Z, equal_var=False, alternative="less")
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-10)


def test_noninferiority_and_tost_by_hand_with_scipy():
    m = 0.01
    ours = stats.noninferiority_test(X, Y, m, paired=True)
    assert ours.p_value == pytest.approx(sps.ttest_rel(X + m, Y, alternative="greater").pvalue, rel=1e-10)
    tost = stats.equivalence_test(X, Z, 0.02, paired=False)
    lower = sps.ttest_ind(X + 0.02, Z, equal_var=False, alternative="greater").pvalue
    upper = sps.ttest_ind(X - 0.02, Z, equal_var=False, alternative="less").pvalue
    assert tost.p_value == pytest.approx(max(lower, upper), rel=1e-10)


def test_tests_are_vectorized_over_leading_axes():
    x = RNG.normal(size=(4, 3, 6))
    y = RNG.normal(size=(4, 3, 6))
    batch = stats.contrast_test(x, y, alternative="greater", paired=True)
    assert batch.p_value.shape == (4, 3)
    ref = sps.ttest_rel(x, y, axis=-1, alternative="greater").pvalue
    np.testing.assert_allclose(batch.p_value, ref, rtol=1e-10)
    welch = stats.contrast_test(x, y[..., :4], alternative="less")
    np.testing.assert_allclose(welch.p_value, sps.ttest_ind(x, y[..., :4], axis=-1, equal_var=False,
                                                            alternative="less").pvalue, rtol=1e-10)


def test_hand_worked_paired_example():
    # d = (1, 1, 1.5): mean 7/6, sd = sqrt(1/12), se = 1/6, t = 7, df = 2
    r = stats.contrast_test([2.0, 3.0, 4.5], [1.0, 2.0, 3.0], alternative="greater", paired=True)
    assert r.statistic == pytest.approx(7.0)
    assert r.p_value == pytest.approx(1 - sps.t.cdf(7.0, 2))


def test_too_few_seeds_give_nan_not_errors():
    r = stats.contrast_test([0.9], [0.8], alternative="greater", paired=True)
    assert math.isnan(r.p_value)
    r = stats.contrast_test([0.9], [0.8, 0.82], alternative="greater")
    assert math.isnan(r.p_value)
    assert math.isnan(stats.hedges_g([0.9], [0.8]))


def test_zero_spread_decides_by_the_sign():
    r = stats.contrast_test([1.0, 1.0], [0.0, 0.0], alternative="greater")
    assert r.p_value == 0.0
    r = stats.contrast_test([1.0, 1.0], [0.0, 0.0], alternative="less")
    assert r.p_value == 1.0


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="x contains NaN"):
        stats.contrast_test([1.0, float("nan")], [1.0, 2.0], alternative="less")
    with pytest.raises(ValueError, match="same seeds"):
        stats.contrast_test([1.0, 2.0], [1.0, 2.0, 3.0], alternative="less", paired=True)
    with pytest.raises(ValueError, match="alternative"):
        stats.contrast_test([1.0, 2.0], [1.0, 2.0], alternative="bigger")
    with pytest.raises(ValueError, match="scalar"):
        stats.mean_ci(1.0)
    with pytest.raises(ValueError, match="margin must be positive"):
        stats.noninferiority_test(X, Y, 0.0)


# --------------------------------------------------------------------------- effect sizes, intervals


def test_effect_sizes_by_hand():
    x, y = [2.0, 3.0, 4.0], [1.0, 2.0, 3.0]
    assert stats.mean_difference(x, y) == pytest.approx(1.0)
    assert stats.cohens_d(x, y) == pytest.approx(1.0)  # pooled sd = 1
    j4 = math.gamma(2) / (math.sqrt(2) * math.gamma(1.5))
    assert stats.hedges_g(x, y) == pytest.approx(j4)
    # paired d_z: d = (1, 1.5, 0.5): mean 1, sd 0.5
    assert stats.cohens_d([2.0, 3.5, 3.5], [1.0, 2.0, 3.0], paired=True) == pytest.approx(2.0)


def test_hedges_correction_matches_its_approximation():
    df = np.arange(10, 200)
    np.testing.assert_allclose(stats.hedges_correction(df), 1 - 3 / (4 * df - 1), atol=5e-4)


def test_mean_ci_equals_scipy_t_interval():
    mean, low, high = stats.mean_ci(X, 0.95)
    ref = sps.t.interval(0.95, len(X) - 1, loc=X.mean(), scale=sps.sem(X))
    assert (low, high) == pytest.approx(ref, rel=1e-12)
    assert mean == pytest.approx(X.mean())
    assert all(math.isnan(v) for v in stats.mean_ci([0.5])[1:])


def test_bootstrap_is_seeded_and_keeps_pairs_together():
    a = stats.bootstrap_ci(X, Y, paired=False, seed=3, n_boot=2000)
    assert a == stats.bootstrap_ci(X, Y, paired=False, seed=3, n_boot=2000)
    assert a != stats.bootstrap_ci(X, Y, paired=False, seed=4, n_boot=2000)
    # x = y + 0.1 exactly: every paired resample has difference 0.1, the unpaired ones do not.
    low, high = stats.bootstrap_ci(Y + 0.1, Y, paired=True, n_boot=500)
    assert low == pytest.approx(0.1) and high == pytest.approx(0.1)
    low, high = stats.bootstrap_ci(Y + 0.1, Y, paired=False, n_boot=500)
    assert low < 0.1 < high
    low, high = stats.bootstrap_ci(2 * Y, Y, statistic="ratio", paired=True, n_boot=500)
    assert low == pytest.approx(2.0) and high == pytest.approx(2.0)


def test_bootstrap_interval_covers_the_true_difference():
    """Coverage sanity: 95% percentile intervals of a mean difference (n = 30 + 30) cover
    the truth in about 95% of 300 simulated sweeps (fixed seed, so the count is fixed)."""
    rng = np.random.default_rng(2024)
    covered = 0
    for k in range(300):
        x, y = rng.normal(1.0, 1.0, 30), rng.normal(0.5, 2.0, 30)
        low, high = stats.bootstrap_ci(x, y, n_boot=1000, seed=k)
        covered += low <= 0.5 <= high
    assert 0.90 <= covered / 300 <= 0.98


# --------------------------------------------------------------------------- seeds needed


def _power_scipy(distance, sd, n, alpha_level=0.05):
    df = n - 1
    return sps.nct.sf(sps.t.ppf(1 - alpha_level, df), df, distance / (sd / math.sqrt(n)))


@pytest.mark.parametrize("distance,sd", [(1.0, 1.0), (0.5, 1.0), (0.004, 0.006)])
def test_seeds_needed_is_the_first_n_with_enough_power(distance, sd):
    n = int(stats.seeds_needed(distance, sd, paired=True))
    assert _power_scipy(distance, sd, n) >= 0.8
    assert n == 2 or _power_scipy(distance, sd, n - 1) < 0.8


def test_seeds_needed_against_simulation():
    """At the returned n, a simulated paired t test rejects about 80% of the time (or more)."""
    n = int(stats.seeds_needed(0.5, 1.0, paired=True))
    rng = np.random.default_rng(7)
    d = rng.normal(0.5, 1.0, size=(4000, n))
    rejections = stats.contrast_test(d, np.zeros_like(d), alternative="greater", paired=True).p_value < 0.05
    assert 0.77 <= rejections.mean() <= 0.86


def test_seeds_needed_unpaired_and_edge_cases():
    unpaired = stats.seeds_needed(1.0, 1.0, 1.0, paired=False)
    assert unpaired > stats.seeds_needed(1.0, 1.0, paired=True)  # the variance of a difference of two groups
    assert stats.seeds_needed(0.0, 1.0) == math.inf
    assert stats.seeds_needed(-0.3, 1.0) == math.inf
    assert stats.seeds_needed(1e-6, 1.0, max_seeds=50) == math.inf
    assert math.isnan(stats.seeds_needed(1.0, float("nan")))
    assert stats.seeds_needed(1.0, 0.0) == 2
    # TOST: both boundaries must be cleared, so at least as many seeds as the harder side alone
    assert stats.seeds_needed([0.5, 2.0], 1.0) >= stats.seeds_needed(0.5, 1.0)


# --------------------------------------------------------------------------- intervals (issue 9)


def test_contrast_ci_equals_scipy_t_intervals():
    _, lo, hi = stats.contrast_ci(X, Y, paired=True)
    ref = sps.ttest_rel(X, Y).confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((ref.low, ref.high), rel=1e-10)
    _, lo, hi = stats.contrast_ci(X, Z, paired=False, level=0.9)
    ref = sps.ttest_ind(X, Z, equal_var=False).confidence_interval(0.9)
    assert (lo, hi) == pytest.approx((ref.low, ref.high), rel=1e-10)


@pytest.mark.parametrize("paired", [True, False])
def test_fieller_interval_is_the_set_the_t_test_does_not_reject(paired):
    """At each end of Fieller's interval the two-sided t test of mean(x) - theta mean(y) = 0 has p = 0.05."""
    y = Y if paired else Z
    estimate, lo, hi = stats.fieller_ci(X, y, paired=paired)
    assert estimate == pytest.approx(X.mean() / y.mean()) and lo < estimate < hi
    for theta in (lo, hi):
        p = stats.contrast_test(X, y, alternative="two-sided", ratio=theta, paired=paired).p_value
        if paired:
            assert p == pytest.approx(0.05, abs=1e-9)
        else:  # Welch's df taken at the estimate, not at each theta
            assert p == pytest.approx(0.05, abs=2e-3)
    # A baseline whose mean is not distinguishable from 0: the set is unbounded.
    assert stats.fieller_ci([1.0, 2.0, 1.5], [0.1, -0.1, 0.05], paired=True)[1:] == (-math.inf, math.inf)


def _normal_groups(rng, reps, n, paired, mx, my, sd_seed=0.02, sdx=0.01, sdy=0.015):
    seed_effect = rng.normal(0, sd_seed, (reps, n)) if paired else 0.0
    return mx + seed_effect + rng.normal(0, sdx, (reps, n)), my + seed_effect + rng.normal(0, sdy, (reps, n))


@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize("paired", [True, False])
def test_intervals_cover_at_their_nominal_level(n, paired):
    """Seeded simulation (20000 normal replicates each): 95% intervals cover the true difference
    and the true ratio in 0.95 +- 0.02 of cases at 3, 5 and 10 seeds; the percentile bootstrap
    of 3 paired seeds (the min-max range) does not."""
    rng = np.random.default_rng(1000 * n + paired)
    reps = 20_000
    x, y = _normal_groups(rng, reps, n, paired, 0.905, 0.900)
    _, lo, hi = stats.contrast_ci(x, y, paired=paired)
    assert abs(np.mean((lo < 0.005) & (0.005 < hi)) - 0.95) <= 0.02
    x, y = _normal_groups(rng, reps, n, paired, 0.12, 0.30, sd_seed=0.01, sdx=0.01, sdy=0.02)
    _, lo, hi = stats.fieller_ci(x, y, paired=paired)
    assert abs(np.mean((lo < 0.4) & (0.4 < hi)) - 0.95) <= 0.02


def test_percentile_bootstrap_of_three_seeds_undercovers():
    rng = np.random.default_rng(3)
    x, y = _normal_groups(rng, 400, 3, True, 0.905, 0.900)
    covered = [lo < 0.005 < hi for lo, hi in (stats.bootstrap_ci(a, b, paired=True, n_boot=400, seed=i)
                                               for i, (a, b) in enumerate(zip(x, y)))]
    assert np.mean(covered) < 0.85  # why the report uses t intervals


def test_effect_size_is_d_z_when_paired_and_hedges_g_otherwise():
    d = X - Y
    assert stats.effect_size(X, Y, paired=True) == (pytest.approx(d.mean() / d.std(ddof=1)), "d_z")
    assert stats.effect_size(X, Z) == (pytest.approx(stats.hedges_g(X, Z)), "g")


# --------------------------------------------------------------------------- multiplicity


def test_holm_by_hand_and_nan():
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.holm([[0.2, 0.01], [0.5, 0.6]]), [[0.2, 0.02], [1.0, 1.0]])
    out = stats.holm([0.01, np.nan])
    assert out[0] == pytest.approx(0.02) and np.isnan(out[1])


def test_no_effect_with_3_paired_seeds_and_4_alphas_keeps_both_error_rates():
    """Seeded simulation: every alpha's true contrast sits on the claim's boundary (no effect).

    The claim 'every alpha raises the metric' is supported (all 4 one-sided tests reject) and
    refuted (some opposite test rejects after Holm) each in at most 5% of 20000 sweeps, up to
    Monte-Carlo error (3 se = 0.0046). The uncorrected 'any alpha' rule refutes ~17%.
    """
    rng = np.random.default_rng(2024)
    reps, seeds, alphas = 20_000, 3, 4
    seed_effect = rng.normal(0, 0.01, (reps, 1, seeds))  # shared by every alpha of a seed: paired
    runs = 0.9 + seed_effect + rng.normal(0, 0.005, (reps, alphas + 1, seeds))
    x, y = runs[:, 1:, :], runs[:, :1, :]
    y = np.broadcast_to(y, x.shape)
    support = stats.contrast_test(x, y, alternative="greater", paired=True).p_value
    against = stats.contrast_test(x, y, alternative="less", paired=True).p_value
    _, verdict, _ = stats.family_verdict(support, against, 0.05)
    mc = 3 * math.sqrt(0.05 * 0.95 / reps)
    assert np.mean(verdict == stats.REFUTED_CODE) <= 0.05 + mc
    assert np.mean(verdict == stats.SUPPORTED_CODE) <= 0.05 + mc
    assert np.mean((against < 0.05).any(axis=-1)) > 0.12  # what the uncorrected rule did


# --------------------------------------------------------------------------- trends


def test_slope_tests_equal_scipy():
    rng = np.random.default_rng(7)
    alphas = np.array([-1.0, -0.5, 0.0, 0.5])
    v = 0.5 - 0.02 * alphas + rng.normal(0, 0.01, (4, 4))  # 4 seeds x 4 alphas
    t = np.broadcast_to(alphas, v.shape)
    slopes = np.array([sps.linregress(alphas, row).slope for row in v])
    ours = stats.slope_test(t, v, per_seed=True)
    ref = sps.ttest_1samp(slopes, 0.0, alternative="less")
    assert ours.estimate == pytest.approx(slopes.mean()) and ours.p_less == pytest.approx(ref.pvalue, rel=1e-10)
    ci = sps.ttest_1samp(slopes, 0.0).confidence_interval(0.95)
    assert (ours.low, ours.high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    pooled = stats.slope_test(t.ravel(), v.ravel(), per_seed=False)
    lr = sps.linregress(t.ravel(), v.ravel())
    assert pooled.estimate == pytest.approx(lr.slope) and pooled.se == pytest.approx(lr.stderr)
    assert pooled.r == pytest.approx(lr.rvalue) and pooled.p_less == pytest.approx(lr.pvalue / 2, rel=1e-8)


def test_slope_test_keeps_its_level_under_no_trend():
    """Seeded simulation: no trend, 3 seeds x 4 alphas with seed effects; one-sided rejections ~5%."""
    rng = np.random.default_rng(11)
    alphas = np.array([-2.0, -1.0, -0.5, 0.0])
    v = rng.normal(0, 0.02, (20_000, 3, 1)) + rng.normal(0, 0.01, (20_000, 3, 4))
    result = stats.slope_test(np.broadcast_to(alphas, v.shape), v, per_seed=True)
    assert abs(np.mean(result.p_less < 0.05) - 0.05) <= 0.0046
    assert abs(np.mean((result.low < 0) & (0 < result.high)) - 0.95) <= 0.01


def test_slope_seeds_needed_matches_paired_seeds_needed():
    assert stats.slope_seeds_needed(0.5, 1.0, df_of_n=lambda n: n - 1) == stats.seeds_needed(0.5, 1.0)
    assert stats.slope_seeds_needed(-0.5, 1.0, df_of_n=lambda n: n - 1) == math.inf
