"""What the commands print: what they did, their headline numbers and the full paths of the files
they wrote, in lines a person reads (issue 24: train, robustness, analyze, warnings, demo, sweep)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from selectivity.cli import main


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir):
    """One tiny run (alpha -2, one epoch) and what `selectivity train` printed for it."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    root = tmp_path_factory.mktemp("printed")
    sets = [f"data.cache_dir={cache_dir}", "data.train_per_class=30", "data.test_limit=200", "train.epochs=1",
            "train.batch_size=50", "train.threads=1", "regularizer.warmup_epochs=0"]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["train", "demo", "--alpha", "-2", "--out", str(root / "run"), "--no-progress", "--set", *sets])
    assert code == 0, err.getvalue()
    return SimpleNamespace(run=root / "run", out=out.getvalue(), sets=sets)


# ----------------------------------------------------------------------------- train


@pytest.mark.slow  # trains one tiny epoch (~5 s on 2 cores), shared by the module
def test_train_prints_a_short_summary_and_the_json_on_request(trained, capsys):
    final = json.loads((trained.run / "final.json").read_text())
    lines = trained.out.splitlines()
    assert len(lines) <= 8 and not any(line.strip() in "{}" for line in lines), trained.out  # not 80 lines of JSON
    assert lines[0] == f"run directory: {trained.run.resolve()}"
    assert "alpha -2 (alpha < 0 discourages selectivity" in trained.out
    assert f"1 epochs; test accuracy {final['test_acc']:.4f} on {final['n_test']} images" in trained.out
    assert (f"mean SI {final['mean_si']:.4f}, dead units {100 * final['dead_fraction']:.1f}%, mean SI of the live "
            f"units {final['mean_si_live']:.4f}") in trained.out
    assert "training time" in trained.out and "wall time" in trained.out
    assert lines[-1] == f"every number and setting: {(trained.run / 'final.json').resolve()}"
    # --json: final.json as it is, for scripts (the run is complete: nothing is trained again)
    code, out, err = run(["train", "demo", "--alpha", "-2", "--out", trained.run, "--no-progress", "--json",
                          "--set", *trained.sets], capsys)
    assert code == 0, err
    assert json.loads(out) == final


def test_the_summary_of_a_monoloss_run_and_of_a_diverged_run():
    from selectivity.cli import train_summary

    final = {"kind": "monoloss", "alpha": 0.0, "lambda": 0.1, "schedule": None, "model": "resnet_demo",
             "dataset": "cifar10-demo", "seed": 3, "status": "completed", "epochs": 8, "test_acc": 0.61234,
             "n_test": 1000, "mean_si": 0.25, "dead_fraction": 0.125, "mean_si_live": None,
             "mean_monoscore": 0.1149, "train_seconds": 83.4, "device": "cpu"}
    text = "\n".join(train_summary(final, Path("runs/x"), 90.0))
    assert "resnet_demo on cifar10-demo, seed 3: MonoLoss lambda 0.1" in text and "alpha" not in text
    assert "8 epochs; test accuracy 0.6123 on 1000 images" in text
    assert "mean SI 0.2500, dead units 12.5%, mean SI of the live units - (none alive)" in text
    assert "mean MonoScore (label embeddings) 0.1149" in text
    assert "training time 1 min 23 s on cpu; this command's wall time 1 min 30 s" in text
    diverged = dict(final, kind="si", alpha=-5.0, status="diverged", test_acc=None, mean_si=None,
                    schedule="0*2 -5*6", epochs=3)
    text = "\n".join(train_summary(diverged, Path("runs/x"), 5.0))
    assert "alpha -5 (alpha < 0 discourages" in text and "schedule '0*2 -5*6'" in text
    assert "status diverged after 3 epochs: no final evaluation" in text and "test accuracy" not in text


# ----------------------------------------------------------------------------- robustness and analyze


ONE = ["--corruptions", "contrast", "--severities", "1", "--attacks", "fgsm", "--eps", "2/255", "--limit", "40",
       "--no-progress"]


@pytest.mark.slow
def test_robustness_names_what_it_computed_and_the_files_it_wrote(trained, capsys):
    run_dir = trained.run.resolve()
    files = [run_dir / "robustness.csv", run_dir / "attack_outcomes.safetensors", run_dir / "masking.csv"]
    code, out, err = run(["robustness", trained.run, *ONE], capsys)
    assert code == 0, err
    table = pd.read_csv(trained.run / "robustness.csv")
    contrast = table[(table.kind == "corruption") & (table.name == "contrast")].accuracy.iloc[0]
    assert f"  contrast, severity 1: {contrast:.3f}\n" in out and "mean" not in out.split("attacks:")[0]
    for path in files:
        assert f"  wrote {path}\n" in out
    # the same call again: nothing to compute, nothing written, and it says so
    code, out, err = run(["robustness", trained.run, *ONE], capsys)
    assert code == 0, err
    assert "wrote" not in out and f"nothing new to compute: {files[0]} has every row asked for" in out
    # two corruptions at two severities: their mean, and over what
    code, out, err = run(["robustness", trained.run, *ONE, "--corruptions", "contrast,gaussian_noise",
                          "--severities", "1,3"], capsys)
    assert code == 0, err
    table = pd.read_csv(trained.run / "robustness.csv")
    cells = table[table.kind == "corruption"]
    assert len(cells) == 4
    assert (f"  corruptions: mean {cells.accuracy.mean():.3f} over contrast, gaussian_noise x severities 1, 3 "
            "(4 cells)\n") in out
    assert f"  wrote {files[0]}\n" in out


@pytest.mark.slow
def test_analyze_prints_its_numbers_and_the_files_it_wrote(trained, capsys):
    code, out, err = run(["analyze", trained.run, "--limit", "40", "--no-progress"], capsys)
    assert code == 0, err
    run_dir = trained.run.resolve()
    data = json.loads((run_dir / "analysis.json").read_text())
    for name in ("analysis.json", "analysis_dimensionality.csv", "analysis_ablation.csv"):
        assert f"  wrote {run_dir / name}\n" in out
    assert f"{run_dir.name}: 40 images" in out
    lines = out.splitlines()
    for layer in data["layers"]:
        dims = data["dimensionality"]
        row = next(line.split() for line in lines if line.split()[:1] == [layer] and len(line.split()) == 5)
        assert row == [layer, str(dims["clean"][layer]["pc95"]), f"{dims['clean'][layer]['participation_ratio']:.2f}",
                       f"{dims['corrupted'][layer]['delta_pc95']:+d}", f"{dims['adversarial'][layer]['delta_pc95']:+d}"]
        curve = data["ablation"][layer]
        half = curve["fractions"].index(0.5)
        ablated = next(line.split() for line in lines if line.split()[:1] == [layer] and "+-" in line)
        assert ablated == [layer, f"{curve['selective'][half]:.3f}", f"{curve['random_mean'][half]:.3f}", "+-",
                           f"{curve['random_std'][half]:.3f}"]
    assert f"{data['ablation'][data['layers'][0]]['clean']:.3f} with none" in out
    assert f"{data['summary']['grad_cv_across_samples']:.3f}" in out


# ----------------------------------------------------------------------------- warnings


def write_images(root: Path) -> Path:
    """Two classes of six 32 x 32 PNGs: one dark, one bright."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, level in (("dark", 40), ("bright", 200)):
        (root / name).mkdir(parents=True)
        for i in range(6):
            pixels = np.clip(level + rng.integers(-30, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def vit_measure_argv(tmp_path: Path) -> list[str]:
    """`measure` of an untrained vit_demo: its token layers warn (each token's positive part is taken)."""
    from selectivity.models import create_model

    weights = tmp_path / "vit.safetensors"
    torch.manual_seed(0)
    save_file(create_model("vit_demo", num_classes=2).state_dict(), str(weights))
    return ["measure", "--model", "vit_demo", "--weights", str(weights), "--data", str(write_images(tmp_path / "im")),
            "--out", str(tmp_path / "out"), "--measures", "si", "--device", "cpu", "--no-progress"]


def test_warnings_are_one_line_without_python_source(tmp_path):
    done = subprocess.run([sys.executable, "-m", "selectivity.cli", *vit_measure_argv(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert any(line.startswith("warning: token layers blocks.0.mlp.act") for line in lines), done.stderr
    assert all(line.startswith("warning: ") for line in lines), done.stderr  # no "  with Probe(...)" line
    assert "RuntimeWarning" not in done.stderr and ".py:" not in done.stderr


def test_a_caller_still_records_the_warnings_of_main(tmp_path, capsys):
    """Only the printed form changes (formatwarning): pytest.warns around main() still sees the warning."""
    import warnings

    before = warnings.formatwarning
    with pytest.warns(RuntimeWarning, match="positive part"):
        assert main(vit_measure_argv(tmp_path)) == 0
    assert warnings.formatwarning is before  # main puts the format back


# ----------------------------------------------------------------------------- demo and sweep tables


RESULTS = pd.DataFrame({"alpha": [-1.0, 0.0], "seed": [0, 0], "model": ["resnet_demo"] * 2,
                        "dataset": ["cifar10-demo"] * 2, "test_acc": [0.5, 0.52], "mean_si": [0.2, 0.3],
                        "dead_fraction": [0.125, 0.0625], "mean_si_live": [0.2286, 0.32], "kind": ["si"] * 2,
                        "status": ["completed"] * 2, "epochs": [8, 8], "wall_seconds": [80.0, 81.0]})


def test_the_demo_table_shows_the_dead_fraction_beside_mean_si(tmp_path, capsys, monkeypatch):
    import selectivity.commands.demo as demo

    def fake_run_demo(out, **kwargs):
        Path(out).mkdir(parents=True)
        RESULTS.to_csv(Path(out) / "results.csv", index=False)
        return {"results": Path(out) / "results.csv"}

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    code, out, err = run(["demo", "--out", tmp_path / "demo", "--no-progress"], capsys)
    assert code == 0, err
    header = out.splitlines()[0].split()
    assert header == ["alpha", "seed", "test_acc", "mean_si", "dead_fraction", "mean_si_live"]
    assert out.splitlines()[1].split() == ["-1.0000", "0", "0.5000", "0.2000", "0.1250", "0.2286"]
    assert f"results: {(tmp_path / 'demo' / 'results.csv').resolve()}" in out


def test_the_sweep_table_shows_the_dead_fraction_beside_mean_si(tmp_path, capsys, monkeypatch):
    import selectivity.sweep.runner as runner

    outcome = SimpleNamespace(results=RESULTS, csv=tmp_path / "results.csv", parquet=None, unfinished=[], failed=[],
                              submitted=0)
    monkeypatch.setattr(runner, "run_sweep", lambda *args, **kwargs: outcome)
    code, out, err = run(["sweep", "demo", "--alphas=-1,0", "--seeds", "0", "--out", tmp_path / "sw"], capsys)
    assert code == 0, err
    header = out.splitlines()[0].split()
    assert header[header.index("mean_si"):header.index("mean_si") + 3] == ["mean_si", "dead_fraction",
                                                                           "mean_si_live"]
    assert "0.1250" in out.splitlines()[1] and "0.2286" in out.splitlines()[1]
