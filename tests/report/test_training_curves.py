"""training_curves.png: one line per schedule, never the average of two schedules of one alpha."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from selectivity.report import figures
from selectivity.report.html import load_curves


@pytest.fixture
def drawn(monkeypatch):
    """The (label, x, y) of every line of each panel of the next figure saved."""
    panels = []
    real = figures._save

    def keep(fig, path):
        panels.extend([[(line.get_label(), list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()]
                       for ax in fig.axes if ax.get_lines()])
        return real(fig, path)

    monkeypatch.setattr(figures, "_save", keep)
    return panels


def _sweep(root):
    """Two schedules of alpha -5 (two seeds each) and a plain alpha 0, written as runs write them."""
    rows, batch_si = [], {"a": [0.30, 0.25, 0.20], "b": [0.10, 0.05, 0.02], "c": [0.40, 0.41, 0.42]}
    runs = [("a", -5.0, "-5*3"), ("b", -5.0, "0*1 -5*2"), ("c", 0.0, None)]
    for name, alpha, schedule in runs:
        for seed in (0, 1):
            run = root / f"{name}{seed}"
            run.mkdir()
            lines = [{"epoch": e, "train_loss": 1.0, "batch_si": batch_si[name][e] + 0.01 * seed, "alpha": alpha,
                      "test_acc": 0.5} for e in range(3)]
            (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
            rows.append(dict(run=run.name, alpha=alpha, seed=seed, schedule=schedule, status="completed"))
    return pd.DataFrame(rows)


def test_two_schedules_of_one_alpha_are_two_lines(tmp_path, drawn):
    results = _sweep(tmp_path)
    curves = load_curves(tmp_path, results)
    assert sorted(curves["condition"].unique()) == ["alpha 0", "schedule -5*3", "schedule 0*1 -5*2"]
    figures.plot_training_curves(curves, tmp_path / "curves.png")
    batch_si = drawn[2]  # panels: train loss, test accuracy, batch SI
    lines = {label: y for label, _, y in batch_si}
    assert set(lines) == {"alpha 0", "schedule -5*3", "schedule 0*1 -5*2"}
    np.testing.assert_allclose(lines["schedule -5*3"], [0.305, 0.255, 0.205])  # mean over its 2 seeds
    np.testing.assert_allclose(lines["schedule 0*1 -5*2"], [0.105, 0.055, 0.025])
    np.testing.assert_allclose(lines["alpha 0"], [0.405, 0.415, 0.425])


def test_without_schedules_one_line_per_alpha(tmp_path, drawn):
    results = _sweep(tmp_path)
    results["schedule"] = None
    curves = load_curves(tmp_path, results).drop(columns="condition")  # a frame from before conditions
    figures.plot_training_curves(curves, tmp_path / "curves.png")
    lines = {label: y for label, _, y in drawn[2]}
    assert set(lines) == {"-5", "0"}
    np.testing.assert_allclose(lines["-5"], [0.205, 0.155, 0.115])  # both runs of alpha -5, both seeds
