"""The report's "Removed or moved?" section: probe accuracy and axis gap per layer against alpha and lambda."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from selectivity.report import build_report, figures

from .sweep_builder import LAYERS, write_run

#: (kind, knob value) -> axis gap of the last layer: lowering SI shrinks it, raising SI or lambda widens it.
GAP = {("si", -1.0): 0.01, ("si", 0.0): 0.05, ("si", 1.0): 0.09, ("monoloss", 0.3): 0.12}


def _two_knob_sweep(root, population: bool = True):
    rng = np.random.default_rng(3)
    for (kind, value), gap in GAP.items():
        for seed in range(3):
            settings = {"regularizer.kind": kind,
                        "regularizer.lambda" if kind == "monoloss" else "regularizer.alpha": value}
            run = write_run(root, value if kind == "si" else 0.0, seed, acc=0.9, si=0.3, settings=settings,
                            name=f"{kind}{value:+g}_seed{seed}", rng=rng)
            if population:
                pd.DataFrame([{"layer": layer, "probe_acc": 0.6 + 0.1 * i, "probe_loss": 1.0,
                               "axis_gap": gap * (i + 1) / 3 + rng.normal(0, 0.002)}
                              for i, layer in enumerate(LAYERS)]).to_csv(run / "population.csv", index=False)
    return root


def test_the_report_draws_probe_accuracy_and_axis_gap_against_both_knobs(tmp_path, monkeypatch):
    drawn = []
    panel = figures._metric_panel

    def recording(ax, done, metric, scale, level, bounds=None, knob="alpha"):
        drawn.append((knob, metric, scale, done.groupby("alpha")[metric].mean().round(6).to_dict()))
        return panel(ax, done, metric, scale, level, bounds, knob)

    monkeypatch.setattr(figures, "_metric_panel", recording)
    outputs = build_report(_two_knob_sweep(tmp_path), default_claims=False, n_boot=200)
    assert {"population_vs_alpha", "population_vs_lambda"} <= set(outputs.figures)
    page = outputs.page.read_text()
    assert "Removed or moved?" in page and "population_vs_lambda.png" in page
    population = [d for d in drawn if d[1].startswith(("probe_acc/", "axis_gap/"))]
    assert {(k, m) for k, m, _, _ in population} == {(k, f"{m}/{layer}") for k in ("alpha", "lambda")
                                                      for m in ("probe_acc", "axis_gap") for layer in LAYERS}
    gaps = {k: values for k, m, _, values in population if m == "axis_gap/layer3.0"}
    # against alpha: the SI runs and plain training; against lambda: the MonoLoss runs and plain training
    assert gaps["alpha"] == pytest.approx({-1.0: 0.01, 0.0: 0.05, 1.0: 0.09}, abs=0.005)
    assert gaps["lambda"] == pytest.approx({0.0: 0.05, 0.3: 0.12}, abs=0.005)
    accuracy = next(d for d in population if d[0] == "alpha" and d[1] == "probe_acc/layer1.0")
    assert accuracy[2] == 100.0 and list(accuracy[3].values()) == pytest.approx([0.6] * 3)  # drawn in percent


def test_no_population_columns_no_section(tmp_path):
    outputs = build_report(_two_knob_sweep(tmp_path, population=False), default_claims=False, n_boot=200)
    assert not any(name.startswith("population_vs") for name in outputs.figures)
    assert "Removed or moved?" not in outputs.page.read_text()
