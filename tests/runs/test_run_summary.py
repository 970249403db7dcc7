"""run_summary's corruption_acc: the mean over the full declared set (15 corruptions x 5
severities), or empty with the reason: never a mean of whatever rows a subset run left."""

from __future__ import annotations

import math

import pandas as pd

from selectivity.analysis.corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS
from selectivity.runs import run_summary

ROBUSTNESS_CSV = "robustness.csv"


def _write(run, rows):
    run.mkdir(exist_ok=True)
    pd.DataFrame(rows, columns=["kind", "name", "level", "accuracy", "n"]).to_csv(run / ROBUSTNESS_CSV, index=False)
    return run


def _full(n=100):
    # accuracy = 0.5 + 0.01 * corruption index - 0.05 * severity: mean 0.5 + 0.07 - 0.15 = 0.42
    return [("clean", "clean", 0.0, 0.9, n)] + [
        ("corruption", c, float(s), 0.5 + 0.01 * i - 0.05 * s, n)
        for i, c in enumerate(CORRUPTIONS) for s in range(1, 6)]


def test_full_declared_set_gives_the_mean(tmp_path):
    rows = _full() + [("corruption", e, 3.0, 0.0, 100) for e in EXTRA_CORRUPTIONS]  # extras never count
    out = run_summary(_write(tmp_path / "run", rows))
    assert math.isclose(out["corruption_acc"], 0.5 + 0.07 - 0.15)
    assert math.isclose(out["corruption_acc/s2"], 0.5 + 0.07 - 0.10)
    assert "corruption_acc_reason" not in out


def test_a_subset_gives_no_mean_and_says_why(tmp_path):
    rows = [r for r in _full() if not (r[1] == "fog" and r[2] == 5.0)]
    out = run_summary(_write(tmp_path / "run", rows))
    assert math.isnan(out["corruption_acc"]) and "74 of the 75" in out["corruption_acc_reason"]
    assert math.isnan(out["corruption_acc/s5"]) and math.isclose(out["corruption_acc/s1"], 0.5 + 0.07 - 0.05)


def test_rows_of_different_image_counts_are_not_mixed(tmp_path):
    rows = _full()
    rows[5] = (*rows[5][:4], 50)  # one row from an evaluation on another number of images
    out = run_summary(_write(tmp_path / "run", rows))
    assert math.isnan(out["corruption_acc"]) and "n = 50, 100" in out["corruption_acc_reason"]
