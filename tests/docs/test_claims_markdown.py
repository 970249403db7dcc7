"""tools/claims_markdown.py: the Markdown table docs/results.md shows, from a claims.csv written here by hand."""

import math
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from claims_markdown import markdown  # noqa: E402


def _row(claim, metric, estimate, low, high, p, verdict, finding, **confirm):
    row = {"claim": claim, "comparison": "alpha = -1 vs 0", "metric": metric, "scale": "difference",
           "estimate": estimate, "ci_low": low, "ci_high": high, "p_support": p, "alpha_verdict": verdict,
           "finding": finding, "alpha": -1.0}
    keys = ("confirm_n_group", "confirm_estimate", "confirm_ci_low", "confirm_ci_high", "confirm_p_support",
            "confirm_alpha_verdict", "replicated")
    row.update({k: confirm.get(k, math.nan) for k in keys})
    return row


def test_exploratory_and_confirmatory_columns_as_read():
    frame = pd.DataFrame([
        _row("acc-up", "test_acc", 0.0058, 0.0009, 0.0108, 0.013, "supported", "written after exploration",
             confirm_n_group=18, confirm_estimate=0.0096, confirm_ci_low=0.0055, confirm_ci_high=0.0136,
             confirm_p_support=2e-5, confirm_alpha_verdict="supported", replicated="yes"),
        _row("si-down", "mean_si", -0.2146, -0.2228, -0.2064, 0.03, "supported", "supported",
             confirm_n_group=10, confirm_estimate=-0.21, confirm_ci_low=-0.22, confirm_ci_high=-0.20,
             confirm_p_support=0.2, confirm_alpha_verdict="inconclusive", replicated="no"),
        _row("part", "test_acc", 0.01, 0.0, 0.02, 0.5, "inconclusive", "no finding"),
    ])
    lines = markdown(frame).splitlines()
    assert lines[0].count("|") == 11 and "confirmatory estimate" in lines[0]
    # accuracy in points, the exploratory verdict of a claim written after exploration is not a test
    assert lines[2] == ("| `acc-up` | alpha = -1 vs 0 | +0.58 pts [+0.09 pts, +1.08 pts] | 0.013 | no test | 18 | "
                        "+0.96 pts [+0.55 pts, +1.36 pts] | < 1e-4 | supported | written after exploration: yes |")
    assert lines[3] == ("| `si-down` | alpha = -1 vs 0 | -0.2146 [-0.2228, -0.2064] | 0.03 | supported | 10 | "
                        "-0.2100 [-0.2200, -0.2000] | 0.2 | inconclusive | supported: no |")
    assert lines[4].endswith("| 0.5 | inconclusive | — | not re-tested | — | — | |")
    # without a confirmation the table has the exploratory columns only; --claims picks and orders
    only = markdown(frame.drop(columns=[c for c in frame.columns if c.startswith("confirm_")]), ["si-down"])
    assert only.splitlines()[0].count("|") == 6 and len(only.splitlines()) == 3 and "`si-down`" in only
