"""`selectivity robustness` and `selectivity analyze` on a tiny real sweep (2 alphas x 1 seed)."""

from __future__ import annotations

import json
import math
import shutil

import pandas as pd
import pytest
import torch

from selectivity.commands.evaluate import EvaluationError, find_runs, parse_eps, validate_robustness
from selectivity.runs import run_summary

ANALYSIS_JSON, ROBUSTNESS_CSV = "analysis.json", "robustness.csv"
from selectivity.cli import main


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A tiny sweep, alpha in {-1, 0}, seed 0, trained for one epoch with the debug executor."""
    from selectivity.sweep import run_sweep

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("eval")
    cache = root / "cache"
    overrides = [f"data.cache_dir={cache}", "data.train_per_class=30", "data.test_limit=200", "train.epochs=1",
                 "train.batch_size=50", "train.threads=1", "regularizer.warmup_epochs=0"]
    out = root / "sweep"
    outcome = run_sweep("demo", [-1.0, 0.0], [0], out, executor="debug", overrides=overrides, progress=False)
    assert not outcome.failed and len(outcome.results) == 2
    return out


ROB_ARGS = ["--corruptions", "gaussian_noise,contrast", "--severities", "1,3", "--attacks", "fgsm",
            "--eps", "0,2/255,8/255", "--limit", "64", "--no-progress"]


@pytest.fixture(scope="module")
def robust(sweep):
    assert main(["robustness", str(sweep), *ROB_ARGS]) == 0
    return sweep


def _runs(sweep):
    return sorted(p for p in sweep.iterdir() if (p / "final.json").is_file())


def test_robustness_csv_per_run(robust):
    for run in _runs(robust):
        table = pd.read_csv(run / ROBUSTNESS_CSV)
        assert list(table.columns[:4]) == ["kind", "name", "level", "accuracy"]
        assert set(table["kind"]) == {"clean", "corruption", "attack"}
        assert table["accuracy"].between(0, 1).all()
        assert (table["n"] == 64).all()
        corr = table[table["kind"] == "corruption"]
        assert len(corr) == 4 and set(corr["level"]) == {1, 3}
        assert set(corr["name"]) == {"gaussian_noise", "contrast"}
        attack = table[table["kind"] == "attack"]
        assert len(attack) == 3 and set(attack["name"]) == {"fgsm"}
        assert attack["level"].between(0, 1).all()
        clean = float(table.loc[table["kind"] == "clean", "accuracy"].iloc[0])
        zero = attack[attack["level"] == 0]["accuracy"]
        assert len(zero) == 1 and zero.iloc[0] == pytest.approx(clean)
        # robust accuracy never exceeds clean accuracy (a sample counts only if clean is right)
        assert (attack["accuracy"] <= clean + 1e-12).all()


def test_results_table_gets_summary_columns(robust):
    results = pd.read_csv(robust / "results.csv")
    assert {"corruption_acc", "adv_acc/fgsm/2/255", "adv_acc/fgsm/8/255", "corruption_acc/s1"} <= set(results.columns)
    # A subset of the corruptions: no corruption_acc, and the reason (see test_run_summary.py).
    assert results["corruption_acc"].isna().all() and results["corruption_acc_reason"].str.contains("of the 75").all()
    parquet = pd.read_parquet(robust / "results.parquet")
    assert "corruption_acc" in parquet.columns


def test_robustness_is_resumable_and_deterministic(robust):
    run = _runs(robust)[0]
    before = (run / ROBUSTNESS_CSV).read_text()
    mtime = (run / ROBUSTNESS_CSV).stat().st_mtime_ns
    assert main(["robustness", str(run), *ROB_ARGS]) == 0
    assert (run / ROBUSTNESS_CSV).stat().st_mtime_ns == mtime  # nothing to do: not rewritten
    assert main(["robustness", str(run), *ROB_ARGS, "--force"]) == 0
    assert (run / ROBUSTNESS_CSV).read_text() == before  # seeded: the same numbers


def test_analyze_writes_analysis_json(robust, capsys):
    assert main(["analyze", str(robust), "--limit", "64", "--no-progress"]) == 0
    for run in _runs(robust):
        data = json.loads((run / ANALYSIS_JSON).read_text())
        assert {"dimensionality", "similarity", "ablation", "gradients", "summary", "layers"} <= set(data)
        assert set(data["dimensionality"]) == {"clean", "corrupted", "adversarial"}
        layer = data["layers"][0]
        assert {"pc95", "participation_ratio", "delta_pc95"} <= set(data["dimensionality"]["clean"][layer])
        assert data["similarity"] is not None and {"pwcca", "cka"} <= set(data["similarity"])
        curve = data["ablation"][layer]
        assert len(curve["selective"]) == len(curve["fractions"]) == len(curve["random_mean"])
        assert "cv_across_samples" in data["gradients"][layer]
        assert (run / "analysis_dimensionality.csv").is_file() and (run / "analysis_ablation.csv").is_file()
    results = pd.read_csv(robust / "results.csv")
    assert {"pc95_early", "pwcca_mean", "corruption_acc"} <= set(results.columns)
    assert any(c.startswith("pwcca/") for c in results.columns)
    assert any(c.startswith("pc95/") for c in results.columns)


def test_report_shows_the_new_sections(robust):
    from selectivity.report.html import build_report

    if not (robust / ANALYSIS_JSON).exists() and not any((r / ANALYSIS_JSON).exists() for r in _runs(robust)):
        assert main(["analyze", str(robust), "--limit", "64", "--no-progress"]) == 0
    outputs = build_report(robust, n_boot=200)
    page = outputs.page.read_text()
    for title in ("Robustness", "Representations"):
        assert title in page
    for name in ("corruption_accuracy", "adversarial_accuracy", "dimensionality_by_layer", "similarity_to_baseline"):
        assert name in outputs.figures and outputs.figures[name].is_file()
        assert f"{name}.png" in page
    verdicts = {r.claim.id: r.verdict for r in outputs.claims}
    assert {"low-si-more-corruption-robust", "low-si-less-adversarially-robust",
            "early-dimensionality-inverse-to-si"} <= set(verdicts)


def test_report_without_evaluations_leaves_new_claims_not_tested(sweep, tmp_path):
    from selectivity.report.html import build_report

    copy = tmp_path / "plain"
    copy.mkdir()
    table = pd.read_csv(sweep / "results.csv")
    keep = [c for c in table.columns if not c.startswith(("corruption_acc", "adv_acc", "pc95", "pr", "pwcca", "cka",
                                                         "delta_", "grad_", "clean_acc_eval"))]
    table[keep].to_csv(copy / "results.csv", index=False)
    outputs = build_report(copy, n_boot=200)
    verdicts = {r.claim.id: r.verdict for r in outputs.claims}
    assert verdicts["low-si-more-corruption-robust"] == "not tested"
    assert verdicts["low-si-less-adversarially-robust"] == "not tested"
    assert "corruption_accuracy" not in outputs.figures
    assert "Robustness" not in outputs.page.read_text()


@pytest.mark.parametrize("args, words", [
    (["--corruptions", "nope"], "valid names"),
    (["--severities", "6"], "1..5"),
    (["--eps", "2"], "[0, 1]"),
    (["--attacks", "cw"], "fgsm"),
])
def test_bad_robustness_arguments_exit_2(sweep, capsys, args, words):
    run = _runs(sweep)[0]
    assert main(["robustness", str(run), *args, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err


def test_not_a_run_or_sweep_dir_exits_2(tmp_path, capsys):
    assert main(["robustness", str(tmp_path)]) == 2
    assert "neither a run directory" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_argument_checks():
    assert parse_eps("4/255") == pytest.approx(4 / 255)
    with pytest.raises(EvaluationError):
        parse_eps("-0.1")
    with pytest.raises(EvaluationError, match="valid names"):
        validate_robustness(corruptions=["fog", "mist"])
    with pytest.raises(ValueError):
        validate_robustness(severities=[0])


def test_find_runs_and_summary(robust, tmp_path):
    target = find_runs(robust)
    assert target.sweep == robust and len(target.runs) == 2
    single = find_runs(target.runs[0])
    assert single.sweep is None and single.runs == (target.runs[0],)
    summary = run_summary(target.runs[0])
    assert math.isnan(summary["corruption_acc"]) and "4 of the 75" in summary["corruption_acc_reason"]
    empty = tmp_path / "run"
    shutil.copytree(target.runs[0], empty, ignore=shutil.ignore_patterns(ROBUSTNESS_CSV, ANALYSIS_JSON))
    assert run_summary(empty) == {}


def test_a_missing_optional_package_is_announced_skipped_and_recorded(sweep, tmp_path, capsys, monkeypatch):
    """frost without imagecorruptions: said before the work, the rest runs, the CSV records the gap."""
    import importlib.util

    run = tmp_path / "run"
    shutil.copytree(sorted(p for p in sweep.iterdir() if (p / "final.json").exists())[0], run)
    (run / ROBUSTNESS_CSV).unlink(missing_ok=True)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "imagecorruptions" else real_find_spec(name, *a))
    argv = ["robustness", str(run), "--corruptions", "frost,contrast", "--severities", "1", "--attacks", "fgsm",
            "--eps", "1/255", "--limit", "40", "--no-progress"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "skipping frost" in err and "pip install imagecorruptions" in err
    table = pd.read_csv(run / ROBUSTNESS_CSV)
    frost = table[table["name"] == "frost"]
    assert len(frost) == 1 and frost["accuracy"].isna().all()
    assert table[table["name"] == "contrast"]["accuracy"].notna().all()
    monkeypatch.setattr(importlib.util, "find_spec", real_find_spec)  # installed later: only frost is computed
    if real_find_spec("imagecorruptions") is not None:
        assert main(argv) == 0
        again = pd.read_csv(run / ROBUSTNESS_CSV)
        assert again[again["name"] == "frost"]["accuracy"].notna().all()
        assert again[again["name"] == "contrast"]["accuracy"].tolist() == table[table["name"] == "contrast"][
            "accuracy"].tolist()


def test_measure_a_sweep_writes_every_runs_measures_and_the_results_columns(sweep, capsys):
    """`selectivity measure SWEEP --measures`: every completed run, resumable, means in results.csv."""
    copy = sweep.parent / "measured"
    shutil.copytree(sweep, copy)
    assert main(["measure", str(copy), "--measures", "si,informedness,monoscore", "--no-progress"]) == 0
    assert "measured 2 run(s), kept 0" in capsys.readouterr().out
    results = pd.read_csv(copy / "results.csv")
    for run in find_runs(copy).runs:
        units = pd.read_csv(run / "unit_measures.csv")
        row = results[results.run == run.name].iloc[0]
        expected = units.groupby("layer", sort=False).informedness.mean().mean()
        assert row.mean_informedness == pytest.approx(expected, rel=1e-9)
        # the meter's MonoScore at the end of training is the measure's, on the same test images
        final = json.loads((run / "final.json").read_text())
        assert row.mean_monoscore == pytest.approx(final["mean_monoscore"], rel=1e-6)
    assert main(["measure", str(copy), "--measures", "si", "--no-progress"]) == 0
    assert "measured 0 run(s), kept 2" in capsys.readouterr().out
    assert main(["measure", str(copy), "--no-progress"]) == 2
    assert "is a sweep: measure it with --measures" in capsys.readouterr().err
