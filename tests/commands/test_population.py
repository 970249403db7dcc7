"""`selectivity analyze --population` on a tiny real sweep, and `selectivity measure --model ... --population`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import save_file

from selectivity.analysis import axis_gap, linear_probe
from selectivity.analysis.representations import collect_activations
from selectivity.cli import main
from selectivity.commands.evaluate import EvaluationError
from selectivity.commands.population import POPULATION_COLUMNS, population_run, population_table
from selectivity.data import load_split, take_per_class
from selectivity.runs import RunBusy, RunPaths, exclusive, open_run, run_summary

CLAIMS = Path(__file__).parents[2] / "docs" / "claims" / "population.yaml"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """alpha in {-1, 0}, seed 0, one epoch on 30 train images per class (300) and 200 test images."""
    from selectivity.sweep import run_sweep

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("population")
    overrides = [f"data.cache_dir={root / 'cache'}", "data.train_per_class=30", "data.test_limit=200",
                 "train.epochs=1", "train.batch_size=50", "train.threads=1", "regularizer.warmup_epochs=0"]
    out = root / "sweep"
    outcome = run_sweep("demo", [-1.0, 0.0], [0], out, executor="debug", overrides=overrides, progress=False)
    assert not outcome.failed and len(outcome.results) == 2
    assert main(["analyze", str(out), "--population", "--no-progress"]) == 0
    return out


def _runs(sweep):
    return sorted(p for p in sweep.iterdir() if (p / "final.json").is_file())


def _copy_run(sweep, tmp_path) -> Path:
    """A run of the sweep without its population.csv."""
    run = tmp_path / "run"
    shutil.copytree(_runs(sweep)[0], run)
    (run / "population.csv").unlink()
    return run


def test_population_csv_per_run(sweep):
    for run in _runs(sweep):
        table = pd.read_csv(run / "population.csv")
        assert list(table.columns) == POPULATION_COLUMNS
        assert list(table["layer"]) == ["layer1.0", "layer2.0", "layer3.0"]  # resnet_demo's blocks, forward order
        assert list(table["units"]) == [16, 32, 64]
        assert (table["n_train"] == 300).all() and (table["n_test"] == 200).all()  # the run's own images
        assert table["probe_acc"].between(0, 1).all() and (table["probe_loss"] > 0).all()
        assert ((table["axis_gap"] - (table["axis_units"] - table["axis_random"])).abs() < 1e-12).all()
        assert ((table["axis_gap_low"] <= table["axis_gap"]) & (table["axis_gap"] <= table["axis_gap_high"])).all()
        assert (table["rotations"] == 10).all() and table["limit"].isna().all()


def test_the_numbers_are_those_of_the_library_on_the_runs_own_images(sweep):
    """Responses taken here with collect_activations, on the images training used (the first 30 of
    each class of the train split; the 200 test images of data.test_limit)."""
    run_dir = _runs(sweep)[1]
    run = open_run(run_dir)
    train = take_per_class(load_split("demo", "train", cache_dir=run.config.data.cache_dir, progress=False), 30)
    layers = ["layer1.0", "layer2.0", "layer3.0"]
    train_x = collect_activations(run.model, train.images.float() / 255, layers)
    test_x = collect_activations(run.model, run.test.images.float() / 255, layers)
    table = pd.read_csv(run_dir / "population.csv").set_index("layer")
    for name in layers:
        probe = linear_probe(train_x[name], train.labels, test_x[name], run.test.labels)
        gap = axis_gap(test_x[name], run.test.labels, 10)
        assert table.loc[name, "probe_acc"] == pytest.approx(probe.accuracy, abs=1e-12)
        assert table.loc[name, "probe_strength"] == probe.strength
        assert table.loc[name, "probe_loss"] == pytest.approx(probe.loss, rel=1e-6)
        assert table.loc[name, "axis_gap"] == pytest.approx(gap.gap, abs=1e-6)


def test_the_results_gain_every_column_the_population_claims_name(sweep):
    results = pd.read_csv(sweep / "results.csv")
    claimed = {c["metric"] for c in yaml.safe_load(CLAIMS.read_text())["claims"]}
    assert claimed == {"probe_acc/layer3.0", "axis_gap/layer3.0", "mean_axis_gap"}
    expected = claimed | {f"{m}/{layer}" for m in ("probe_acc", "probe_loss", "axis_gap")
                          for layer in ("layer1.0", "layer2.0", "layer3.0")} | {"mean_probe_acc"}
    assert expected <= set(results.columns)
    assert results[sorted(expected)].notna().all().all()
    for _, row in results.iterrows():
        table = pd.read_csv(next(r for r in _runs(sweep) if r.name == row["run"]) / "population.csv")
        assert row["mean_axis_gap"] == pytest.approx(table["axis_gap"].mean())
        assert row["probe_acc/layer3.0"] == table.set_index("layer").loc["layer3.0", "probe_acc"]


def test_a_run_with_population_csv_is_kept_and_force_recomputes_the_same_numbers(sweep, capsys):
    run = _runs(sweep)[0]
    path = run / "population.csv"
    before, mtime = path.read_text(), path.stat().st_mtime_ns
    assert main(["analyze", str(sweep), "--population", "--no-progress"]) == 0
    assert "kept its population.csv" in capsys.readouterr().out
    assert path.stat().st_mtime_ns == mtime
    assert main(["analyze", str(run), "--population", "--force", "--no-progress"]) == 0
    assert path.stat().st_mtime_ns != mtime and path.read_text() == before  # seeded: the same numbers


def test_limit_takes_n_images_of_each_split_the_test_ones_of_the_other_evaluations(sweep, tmp_path):
    from selectivity.commands.evaluate import _load

    run = _copy_run(sweep, tmp_path)
    assert main(["analyze", str(run), "--population", "--limit", "100", "--no-progress"]) == 0
    table = pd.read_csv(run / "population.csv")
    assert (table["n_train"] == 100).all() and (table["n_test"] == 100).all() and (table["limit"] == 100).all()
    # the axis gap is computed on the test images robustness and analyze take with --limit 100
    _, model, x, y = _load(run, 100, progress=False)
    test_x = collect_activations(model, x, ["layer3.0"])["layer3.0"]
    gap = axis_gap(test_x, y, 10)
    assert table.set_index("layer").loc["layer3.0", "axis_gap"] == pytest.approx(gap.gap, abs=1e-6)
    # another limit is another computation, not a kept file
    assert main(["analyze", str(run), "--population", "--limit", "150", "--no-progress"]) == 0
    assert (pd.read_csv(run / "population.csv")["n_train"] == 150).all()


def test_too_few_images_for_the_units_is_a_one_line_error_and_nothing_is_written(sweep, tmp_path, capsys):
    run = _copy_run(sweep, tmp_path)
    assert main(["analyze", str(run), "--population", "--limit", "40", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "layer3.0" in err and "64 units" in err and "--limit" in err
    assert not (run / "population.csv").exists()
    assert not [p for p in run.iterdir() if p.name.startswith(".population.csv")]


def test_rotations_below_one_are_refused(sweep, tmp_path, capsys):
    run = _copy_run(sweep, tmp_path)
    for k in ("0", "-3"):
        assert main(["analyze", str(run), "--population", f"--rotations={k}", "--no-progress"]) == 2
        assert "--rotations must be a whole number >= 1" in capsys.readouterr().err
    assert main(["analyze", str(run), "--rotations", "3", "--no-progress"]) == 2  # only with --population
    assert not (run / "population.csv").exists()


def test_a_busy_run_is_refused(sweep, tmp_path, capsys):
    run = _copy_run(sweep, tmp_path)
    with exclusive(RunPaths(run).lock, "held by the test"):
        with pytest.raises(RunBusy):
            population_run(run, progress=False)
        assert main(["analyze", str(run), "--population", "--no-progress"]) == 2
    assert "busy" in capsys.readouterr().err
    assert not (run / "population.csv").exists()


def test_nan_responses_and_a_single_class_are_one_line_errors():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 4, generator=g), torch.arange(60) % 3
    bad = x.clone()
    bad[5, 2] = float("nan")
    with pytest.raises(EvaluationError, match="layer b: test responses contain NaN"):
        population_table({"a": x, "b": x}, y, {"a": x, "b": bad}, y, 3)
    with pytest.raises(EvaluationError, match="the train images hold a single class"):
        population_table({"a": x}, torch.zeros(60, dtype=torch.long), {"a": x}, y, 3)
    with pytest.raises(EvaluationError, match="needs at least as many training images as its 4 units"):
        population_table({"a": x[:3]}, y[:3], {"a": x}, y, 3)


def test_run_summary_reads_population_csv(tmp_path):
    rows = [{"layer": "a", "probe_acc": 0.5, "probe_loss": 1.2, "axis_gap": 0.1},
            {"layer": "b", "probe_acc": 0.7, "probe_loss": 0.9, "axis_gap": float("nan")}]
    pd.DataFrame(rows).to_csv(tmp_path / "population.csv", index=False)
    summary = run_summary(tmp_path)
    assert summary["probe_acc/a"] == 0.5 and summary["axis_gap/a"] == 0.1 and summary["probe_loss/b"] == 0.9
    assert summary["mean_probe_acc"] == pytest.approx(0.6)
    assert summary["mean_axis_gap"] == pytest.approx(0.1)  # a layer without a gap (all units dead) is left out


# --------------------------------------------------------------------------- any model


@pytest.fixture
def model_and_images(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    from measure_factories import tiny_conv
    from test_measure_any import write_tree

    torch.manual_seed(0)
    weights = tmp_path / "tiny.safetensors"
    save_file(tiny_conv(num_classes=3, width=5).state_dict(), str(weights))
    images = write_tree(tmp_path / "images", prefix="train/", per_class=8)
    write_tree(images, prefix="val/", per_class=6)
    return tmp_path, weights, images


def _measure_argv(weights, data, out, *extra):
    return ["measure", "--model", "measure_factories:tiny_conv", "--set", "model.kwargs.width=5",
            "--weights", str(weights), "--data", str(data), "--out", str(out), "--size", "16", "--population",
            "--no-progress", *extra]


def test_measure_population_of_any_model(model_and_images, capsys):
    from measure_factories import tiny_conv

    from selectivity.data.imageset import open_image_set
    from selectivity.runs.weights import load_safetensors_weights

    tmp, weights, images = model_and_images
    assert main(_measure_argv(weights, images, tmp / "out", "--rotations", "4")) == 0, capsys.readouterr().err
    table = pd.read_csv(tmp / "out" / "population.csv")
    assert list(table["layer"]) == ["features.1", "features.3"] and (table["units"] == 5).all()
    assert (table["n_train"] == 24).all() and (table["n_test"] == 18).all() and (table["rotations"] == 4).all()
    # fitted on train/, scored on val/: the same numbers from the library on responses taken here
    model = load_safetensors_weights(tiny_conv(num_classes=3, width=5), weights).eval()
    splits = {s: open_image_set(images, s) for s in ("train", "val")}
    x = {s: splits[s].batch(range(len(splits[s])), 16).float() / 255 for s in splits}
    acts = {s: collect_activations(model, x[s], ["features.3"])["features.3"] for s in splits}
    probe = linear_probe(acts["train"], splits["train"].labels, acts["val"], splits["val"].labels)
    row = table.set_index("layer").loc["features.3"]
    assert row["probe_acc"] == pytest.approx(probe.accuracy)
    assert row["probe_loss"] == pytest.approx(probe.loss, rel=1e-5)
    assert row["axis_gap"] == pytest.approx(axis_gap(acts["val"], splits["val"].labels, 3, rotations=4).gap, abs=1e-6)


def test_measure_population_needs_a_train_and_a_test_split(model_and_images, capsys):
    tmp, weights, images = model_and_images
    only_classes = tmp / "flat"
    shutil.copytree(images / "val", only_classes)
    assert main(_measure_argv(weights, only_classes, tmp / "flat-out")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no test split beside its train split" in err
    assert not (tmp / "flat-out" / "population.csv").exists()
    assert main(_measure_argv(weights, images, tmp / "o2", "--split", "train")) == 2
    assert "scores it on another" in capsys.readouterr().err
    assert main(_measure_argv(weights, images, tmp / "o3", "--limit", "4")) == 2  # 4 images for 5 units
    assert "raise --limit to 5" in capsys.readouterr().err
    assert main(["measure", str(tmp), "--population"]) == 2  # a run's population.csv comes from analyze
    assert "selectivity analyze RUN --population" in capsys.readouterr().err
