"""Tests of the claims: the YAML schema, its errors, and the verdicts on made-up results."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps

from selectivity.report.claims import (
    INCONCLUSIVE,
    NOT_TESTED,
    REFUTED,
    SUPPORTED,
    ClaimsError,
    ReportError,
    decide,
    default_claims_path,
    evaluate_claim,
    load_claims,
    parse_claims,
)


def results_table(values: dict[float, list[float]], metric: str = "test_acc", seeds=None,
                  status: dict | None = None) -> pd.DataFrame:
    """One completed run per value: {alpha: [value per seed]}; seeds 0.. unless given per alpha."""
    rows = []
    for alpha, vals in values.items():
        for k, v in enumerate(vals):
            seed = seeds[alpha][k] if seeds and alpha in seeds else k
            rows.append({"alpha": alpha, "seed": seed, "status": (status or {}).get((alpha, seed), "completed"),
                         metric: v, "model": "resnet20"})
    return pd.DataFrame(rows)


def claim(**fields):
    base = {"id": "c", "statement": "s", "metric": "test_acc", "group": -1, "test": "greater"}
    return parse_claims({"claims": [{**base, **fields}]}, origin="test.yaml")[0]


# --------------------------------------------------------------------------- schema


def test_default_claims_load_and_are_documented():
    claims = load_claims()
    assert len(claims) >= 6
    assert {c.test for c in claims} >= {"noninferiority", "ratio_at_most", "less", "greater", "equivalence"}
    text = default_claims_path().read_text()
    for word in ("schema", "noninferiority", "ratio_at_most", "margin", "where", "not tested"):
        assert word in text


def test_user_claims_add_to_the_defaults(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"claims": [{"id": "mine", "statement": "x", "metric": "mean_si", "group": "< 0",
                                                "test": "less"}]}))
    ids = [c.id for c in load_claims(path)]
    assert ids[-1] == "mine" and len(ids) == len(load_claims()) + 1
    assert [c.id for c in load_claims(path, defaults=False)] == ["mine"]
    clash = tmp_path / "clash.yaml"
    clash.write_text(yaml.safe_dump([{"id": "alpha-1-halves-si", "statement": "x", "metric": "mean_si",
                                      "group": -1, "test": "less"}]))
    with pytest.raises(ClaimsError, match="'alpha-1-halves-si' is already defined in claims.yaml"):
        load_claims(clash)


@pytest.mark.parametrize("fields,message", [
    ({"test": "bigger"}, "claim 'c': unknown test 'bigger'; known tests: greater, less"),
    ({"test": "noninferiority"}, "claim 'c': test 'noninferiority' needs 'margin'"),
    ({"test": "ratio_at_most", "ratio": -0.5}, "claim 'c': 'ratio' must be a positive number"),
    ({"test": "less", "ratio": 0.5}, "claim 'c': test 'less' takes no 'ratio'"),
    ({"marign": 0.01}, r"claim 'c': unknown field\(s\) \['marign'\]"),
    ({"group": "about 1"}, "claim 'c', group: expected an alpha value"),
    ({"group": {"beta": 1}}, "claim 'c', group: expected a mapping with the single key 'alpha'"),
    ({"baseline": ">= 0"}, "claim 'c': baseline must be one alpha value"),
    ({"alpha_level": 0.7}, r"claim 'c': alpha_level must be a number in \(0, 0.5\)"),
    ({"metric": None}, r"claim 'c': missing required field\(s\) \['metric'\]"),
    ({"id": "has space"}, "id must be letters"),
])
def test_schema_errors_name_the_claim(fields, message):
    with pytest.raises(ClaimsError, match=message):
        claim(**fields)


def test_file_level_errors(tmp_path):
    with pytest.raises(ClaimsError, match="defined twice"):
        parse_claims([{"id": "a", "statement": "s", "metric": "m", "group": 1, "test": "less"}] * 2)
    with pytest.raises(ClaimsError, match="claim #1: expected a mapping"):
        parse_claims(["just text"])
    with pytest.raises(ClaimsError, match="unknown top-level"):
        parse_claims({"claims": [], "claimz": []})
    bad = tmp_path / "bad.yaml"
    bad.write_text("claims: [unclosed")
    with pytest.raises(ClaimsError, match="bad.yaml is not valid YAML"):
        load_claims(bad, defaults=False)
    with pytest.raises(ClaimsError, match="cannot read claims file"):
        load_claims(tmp_path / "missing.yaml", defaults=False)
    assert issubclass(ClaimsError, ReportError) and issubclass(ReportError, ValueError)


def test_metric_and_where_columns_must_exist():
    table = results_table({0.0: [0.9, 0.91], -1.0: [0.9, 0.92]})
    with pytest.raises(ClaimsError, match="claim 'c': metric 'tset_acc' is not a column.*test_acc"):
        evaluate_claim(table, claim(metric="tset_acc"))
    with pytest.raises(ClaimsError, match="claim 'c': 'where' names 'arch'"):
        evaluate_claim(table, claim(where={"arch": "resnet"}))


# --------------------------------------------------------------------------- verdicts


def test_decide():
    assert decide(0.01, 0.99, 0.05) == SUPPORTED
    assert decide(0.99, 0.01, 0.05) == REFUTED
    assert decide(0.3, 0.7, 0.05) == INCONCLUSIVE
    assert decide(float("nan"), float("nan"), 0.05) == INCONCLUSIVE


BASE = [0.900, 0.905, 0.898, 0.902, 0.899]


def test_clearly_supported_noninferiority_is_paired_and_matches_scipy():
    group = [0.901, 0.907, 0.897, 0.904, 0.900]
    table = results_table({0.0: BASE, -1.0: group})
    result = evaluate_claim(table, claim(test="noninferiority", margin=0.01), n_boot=500)
    assert result.verdict == SUPPORTED
    (comp,) = result.comparisons
    assert comp.paired and comp.n_group == comp.n_baseline == 5
    ref = sps.ttest_rel(np.array(group) + 0.01, BASE, alternative="greater").pvalue
    assert comp.p_value == pytest.approx(ref)
    assert comp.estimate == pytest.approx(np.mean(group) - np.mean(BASE))
    assert comp.ci[0] <= comp.estimate <= comp.ci[1]
    assert math.isnan(result.seeds_needed)


def test_clearly_refuted_claim():
    table = results_table({0.0: BASE, 1.0: [0.95, 0.96, 0.955, 0.958, 0.951]})
    result = evaluate_claim(table, claim(group=1, test="less"), n_boot=500)  # claims alpha = 1 lowers accuracy
    assert result.verdict == REFUTED
    assert result.p_value > 0.95


def test_inconclusive_claim_says_how_many_seeds():
    table = results_table({0.0: [0.90, 0.93, 0.87], -1.0: [0.92, 0.89, 0.935]})
    result = evaluate_claim(table, claim(test="greater"), n_boot=500)
    assert result.verdict == INCONCLUSIVE
    assert 3 < result.seeds_needed < 1000 and result.seeds_needed == int(result.seeds_needed)


def test_one_seed_per_group_is_inconclusive_with_seeds_from_the_pooled_spread():
    table = results_table({0.0: [0.90], -1.0: [0.91], 1.0: [0.88, 0.884, 0.879]})
    result = evaluate_claim(table, claim(test="greater"), n_boot=500)
    assert result.verdict == INCONCLUSIVE
    assert "one seed at an alpha" in result.reason
    assert math.isfinite(result.seeds_needed) and result.seeds_needed >= 2
    alone = evaluate_claim(results_table({0.0: [0.90], -1.0: [0.91]}), claim(test="greater"))
    assert alone.verdict == INCONCLUSIVE and math.isnan(alone.seeds_needed)


def test_different_seeds_are_tested_unpaired_with_welch():
    table = results_table({0.0: BASE, -1.0: [0.93, 0.94, 0.935]}, seeds={-1.0: [10, 11, 12]})
    (comp,) = evaluate_claim(table, claim(test="greater"), n_boot=500).comparisons
    assert not comp.paired
    ref = sps.ttest_ind([0.93, 0.94, 0.935], BASE, equal_var=False, alternative="greater").pvalue
    assert comp.p_value == pytest.approx(ref)


def test_ratio_and_equivalence_claims():
    si = results_table({0.0: [0.30, 0.31, 0.29], -1.0: [0.10, 0.11, 0.095]}, metric="mean_si")
    result = evaluate_claim(si, claim(metric="mean_si", test="ratio_at_most", ratio=0.5), n_boot=500)
    assert result.verdict == SUPPORTED
    assert result.comparisons[0].estimate == pytest.approx(np.mean([0.10, 0.11, 0.095]) / 0.30)
    refuted = evaluate_claim(si, claim(metric="mean_si", test="ratio_at_least", ratio=0.8), n_boot=500)
    assert refuted.verdict == REFUTED
    acc = results_table({0.0: BASE, -0.1: [0.901, 0.904, 0.899, 0.903, 0.898]})
    assert evaluate_claim(acc, claim(group=-0.1, test="equivalence", margin=0.01)).verdict == SUPPORTED
    far = results_table({0.0: BASE, -0.1: [0.85, 0.852, 0.848, 0.851, 0.849]})
    assert evaluate_claim(far, claim(group=-0.1, test="equivalence", margin=0.01)).verdict == REFUTED


def test_several_alphas_are_an_intersection_union():
    table = results_table({0.0: BASE, 1.0: [0.85, 0.86, 0.855, 0.851, 0.853], 5.0: [0.70, 0.71, 0.69, 0.7, 0.705],
                           -1.0: [0.95, 0.96, 0.95, 0.951, 0.953]})
    lowers = evaluate_claim(table, claim(group=">= 1", test="less"), n_boot=500)
    assert lowers.verdict == SUPPORTED and [c.alpha for c in lowers.comparisons] == [1.0, 5.0]
    assert lowers.p_value == max(c.p_value for c in lowers.comparisons)
    every = evaluate_claim(table, claim(group=[-1, 1], test="less"), n_boot=500)
    assert every.verdict == REFUTED  # alpha = -1 raises accuracy
    assert [c.verdict for c in every.comparisons] == [REFUTED, SUPPORTED]


def test_missing_alphas_and_filters_leave_the_claim_not_tested():
    table = results_table({0.0: BASE, 1.0: [0.85, 0.86, 0.855]})
    missing = evaluate_claim(table, claim(group=-1))
    assert missing.verdict == NOT_TESTED and "alpha = -1" in missing.reason and "alphas here: 0, 1" in missing.reason
    assert evaluate_claim(table, claim(group="< 0")).verdict == NOT_TESTED
    assert evaluate_claim(table, claim(group=1, baseline=0.5)).verdict == NOT_TESTED
    other = evaluate_claim(table, claim(group=1, where={"model": ["resnet18", "resnet50"]}))
    assert other.verdict == NOT_TESTED and "resnet20" in other.reason


def test_only_completed_runs_count():
    table = results_table({0.0: BASE, -1.0: [0.91, 0.92, 0.1]}, status={(-1.0, 2): "diverged"})
    (comp,) = evaluate_claim(table, claim(test="greater"), n_boot=500).comparisons
    assert comp.n_group == 2 and not comp.paired


def test_a_claim_on_an_evaluation_not_yet_run_is_not_tested_by_the_library():
    from selectivity.report import evaluate_claims, load_claims
    import pandas as pd

    results = pd.DataFrame({"alpha": [-1.0, -1.0, 0.0, 0.0], "seed": [0, 1, 0, 1], "status": "completed", "model": "m",
                            "test_acc": [0.5, 0.51, 0.5, 0.49], "mean_si": [0.1, 0.11, 0.3, 0.31]})
    verdicts = {r.claim.id: r for r in evaluate_claims(results, load_claims(), n_boot=200)}
    robust = verdicts["low-si-more-corruption-robust"]
    assert robust.verdict == "not tested" and "selectivity robustness" in robust.reason
    assert "selectivity analyze" in verdicts["early-dimensionality-inverse-to-si"].reason


def test_a_claim_can_compare_groups_of_another_column_than_alpha():
    """Ranadive's comparison: regularizing from epoch 0 against from a later epoch (reg_from)."""
    from selectivity.report.claims import evaluate_claim, parse_claims

    rows = []
    for seed in range(4):
        noise = 0.002 * seed
        rows.append(dict(alpha=-5.0, reg_from=0.0, seed=seed, status="completed", test_acc=0.60 + noise))
        rows.append(dict(alpha=-5.0, reg_from=2.0, seed=seed, status="completed", test_acc=0.65 + noise * 1.5))
        rows.append(dict(alpha=0.0, reg_from=None, seed=seed, status="completed", test_acc=0.66 + noise))
    results = pd.DataFrame(rows)
    (claim,) = parse_claims([dict(id="early", statement="s", metric="test_acc", by="reg_from", group=0,
                                  baseline="> 0", test="less")])
    result = evaluate_claim(results, claim)
    assert result.verdict == "supported"
    (comparison,) = result.cells[0].comparisons
    assert comparison.label == "reg_from = 0 vs 2" and comparison.paired
    assert comparison.estimate == pytest.approx(-0.05 - 0.001 * 1.5, abs=1e-9)
    # a sweep over alphas alone has one reg_from value: the baseline rule finds nothing to compare
    plain = results[results["reg_from"] != 2.0]
    assert "must match one reg_from value" in evaluate_claim(plain, claim).reason
    assert evaluate_claim(results.drop(columns="reg_from"), claim).verdict == "not tested"
    with pytest.raises(ClaimsError, match="baseline must be one alpha value"):
        parse_claims([dict(id="x", statement="s", metric="test_acc", group=0, baseline="> 0", test="less")])


def test_a_claim_on_an_epsilon_the_robustness_run_lacks_says_which():
    from selectivity.report.claims import evaluate_claim, parse_claims

    results = pd.DataFrame([dict(alpha=a, seed=s, status="completed", test_acc=0.5, **{"adv_acc/pgd/1/255": 0.3})
                            for a in (-1.0, 0.0) for s in range(3)])
    (claim,) = parse_claims([dict(id="pgd", statement="s", metric="adv_acc/pgd/4/255", group=-1, test="less")])
    result = evaluate_claim(results, claim)
    assert result.verdict == "not tested"
    assert "ran without pgd at epsilon 4/255 (it has pgd/1/255)" in result.reason
    assert "--attacks pgd --eps 4/255" in result.reason


def test_schedules_split_cells_for_alpha_claims_but_not_for_the_claim_that_compares_them():
    from selectivity.report.claims import evaluate_claim, parse_claims

    rows = []
    for seed in range(3):
        rows.append(dict(alpha=-5.0, schedule="-5*8", reg_from=0.0, seed=seed, status="completed",
                         test_acc=0.60 + 0.01 * seed, mean_si=0.02))
        rows.append(dict(alpha=-5.0, schedule="0*2 -5*6", reg_from=2.0, seed=seed, status="completed",
                         test_acc=0.63 + 0.012 * seed, mean_si=0.03))  # not the same difference at every seed
        rows.append(dict(alpha=0.0, schedule="0*8", reg_from=None, seed=seed, status="completed",
                         test_acc=0.66 + 0.01 * seed, mean_si=0.25))
    results = pd.DataFrame(rows)
    (by_alpha,) = parse_claims([dict(id="a", statement="s", metric="mean_si", group="< 0", test="less")])
    result = evaluate_claim(results, by_alpha)
    assert len(result.cells) == 3 and result.verdict == "not tested"  # two schedules are not pooled at -5
    (early,) = parse_claims([dict(id="e", statement="s", metric="test_acc", by="reg_from", group=0,
                                  baseline="> 0", test="less")])
    result = evaluate_claim(results, early)
    assert len(result.cells) == 1 and result.verdict == "supported"


# --------------------------------------------------------------------------- one-sample claims and when a claim was written


def test_above_is_a_one_sample_t_test_against_the_value_without_baseline_runs():
    """`above` on alpha 0 alone: the p-value is scipy's one-sample t test of the seeds against the value."""
    gaps = [0.031, 0.012, 0.044, 0.020, 0.027]
    table = results_table({0.0: gaps}, metric="axis_gap")
    c = claim(metric="axis_gap", group=0, test="above", value=0.01)
    result = evaluate_claim(table, c)
    (comp,) = result.comparisons
    expected = sps.ttest_1samp(gaps, 0.01, alternative="greater").pvalue
    assert comp.p_value == pytest.approx(expected, rel=1e-9)
    assert comp.mean_baseline == 0.01 and comp.n_group == 5
    assert comp.estimate == pytest.approx(sum(gaps) / 5 - 0.01)
    assert result.verdict == SUPPORTED and c.hypothesis() == "m(0) > 0.01"
    below = evaluate_claim(table, claim(metric="axis_gap", group=0, test="below", value=0.01))
    assert below.verdict == REFUTED


def test_a_one_sample_claim_errs_at_its_level_under_the_null():
    """Seeded simulation: 5 seeds whose true mean is the value: supported at most 5% of the time."""
    rng = np.random.default_rng(7)
    c = claim(metric="axis_gap", group=0, test="above", value=0.0)
    reps, supported = 400, 0
    for _ in range(reps):
        table = results_table({0.0: list(rng.normal(0.0, 1.0, 5))}, metric="axis_gap")
        supported += evaluate_claim(table, c).verdict == SUPPORTED
    assert supported / reps <= 0.05 + 3 * (0.05 * 0.95 / reps) ** 0.5


@pytest.mark.parametrize("fields,message", [
    ({"test": "above"}, "claim 'c': test 'above' needs 'value', a finite number"),
    ({"test": "greater", "value": 0}, "claim 'c': test 'greater' takes no 'value'"),
    ({"registered": "later"}, "claim 'c': 'registered' must be exploratory .* or confirmation"),
])
def test_value_and_registered_are_checked(fields, message):
    with pytest.raises(ClaimsError, match=message):
        claim(**fields)


def test_registered_says_when_a_claim_was_written():
    assert claim().registered == "exploratory" and not claim().after_exploration
    assert claim(registered="confirmation").after_exploration
    written_after = [c.id for c in load_claims() if c.after_exploration]
    assert "si-down-small-raises-accuracy" in written_after


def test_every_study_claims_file_of_the_docs_follows_the_schema():
    """The claims of docs/claims/ are committed before their sweeps: each must load, alone and beside the
    defaults (no id clash), so that the report can test them when the runs exist."""
    from pathlib import Path

    files = sorted((Path(__file__).resolve().parents[2] / "docs" / "claims").glob("*.yaml"))
    assert len(files) >= 2
    for path in files:
        claims = load_claims(path, defaults=False)
        assert claims and len({c.id for c in claims}) == len(claims)
        load_claims(path)
