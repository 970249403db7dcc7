import json
import subprocess
import sys

import pytest

from selectivity.cli import main


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_then_measure(tmp_path, tiny_overrides, capsys):
    run = tmp_path / "run"
    sets = [a for o in tiny_overrides + ["train.epochs=1"] for a in ("--set", o)]
    code, out, err = _run(["train", "demo", "--alpha", "-2", "--seed", "1", "--out", str(run), "--no-progress"] + sets, capsys)
    assert code == 0, err
    final = json.loads((run / "final.json").read_text())
    assert final["alpha"] == -2.0 and final["seed"] == 1
    code, out, err = _run(["measure", str(run), "--no-progress"], capsys)
    assert code == 0, err
    # measure takes the run's own test images (data.test_limit=200 here), so its numbers are final.json's
    assert "network" in out and "measured on 200 images of the test split" in out
    summary = json.loads((run / "measure-cifar10-demo-test.json").read_text())
    assert set(summary["per_layer"]) == {k[3:] for k in final if k.startswith("si/")}
    assert 0 < summary["mean_si"] < 1
    # the same test images as training's evaluation: the same mean SI and MonoScore as final.json
    assert summary["mean_si"] == pytest.approx(final["mean_si"], rel=1e-6)
    assert summary["mean_monoscore"] == pytest.approx(final["mean_monoscore"], rel=1e-6)
    assert f"mean MonoScore (label embeddings) {final['mean_monoscore']:.4f}" in out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["train", "nosuchpreset"], "neither a YAML file nor a preset"),
        (["train", "demo", "--set", "train.epoch=2"], "unknown config key 'train.epoch'"),
        (["train", "demo", "--set", "train.epochs=x"], "train.epochs must be int"),
        (["train", "demo", "--data", "/nonexistent/cifar"], "/nonexistent/cifar"),
        (["train", "demo", "--set", "model.name=resnet99"], "resnet99"),
        (["train", "demo", "--set", "model.kwargs={num_classes: 5}"], "num_classes is 5 but the data"),
        (["measure", "/nonexistent/run"], "not a run directory"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(argv, match, tmp_path, capsys, cache_dir):
    if argv[0] == "train":
        argv = argv + ["--out", str(tmp_path / "run"), "--no-progress", "--set", f"data.cache_dir={cache_dir}"]
    code, out, err = _run(argv, capsys)
    assert code == 2
    assert match in err and len(err.strip().splitlines()) == 1, err


def test_a_run_directory_of_another_config_is_refused_untouched(tmp_path, tiny_overrides, capsys):
    run = tmp_path / "run"
    sets = [a for o in tiny_overrides + ["train.epochs=1"] for a in ("--set", o)]
    assert _run(["train", "demo", "--out", str(run), "--no-progress"] + sets, capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code, _, err = _run(["train", "demo", "--alpha", "3", "--out", str(run), "--no-progress"] + sets, capsys)
    assert code == 2 and "different config (regularizer.alpha: 0.0 there, 3.0 now)" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_corrupt_checkpoint_is_reported_and_kept(tmp_path, tiny_overrides, capsys):
    run = tmp_path / "run"
    sets = [a for o in tiny_overrides + ["train.epochs=2"] for a in ("--set", o)]
    assert _run(["train", "demo", "--out", str(run), "--no-progress"] + sets, capsys)[0] == 0
    (run / "final.json").unlink()  # pretend the run is still going
    data = (run / "checkpoint.safetensors").read_bytes()
    (run / "checkpoint.safetensors").write_bytes(data[: len(data) // 2])  # truncated
    code, _, err = _run(["train", "demo", "--out", str(run), "--no-progress"] + sets, capsys)
    assert code == 2 and "corrupt or truncated" in err
    assert (run / "checkpoint.safetensors").read_bytes() == data[: len(data) // 2]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


def test_unwritable_output_directory(tmp_path, tiny_overrides, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    sets = [a for o in tiny_overrides for a in ("--set", o)]
    code, _, err = _run(["train", "demo", "--out", str(blocker / "run"), "--no-progress"] + sets, capsys)
    assert code == 2 and "cannot write the run directory" in err
    assert blocker.read_text() == "not a directory"


def test_cli_runs_as_a_program():
    out = subprocess.run([sys.executable, "-m", "selectivity.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "train" in out.stdout and "demo" in out.stdout


def test_a_model_of_ones_own_from_the_current_directory(tmp_path, tiny_overrides, capsys, monkeypatch):
    """examples/my_model.py as the README shows it: no mean/std in the factory, run by name."""
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the repository root, where examples/ lies
    run = tmp_path / "own"
    sets = [a for o in tiny_overrides + ["train.epochs=1", "model.name=examples.my_model:small_cnn",
                                         "model.kwargs.width=8"] for a in ("--set", o)]
    code, out, err = _run(["train", "demo", "--out", str(run), "--no-progress"] + sets, capsys)
    assert code == 0, err
    final = json.loads((run / "final.json").read_text())
    assert final["model"] == "examples.my_model:small_cnn" and set(k for k in final if k.startswith("si/")) == {
        "si/2", "si/6"}
