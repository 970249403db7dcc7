"""Confirmation on fresh seeds: error rates by seeded simulation, the grid checks, the plan, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from selectivity.report.claims import REFUTED, SUPPORTED, ReportError, evaluate_claim, parse_claims
from selectivity.report.claims.confirm import (AFTER, NO_FINDING, REFUTED_FINDING, SUPPORTED_FINDING,
                                               check_same_grid, confirm_claims, confirmation_table, plan_confirmation)

LEVEL = 0.05


def claim(**fields):
    base = {"id": "c", "statement": "s", "metric": "test_acc", "group": -1, "test": "greater"}
    return parse_claims({"claims": [{**base, **fields}]}, origin="test.yaml")[0]


def table(differences, seeds, alphas=(-1.0,), lr=0.1, model="resnet_demo", rng=None, extra_lambdas=()):
    """A sweep's results: per seed a plain run (alpha 0) and one run per alpha whose test_acc exceeds the
    plain run's by ``differences[alpha][k]`` (one number per seed k)."""
    rng = rng or np.random.default_rng(0)
    rows = []
    for k, seed in enumerate(seeds):
        plain = 0.6 + 0.02 * rng.normal()
        common = {"seed": seed, "status": "completed", "model": model, "dataset": "cifar10", "optim.lr": lr,
                  "train.seed": seed, "n_test": 10_000}
        rows.append({**common, "alpha": 0.0, "kind": "si", "lambda": 0.0, "test_acc": plain})
        for alpha in alphas:
            rows.append({**common, "alpha": alpha, "kind": "si", "lambda": 0.0,
                         "test_acc": plain + differences[alpha][k]})
        for lam in extra_lambdas:
            rows.append({**common, "alpha": 0.0, "kind": "monoloss", "lambda": lam, "test_acc": plain})
    return pd.DataFrame(rows)


def exact(effect: float, sd: float, n: int) -> np.ndarray:
    """n differences whose mean is ``effect`` and whose sample sd is ``sd``, exactly: an exploratory draw
    that observed the truth, so that a plan made from it is a plan made from the true effect."""
    z = np.random.default_rng(1).normal(size=n)
    z = (z - z.mean()) / z.std(ddof=1)
    return effect + sd * z


def test_a_chance_finding_under_no_effect_is_confirmed_at_most_at_the_level():
    """Seeded: an exploratory draw of 5 seeds that 'supports' a null claim by chance; 600 confirmatory
    draws of no effect confirm it at most 5% of the time (plus Monte Carlo error)."""
    c = claim()
    rng = np.random.default_rng(3)
    while True:  # the exploratory seeds' chance finding
        explored = table({-1.0: rng.normal(0, 0.01, 5)}, range(5), rng=rng)
        if evaluate_claim(explored, c).verdict == SUPPORTED:
            break
    reps, confirmed = 600, 0
    for _ in range(reps):
        fresh = table({-1.0: rng.normal(0, 0.01, 5)}, range(5, 10), rng=rng)
        (result,) = confirm_claims(explored, fresh, [c])
        assert result.finding == SUPPORTED_FINDING
        confirmed += bool(result.replicated)
    assert confirmed / reps <= LEVEL + 3 * math.sqrt(LEVEL * (1 - LEVEL) / reps)


def test_a_true_effect_is_confirmed_with_the_planned_power(tmp_path):
    """An exploratory draw that observed the true effect (+0.5 points, sd 1 point over 6 seeds): the plan's
    seeds confirm it in at least 80% of 400 fresh draws (less 3 Monte Carlo errors), and far fewer seeds
    would not: the plan is not padded."""
    c = claim()
    explored = table({-1.0: exact(0.005, 0.01, 6)}, range(6))
    (result,) = [evaluate_claim(explored, c)]
    assert result.verdict != REFUTED
    plan = plan_confirmation(tmp_path, explored, [result] if result.verdict == SUPPORTED else
                             [evaluate_claim(explored, claim(registered="confirmation"))])
    (p,) = plan.claims
    n = int(p.seeds)
    assert 10 <= n <= 60 and plan.seeds == tuple(range(6, 6 + n))
    rng = np.random.default_rng(11)
    reps, confirmed, fewer = 400, 0, 0
    for _ in range(reps):
        fresh = table({-1.0: rng.normal(0.005, 0.01, n)}, range(100, 100 + n), rng=rng)
        confirmed += evaluate_claim(fresh, c).verdict == SUPPORTED
        small = table({-1.0: rng.normal(0.005, 0.01, max(3, n // 3))}, range(100, 100 + max(3, n // 3)), rng=rng)
        fewer += evaluate_claim(small, c).verdict == SUPPORTED
    assert confirmed / reps >= 0.8 - 3 * math.sqrt(0.8 * 0.2 / reps)
    assert fewer / reps < 0.6


def test_a_claim_over_several_alphas_plans_each_with_power_to_the_one_over_k():
    """Three alphas that must all pass: each is planned at 0.8^(1/3) = 0.928 power, so together at 0.8."""
    c = claim(group=[-2, -1, -0.5])
    diffs = {a: exact(0.012, 0.01, 8) for a in (-2.0, -1.0, -0.5)}
    explored = table(diffs, range(8), alphas=(-2.0, -1.0, -0.5))
    result = evaluate_claim(explored, c)
    assert result.verdict == SUPPORTED
    plan = plan_confirmation("/nonexistent", explored, [result])
    (p,) = plan.claims
    assert p.power == pytest.approx(0.8 ** (1 / 3))
    single = plan_confirmation("/nonexistent", explored, [evaluate_claim(explored, claim(group=-1))]).claims[0]
    assert p.seeds > single.seeds


def test_a_refuted_finding_is_tested_where_it_was_found_and_replicates_when_refuted_again():
    c = claim(group=[-2, -1], test="greater")
    explored = table({-2.0: exact(-0.02, 0.005, 6), -1.0: exact(0.001, 0.005, 6)}, range(6), alphas=(-2.0, -1.0))
    result = evaluate_claim(explored, c)
    assert result.verdict == REFUTED
    again = table({-2.0: exact(-0.02, 0.005, 6), -1.0: exact(0.001, 0.005, 6)}, range(6, 12), alphas=(-2.0, -1.0))
    (conf,) = confirm_claims(explored, again, [c], explored=[result])
    assert conf.finding == REFUTED_FINDING and conf.replicated and conf.status == "replicated"
    assert {comp.alpha for comp in conf.confirmatory.comparisons} == {-2.0}  # only where it was refuted
    gone = table({-2.0: exact(0.0, 0.005, 6), -1.0: exact(0.0, 0.005, 6)}, range(6, 12), alphas=(-2.0, -1.0))
    (conf,) = confirm_claims(explored, gone, [c], explored=[result])
    assert conf.replicated is False and conf.status == "not replicated"


def test_a_claim_written_after_exploration_is_decided_by_the_confirmation_alone():
    c = claim(registered="confirmation")
    explored = table({-1.0: exact(0.01, 0.005, 5)}, range(5))
    fresh = table({-1.0: exact(0.0, 0.005, 5)}, range(5, 10))
    (conf,) = confirm_claims(explored, fresh, [c])
    assert conf.finding == AFTER and conf.replicated is False
    inconclusive = table({-1.0: exact(0.0, 0.02, 5)}, range(5))
    (none,) = confirm_claims(inconclusive, fresh, [claim()])
    assert none.finding == NO_FINDING and none.replicated is None and none.status == "no exploratory finding"


@pytest.mark.parametrize("changes, words", [
    ({"seeds": range(4, 9)}, "reuses the exploratory seed(s) 4: a confirmation needs fresh seeds (disjoint from seeds 0-4)"),
    ({"alphas": (-1.0, -2.0)}, "not one grid: alpha -2 only in the confirmatory sweep"),
    ({"lr": 0.05}, "optim.lr is 0.1 in the exploratory sweep but 0.05 in the confirmatory one"),
    ({"model": "vit_demo"}, "model is resnet_demo in the exploratory sweep but vit_demo in the confirmatory one"),
    ({"extra_lambdas": (0.3,)}, "lambda 0.3 only in the confirmatory sweep"),
])
def test_overlapping_seeds_and_another_grid_are_refused_naming_the_difference(changes, words):
    explored = table({-1.0: np.zeros(5)}, range(5))
    alphas = changes.get("alphas", (-1.0,))
    other = table({a: np.zeros(5) for a in alphas}, changes.get("seeds", range(5, 10)), alphas=alphas,
                  lr=changes.get("lr", 0.1), model=changes.get("model", "resnet_demo"),
                  extra_lambdas=changes.get("extra_lambdas", ()))
    with pytest.raises(ReportError, match=rf"{__import__('re').escape(words)}"):
        check_same_grid(explored, other)


def test_the_plan_writes_the_sweeps_own_config_and_a_command_on_fresh_seeds(tmp_path):
    base = {"name": "demo", "data": {"source": "demo", "train_per_class": 500}, "train": {"epochs": 15}}
    (tmp_path / "sweep.json").write_text(json.dumps({"base_config": base, "grid": {
        "alphas": [-1.0, 0.0], "lambdas": [0.3], "seeds": [0, 1, 2, 3, 4, 5]}, "executor": {"name": "local",
                                                                                             "jobs": 2}}))
    explored = table({-1.0: exact(0.005, 0.01, 6)}, range(6))
    plan = plan_confirmation(tmp_path, explored, [evaluate_claim(explored, claim(registered="confirmation"))],
                             out="runs/x-confirmation")
    seeds = ",".join(map(str, plan.seeds))
    assert plan.seeds[0] == 6
    assert plan.command == (f"selectivity sweep {tmp_path / 'confirmation.yaml'} --alphas -1,0 --lambdas 0.3 "
                            f"--seeds {seeds} --out runs/x-confirmation --jobs 2")
    assert yaml.safe_load((tmp_path / "confirmation.yaml").read_text()) == base
    assert any("run: selectivity sweep" in line for line in plan.lines())


def test_claims_csv_gains_the_confirmatory_columns():
    c = claim(group=[-2, -1])
    explored = table({-2.0: exact(0.01, 0.005, 5), -1.0: exact(0.01, 0.005, 5)}, range(5), alphas=(-2.0, -1.0))
    fresh = table({-2.0: exact(0.01, 0.005, 5), -1.0: exact(0.0, 0.005, 5)}, range(5, 10), alphas=(-2.0, -1.0))
    confirmations = confirm_claims(explored, fresh, [c])
    frame = confirmation_table(confirmations)
    assert len(frame) == 2 and set(frame["alpha"]) == {-2.0, -1.0}
    assert (frame["finding"] == SUPPORTED_FINDING).all() and (frame["replicated"] == "no").all()
    row = frame.set_index("alpha").loc[-1.0]
    assert row["confirm_estimate"] == pytest.approx(0.0, abs=1e-12) and row["confirm_n_group"] == 5
    assert row["verdict"] == SUPPORTED and row["confirm_verdict"] != SUPPORTED


def test_dunnett_intervals_cover_all_comparisons_at_once():
    """Seeded: three conditions against one control, no effect, equal variances: Dunnett's 95% intervals
    contain every true difference at once in 95% of draws; three unadjusted 95% t intervals do not."""
    from scipy import stats as sps

    from selectivity.analysis.stats import dunnett_intervals

    rng = np.random.default_rng(5)
    for sizes in ([4, 6, 5], [3, 3, 3]):  # against scipy's own Dunnett test, unequal sizes included
        groups, control = [rng.normal(size=n) for n in sizes], rng.normal(size=4)
        ours = dunnett_intervals(groups, control)
        theirs = sps.dunnett(*groups, control=control, random_state=0)
        ci = theirs.confidence_interval(0.95)
        np.testing.assert_allclose([o[0] for o in ours], ci.low, atol=5e-3)
        np.testing.assert_allclose([o[1] for o in ours], ci.high, atol=5e-3)
        np.testing.assert_allclose([o[2] for o in ours], theirs.pvalue, atol=5e-3)
    for n in (3, 5, 10):
        reps, joint, naive = 1000, 0, 0
        for _ in range(reps):
            groups = [rng.normal(size=n) for _ in range(3)]
            control = rng.normal(size=n)
            out = dunnett_intervals(groups, control, p_values=False)
            joint += all(lo <= 0 <= hi for lo, hi, _ in out)
            t = sps.t.ppf(0.975, 2 * n - 2)  # three unadjusted pooled-t intervals
            naive += all(abs(g.mean() - control.mean()) <= t * math.sqrt((g.var(ddof=1) + control.var(ddof=1)) / n)
                         for g in groups)
        se = math.sqrt(0.05 * 0.95 / reps)
        assert joint / reps >= 0.95 - 3 * se, (n, joint / reps)
        assert naive / reps < joint / reps


def test_report_confirm_through_the_cli(tmp_path, capsys):
    """`selectivity report A --confirm B` on two synthetic sweeps of one grid: the page shows both verdicts,
    claims.csv has the confirmatory columns, and the plan is printed; a sweep that reuses a seed, or another
    grid, exits 2 with one line and writes nothing new."""
    from selectivity.cli import main

    from .sweep_builder import write_sweep

    a = write_sweep(tmp_path / "a", seeds=(0, 1, 2), diverged=False, seed=1)
    b = write_sweep(tmp_path / "b", seeds=(3, 4, 5), diverged=False, seed=2)
    assert main(["report", str(a), "--confirm", str(b), "--dunnett"]) == 0
    out = capsys.readouterr().out
    assert "findings replicated on the confirmatory seeds" in out and "confirmation plan" in out
    page = (a / "report.html").read_text()
    assert "Findings, confirmed on fresh seeds" in page and "confirmatory estimate" in page
    assert "Dunnett (all conditions at once)" in page and "conditions are compared with this one control" in page
    frame = pd.read_csv(a / "claims.csv")
    assert {"finding", "confirm_estimate", "confirm_verdict", "replicated", "planned_seeds"} <= set(frame.columns)
    before = (a / "claims.csv").read_bytes()
    c = write_sweep(tmp_path / "c", seeds=(2, 3, 4), diverged=False, seed=3)
    assert main(["report", str(a), "--confirm", str(c)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "reuses the exploratory seed(s) 2" in err
    d = write_sweep(tmp_path / "d", alphas=(-1.0, 0.0, 1.0), seeds=(3, 4, 5), diverged=False, seed=4)
    assert main(["report", str(a), "--confirm", str(d)]) == 2
    assert "alpha -0.1, alpha 5 only in the exploratory sweep" in capsys.readouterr().err
    assert (a / "claims.csv").read_bytes() == before
