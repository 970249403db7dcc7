"""Verdicts per cell, Holm on the refuting side, trend and association claims, claims.csv (issue 9)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from selectivity.analysis import stats
from selectivity.report.claims import (
    CLAIMS_CSV_COLUMNS,
    INCONCLUSIVE,
    NOT_TESTED,
    REFUTED,
    SUPPORTED,
    ClaimsError,
    cell_columns,
    claims_table,
    evaluate_claim,
    parse_claims,
)


def claim(**fields):
    base = {"id": "c", "statement": "s", "metric": "test_acc", "group": -1, "test": "greater"}
    return parse_claims({"claims": [{**base, **fields}]}, origin="test.yaml")[0]


def table(cells: dict, metric: str = "test_acc", **extra) -> pd.DataFrame:
    """{(model, dataset): {alpha: [value per seed]}} -> one completed run per value."""
    rows = []
    for (model, dataset), values in cells.items():
        for alpha, vals in values.items():
            for seed, v in enumerate(vals):
                rows.append({"alpha": alpha, "seed": seed, "status": "completed", "model": model,
                             "dataset": dataset, metric: v, "epochs": 30, "device": f"cuda:{seed}", **extra})
    return pd.DataFrame(rows)


BASE = [0.600, 0.610, 0.590, 0.605, 0.595]
NOISE = [0.001, -0.002, 0.0015, -0.001, 0.0005]


def two_models():
    """resnet18 +2 points at alpha = -1, resnet50 -1 point (the issue's example)."""
    return table({("resnet18", "tinyimagenet"): {0.0: BASE, -1.0: [b + 0.02 + e for b, e in zip(BASE, NOISE)]},
                  ("resnet50", "tinyimagenet"): {0.0: BASE, -1.0: [b - 0.01 + e for b, e in zip(BASE, NOISE)]}})


def test_two_models_are_two_cells_and_the_claim_over_both_is_not_supported():
    c = claim(test="greater", where={"model": ["resnet18", "resnet50"]})
    result = evaluate_claim(two_models(), c)
    verdicts = {dict(cell.cell)["model"]: cell.verdict for cell in result.cells}
    assert verdicts == {"resnet18": SUPPORTED, "resnet50": REFUTED}
    assert result.verdict != SUPPORTED and result.verdict == REFUTED
    r18 = result.cells[0].comparisons[0]
    assert r18.estimate == pytest.approx(0.02 + np.mean(NOISE))  # not averaged with resnet50's runs
    only18 = evaluate_claim(two_models(), claim(test="greater", where={"model": "resnet18"}))
    assert only18.verdict == SUPPORTED and len(only18.cells) == 1


def test_a_listed_model_without_runs_keeps_the_claim_from_being_supported():
    runs = two_models()
    result = evaluate_claim(runs[runs["model"] == "resnet18"], claim(where={"model": ["resnet18", "resnet50"]}))
    assert result.cells[0].verdict == SUPPORTED and result.verdict == INCONCLUSIVE
    assert "model=resnet50" in result.reason


def test_cells_split_by_differing_config_columns_not_by_environment():
    runs = two_models()
    assert cell_columns(runs) == ["model", "dataset"]  # device differs, epochs does not
    runs.loc[runs["model"] == "resnet50", "epochs"] = 60
    assert cell_columns(runs) == ["model", "dataset", "epochs"]
    runs.loc[runs["model"] == "resnet50", "model"] = "resnet18"  # same model, two training lengths
    result = evaluate_claim(runs, claim())
    assert [dict(cell.cell)["epochs"] for cell in result.cells] == ["30", "60"]
    assert [cell.verdict for cell in result.cells] == [SUPPORTED, REFUTED]


def test_refuting_side_is_holm_adjusted_over_the_alphas():
    """One of four alphas against the claim at raw p ~ 0.02: refuted alone, not after Holm."""
    base = np.array([0.5, 0.52, 0.48])
    low = base + np.array([-0.02, -0.01, -0.015])  # paired differences mean -0.015, sd 0.005: p ~ 0.02
    flat = np.array([0.003, -0.002, -0.001])  # mean 0: no evidence either way
    others = {a: list(base + np.roll(flat, k)) for k, a in enumerate((1.0, 2.0, 3.0))}
    runs = table({("m", "d"): {0.0: list(base), 4.0: list(low), **others}})
    raw = stats.contrast_test(low, base, alternative="less", paired=True).p_value
    assert 0.0125 < raw < 0.05
    alone = evaluate_claim(runs, claim(group=4, test="greater"))
    assert alone.verdict == REFUTED
    family = evaluate_claim(runs, claim(group=">= 1", test="greater"))
    assert family.verdict != REFUTED
    comp = next(c for c in family.comparisons if c.alpha == 4.0)
    assert comp.p_against_raw == pytest.approx(raw) and comp.p_against == pytest.approx(min(1, 4 * raw))


def test_intervals_effect_sizes_and_seeds_follow_the_design():
    runs = table({("m", "d"): {0.0: [0.30, 0.31, 0.29], -1.0: [0.10, 0.115, 0.095]}}, metric="mean_si")
    (comp,) = evaluate_claim(runs, claim(metric="mean_si", test="ratio_at_most", ratio=0.5)).comparisons
    est, lo, hi = stats.fieller_ci([0.10, 0.115, 0.095], [0.30, 0.31, 0.29], paired=True)
    assert comp.scale == "ratio" and comp.estimate == pytest.approx(est) and comp.ci == pytest.approx((lo, hi))
    assert comp.effect_name == "ratio" and comp.effect_size == pytest.approx(est)
    acc = table({("m", "d"): {0.0: [0.90, 0.93, 0.87], -1.0: [0.92, 0.94, 0.885]}})
    (comp,) = evaluate_claim(acc, claim()).comparisons
    d = np.array([0.02, 0.01, 0.015])
    ref = sps.ttest_rel([0.92, 0.94, 0.885], [0.90, 0.93, 0.87]).confidence_interval(0.95)
    assert comp.ci == pytest.approx((ref.low, ref.high)) and comp.interval == "paired t"
    assert comp.effect_name == "d_z" and comp.effect_size == pytest.approx(d.mean() / d.std(ddof=1))


def test_seeds_to_support_and_to_refute_are_separate():
    runs = table({("m", "d"): {0.0: [0.90, 0.93, 0.87], -1.0: [0.905, 0.945, 0.868], -2.0: [0.95, 0.96, 0.93],
                               -3.0: [0.88, 0.915, 0.86]}})
    result = evaluate_claim(runs, claim(group="< 0"))
    cell = result.cells[0]
    by_alpha = {c.alpha: c for c in cell.comparisons}
    assert by_alpha[-1.0].seeds_to_support < math.inf and by_alpha[-1.0].seeds_to_refute == math.inf
    assert by_alpha[-3.0].seeds_to_support == math.inf and by_alpha[-3.0].seeds_to_refute < math.inf
    assert cell.seeds_to_support == max(c.seeds_to_support for c in cell.comparisons) == math.inf
    assert cell.seeds_to_refute == min(c.seeds_to_refute for c in cell.comparisons) == by_alpha[-3.0].seeds_to_refute
    # Refuting is judged at Holm's first step: level / 3 alphas.
    sd = float(np.std(np.array([0.88, 0.915, 0.86]) - [0.90, 0.93, 0.87], ddof=1))
    gap = -float(np.mean(np.array([0.88, 0.915, 0.86]) - [0.90, 0.93, 0.87]))
    assert by_alpha[-3.0].seeds_to_refute == stats.seeds_needed(gap, sd, alpha_level=0.05 / 3)


def trend_runs(slope=-0.05, seeds=4, noise=0.004, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(seeds):
        offset = rng.normal(0, 0.02)
        for alpha, si in ((-1.0, 0.1), (-0.5, 0.2), (0.0, 0.3), (1.0, 0.45)):
            si_run = si + rng.normal(0, 0.01)
            rows.append({"alpha": alpha, "seed": s, "status": "completed", "model": "m", "dataset": "d",
                         "mean_si": si_run, "corruption_acc": 0.6 + offset + slope * si_run / 0.35
                         + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def test_trend_claim_is_the_t_test_of_per_seed_slopes():
    runs = trend_runs()
    c = claim(metric="corruption_acc", test="trend", direction="decreasing", against="mean_si", group="all")
    result = evaluate_claim(runs, c)
    (comp,) = result.comparisons
    slopes = [sps.linregress(g["mean_si"], g["corruption_acc"]).slope for _, g in runs.groupby("seed")]
    ref = sps.ttest_1samp(slopes, 0.0, alternative="less")
    assert comp.scale == "slope" and comp.paired and comp.n_group == 4
    assert comp.estimate == pytest.approx(np.mean(slopes)) and comp.p_value == pytest.approx(ref.pvalue)
    assert result.verdict == SUPPORTED
    assert evaluate_claim(runs, claim(metric="corruption_acc", test="trend", direction="increasing",
                                      against="mean_si", group="all")).verdict == REFUTED
    on_alpha = evaluate_claim(runs, claim(metric="corruption_acc", test="trend", direction="decreasing",
                                          group="<= 0"))
    assert math.isnan(on_alpha.comparisons[0].alpha)
    assert "-1, -0.5, 0" in on_alpha.comparisons[0].label


def test_association_claim_is_the_seeds_slopes_over_every_network():
    """Networks of one seed are one cluster: the test is the t test of the seeds' slopes over every
    network (not OLS over 16 networks as if independent); the effect size is the within-seed r."""
    runs = trend_runs(slope=-0.02, noise=0.01, seed=1)
    c = claim(metric="corruption_acc", test="association", direction="decreasing", group="all")
    (comp,) = evaluate_claim(runs, c).comparisons
    slopes = [sps.linregress(g["mean_si"], g["corruption_acc"]).slope for _, g in runs.groupby("seed")]
    assert comp.n_group == 4 and comp.paired and comp.effect_name == "r (within seeds)"
    assert comp.estimate == pytest.approx(np.mean(slopes))
    assert comp.p_value == pytest.approx(sps.ttest_1samp(slopes, 0.0, alternative="less").pvalue, rel=1e-8)
    centred = runs.assign(x=runs["mean_si"] - runs.groupby("seed")["mean_si"].transform("mean"),
                          y=runs["corruption_acc"] - runs.groupby("seed")["corruption_acc"].transform("mean"))
    assert comp.effect_size == pytest.approx(np.corrcoef(centred["x"], centred["y"])[0, 1])
    assert "16 networks" in comp.label and "4 seeds" in comp.label


def test_networks_of_one_seed_each_are_independent_and_get_ols():
    runs = trend_runs(slope=-0.02, noise=0.01, seed=1)
    runs["seed"] = np.arange(len(runs))  # every network its own seed: no cluster has two
    c = claim(metric="corruption_acc", test="association", direction="decreasing", group="all")
    (comp,) = evaluate_claim(runs, c).comparisons
    lr = sps.linregress(runs["mean_si"], runs["corruption_acc"])
    assert comp.n_group == 16 and not comp.paired and comp.effect_name == "r"
    assert comp.estimate == pytest.approx(lr.slope) and comp.effect_size == pytest.approx(lr.rvalue)
    assert comp.p_value == pytest.approx(lr.pvalue / 2 if lr.slope < 0 else 1 - lr.pvalue / 2, rel=1e-8)


def test_trend_schema_errors():
    with pytest.raises(ClaimsError, match="direction"):
        claim(test="trend")
    with pytest.raises(ClaimsError, match="takes no 'direction'"):
        claim(test="greater", direction="increasing")
    with pytest.raises(ClaimsError, match="against"):
        claim(test="association", direction="increasing", against="test_acc")


def test_claims_table_has_the_issue_columns_one_row_per_claim_cell_alpha():
    c = claim(group=[-1], where={"model": ["resnet18", "resnet50"]})
    results = [evaluate_claim(two_models(), c), evaluate_claim(two_models(), claim(id="x", group=-7))]
    frame = claims_table(results)
    required = ["claim", "model", "dataset", "alpha", "n_group", "n_baseline", "paired", "estimate", "ci_low",
                "ci_high", "p_support", "p_against", "alpha_verdict", "verdict", "seeds_to_support", "seeds_to_refute"]
    assert set(required) <= set(frame.columns) and list(frame.columns) == CLAIMS_CSV_COLUMNS
    assert len(frame) == 4  # two cells of claim c (one alpha each), two not-tested cells of claim x
    assert list(frame["verdict"]) == [SUPPORTED, REFUTED, NOT_TESTED, NOT_TESTED]
    assert list(frame["model"]) == ["resnet18", "resnet50"] * 2
    assert list(frame["claim_verdict"][:2]) == [REFUTED, REFUTED]
    assert frame.loc[0, "estimate"] == pytest.approx(0.02 + np.mean(NOISE))
    assert frame.loc[0, "ci_low"] < frame.loc[0, "estimate"] < frame.loc[0, "ci_high"]


def test_an_empty_evaluation_column_gives_its_reason():
    runs = two_models().assign(corruption_acc=np.nan, corruption_acc_reason="robustness.csv has 4 of the 75 ...")
    result = evaluate_claim(runs, claim(metric="corruption_acc"))
    assert result.verdict == NOT_TESTED and "4 of the 75" in result.reason


def test_claims_path_agrees_with_the_vectorized_family_verdict():
    """A few hundred no-effect sweeps through evaluate_claim give the verdicts family_verdict gives."""
    rng = np.random.default_rng(5)
    for _ in range(40):
        runs = 0.9 + rng.normal(0, 0.01, (1, 3)) + rng.normal(0, 0.005, (5, 3))
        frame = table({("m", "d"): {float(a): list(runs[i]) for i, a in enumerate([0, 1, 2, 3, 4])}})
        result = evaluate_claim(frame, claim(group=">= 1"))
        x, y = runs[1:], np.broadcast_to(runs[:1], (4, 3))
        support = stats.contrast_test(x, y, alternative="greater", paired=True).p_value
        against = stats.contrast_test(x, y, alternative="less", paired=True).p_value
        per_alpha, code, _, _ = stats.family_verdict(support, against, 0.05)
        expected = {1: SUPPORTED, 0: INCONCLUSIVE, -1: REFUTED}
        assert result.verdict == expected[int(code)]
        assert [c.verdict for c in result.comparisons] == [expected[int(v)] for v in per_alpha]


def test_metric_figure_draws_one_panel_per_cell(tmp_path):
    from PIL import Image

    from selectivity.report.figures import plot_metric_vs_alpha

    runs = two_models()
    one = Image.open(plot_metric_vs_alpha(runs[runs["model"] == "resnet18"], "test_acc", tmp_path / "a.png",
                                          by=["model", "dataset"]))
    two = Image.open(plot_metric_vs_alpha(runs, "test_acc", tmp_path / "b.png", by=["model", "dataset"]))
    assert two.width > 1.8 * one.width and two.height == pytest.approx(one.height, rel=0.1)
