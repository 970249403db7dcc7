"""run_summary's corruption_acc: the mean over the full declared set (15 corruptions x 5
severities), or empty with the reason: never a mean of whatever rows a subset run left."""

from __future__ import annotations

import math

import pandas as pd
import pytest

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
    """Another image set's rows are kept apart: the summary reads the largest set alone, so a row that
    only another set has leaves the largest set's declared set incomplete, never filled from the other."""
    rows = _full()
    rows[5] = (*rows[5][:4], 50)  # one row from an evaluation on another number of images
    out = run_summary(_write(tmp_path / "run", rows))
    assert math.isnan(out["corruption_acc"]) and "74 of the 75" in out["corruption_acc_reason"]
    assert out["robustness_n"] == 100
    both = _full() + [(*r[:3], 0.2, 50) for r in _full()]  # a full second set on 50 images: the 100 are read
    out = run_summary(_write(tmp_path / "both", both))
    assert math.isclose(out["corruption_acc"], 0.5 + 0.07 - 0.15) and out["robustness_n"] == 100


# --------------------------------------------------------------------------- training settings (issue 20)


def _config(**sections):
    from selectivity.config import Config, config_to_dict

    config = config_to_dict(Config())
    for section, values in sections.items():
        config[section].update(values)
    return config


def test_run_row_has_every_training_setting_of_config_yaml(tmp_path):
    import json

    import yaml

    from selectivity.runs.summary import run_row

    run = tmp_path / "run"
    run.mkdir()
    config = _config(optim={"weight_decay": 5e-4, "name": "adamw"}, model={"name": "vgg16", "kwargs": {"width": 2}},
                     lr_schedule={"milestones": [0.3, 0.6]})
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "final.json").write_text(json.dumps({"status": "diverged", "alpha": -5.0, "seed": 1, "model": "vgg16"}))
    row = run_row(run)
    assert row["optim.weight_decay"] == 5e-4 and row["optim.name"] == "adamw" and row["model.kwargs.width"] == 2
    assert row["lr_schedule.milestones"] == "[0.3, 0.6]" and row["train.batch_size"] == 128
    assert row["data.test_limit"] is None and row["config_source"] == "config.yaml"
    assert "name" not in row and row["model"] == "vgg16"  # final.json's own columns win
    assert sum(k.count(".") > 0 for k in row) == sum(1 for _ in _flat(config)) - 1  # every setting but the name


def _flat(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict) and value:
            yield from _flat(value, f"{prefix}{key}.")
        elif not isinstance(value, dict):
            yield f"{prefix}{key}"


def test_unfinished_row_from_config_yaml_or_the_sweep_manifest(tmp_path):
    import yaml

    from selectivity.runs.summary import unfinished_row

    started = tmp_path / "started"
    started.mkdir()
    (started / "config.yaml").write_text(yaml.safe_dump(_config(regularizer={"alpha": -2.0}, train={"seed": 4})))
    row = unfinished_row(started)
    assert (row["alpha"], row["seed"], row["status"], row["model"]) == (-2.0, 4, "unfinished", "resnet20")
    base = _config(optim={"lr": 0.05})
    del base["regularizer"]["alpha"], base["train"]["seed"]
    row = unfinished_row(tmp_path / "never", {"alpha": 1.0, "seed": 2, "status": "queued"}, base)
    assert (row["alpha"], row["seed"], row["sweep_status"], row["optim.lr"]) == (1.0, 2, "queued", 0.05)
    assert row["config_source"] == "sweep.json" and row["regularizer.alpha"] == 1.0


def test_robustness_n_is_the_image_count(tmp_path):
    out = run_summary(_write(tmp_path / "run", _full(n=250)))
    assert out["robustness_n"] == 250


def test_measured_means_are_per_layer_means_over_defined_units_then_over_layers(tmp_path):
    import pandas as pd

    from selectivity.runs.summary import run_summary

    pd.DataFrame({"layer": ["a", "a", "a", "b"], "unit": [0, 1, 2, 0], "dead": [False, False, True, False],
                  "preferred_class": [1, 0, None, 2], "si": [0.5, 0.3, 0.0, 0.2],
                  "informedness": [0.4, 0.2, 0.0, 0.1], "monoscore": [0.3, 0.5, None, 0.2]}
                 ).to_csv(tmp_path / "unit_measures.csv", index=False)
    summary = run_summary(tmp_path)
    assert summary["mean_informedness"] == pytest.approx(((0.4 + 0.2 + 0.0) / 3 + 0.1) / 2)
    assert summary["mean_monoscore"] == pytest.approx(((0.3 + 0.5) / 2 + 0.2) / 2)  # undefined: left out
    assert "mean_si" not in summary  # final.json's, over every unit
