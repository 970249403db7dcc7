import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from selectivity.models import create_model
from selectivity.config import load_config
from selectivity.data import take_per_class
from selectivity.train.trainer import lr_at, train

CLI = [sys.executable, "-m", "selectivity.cli"]


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_run_writes_its_record(tmp_path, tiny_overrides):
    config = load_config("demo", tiny_overrides + ["regularizer.alpha=-1"])
    final = train(config, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "metrics.jsonl", "checkpoint.safetensors",
                                              "weights.safetensors", "si_per_unit.csv", "final.json"}
    rows = _lines(run / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert {"train_loss", "train_acc", "batch_si", "test_acc"} <= set(rows[-1])
    assert final["status"] == "completed" and 0 <= final["test_acc"] <= 1 and 0 < final["mean_si"] < 1
    assert final["alpha"] == -1.0 and final["seed"] == 0
    layer_si = [v for k, v in final.items() if k.startswith("si/")]
    assert len(layer_si) == 3 and final["mean_si"] == pytest.approx(sum(layer_si) / 3)
    model = create_model("resnet_demo", num_classes=10)
    model.load_state_dict(load_file(str(run / "weights.safetensors")))  # every key, every shape
    # final.json says how it was made: every setting of the resolved config, as dotted keys.
    settings = json.loads((run / "final.json").read_text())["settings"]
    assert settings == final["settings"] and final["dtype"] == "float32"
    expected = {"optim.lr": 0.1, "optim.name": "sgd", "optim.momentum": 0.9, "optim.weight_decay": 5e-4,
                "train.batch_size": 50, "train.epochs": 3, "train.dtype": "float32", "regularizer.alpha": -1.0,
                "regularizer.schedule": None, "model.name": "resnet_demo", "lr_schedule.kind": "onecycle",
                "data.train_per_class": 30, "data.crop_padding": 4}
    assert {k: settings[k] for k in expected} == expected
    assert not any(isinstance(v, dict) for v in settings.values()) and len(settings) >= 40
    # A finished run is returned as it is, without training again.
    assert train(config, run, progress=False) == final


def test_train_per_class_keeps_the_first_images_of_each_class():
    import dataclasses

    @dataclasses.dataclass
    class Split:
        images: torch.Tensor
        labels: torch.Tensor

    labels = torch.tensor([2, 0, 2, 1, 0, 2, 0, 1])
    split = Split(images=torch.arange(8).view(8, 1, 1, 1).to(torch.uint8), labels=labels)
    kept = take_per_class(split, 2)
    assert kept.labels.tolist() == [2, 0, 2, 1, 0, 1]
    assert kept.images.flatten().tolist() == [0, 1, 2, 3, 4, 7]


def test_learning_rate_schedules():
    config = load_config("demo", ["lr_schedule.kind=step", "optim.lr=1.0", "lr_schedule.warmup_epochs=0"])
    assert [lr_at(config, s, 100, 10) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    config = load_config("demo", ["lr_schedule.kind=onecycle", "optim.lr=1.0"])
    assert [lr_at(config, s, 100, 10) for s in (0, 25, 100)] == pytest.approx([0, 1, 0])


def _cli_train(out, overrides, **kwargs):
    args = CLI + ["train", "demo", "--out", str(out), "--no-progress"] + [a for o in overrides for a in ("--set", o)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_without_losing_or_repeating_an_epoch(tmp_path, tiny_overrides):
    # float64: no float32 end state of training is compared with a tolerance (two processes may round
    # apart, and one ReLU sign parts two runs); in float64 the resumed run is the whole one to rounding.
    overrides = tiny_overrides + ["train.epochs=5", "regularizer.alpha=-1", "train.dtype=float64"]
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    proc = _cli_train(killed, overrides)
    for _ in range(2400):  # up to 2 minutes: wait until two epochs are on disk, then kill -9 mid-run
        metrics = killed / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(_lines(killed / "metrics.jsonl"))
    assert 2 <= done_before < 5 and not (killed / "final.json").exists()
    resumed = _cli_train(killed, overrides)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert [r["epoch"] for r in _lines(killed / "metrics.jsonl")] == [0, 1, 2, 3, 4]
    # The resumed run is the uninterrupted run: same batches, same weights, same numbers.
    reference = _cli_train(whole, overrides)
    reference.communicate(timeout=300)
    a, b = load_file(str(killed / "weights.safetensors")), load_file(str(whole / "weights.safetensors"))
    for key in a:
        assert a[key].dtype == (torch.float64 if a[key].is_floating_point() else torch.int64)
        torch.testing.assert_close(a[key], b[key], rtol=1e-9, atol=1e-12)
    fa, fb = (json.loads((d / "final.json").read_text()) for d in (killed, whole))
    assert fa["test_acc"] == fb["test_acc"]


def test_model_kwargs_are_settings_of_final_json(tmp_path, tiny_overrides):
    config = load_config("demo", tiny_overrides + ["train.epochs=1", "model.kwargs.std=[0.25,0.25,0.25]"])
    final = train(config, tmp_path / "run", progress=False)
    assert final["settings"]["model.kwargs.std"] == [0.25, 0.25, 0.25] and "model.kwargs" not in final["settings"]
    bare = train(load_config("demo", tiny_overrides + ["train.epochs=1"]), tmp_path / "bare", progress=False)
    assert not any(k.startswith("model.kwargs") for k in bare["settings"])  # no kwargs, no key


def test_huge_alpha_diverges_cleanly(tmp_path, tiny_overrides):
    config = load_config("demo", tiny_overrides + ["regularizer.alpha=1e30", "optim.lr=10.0"])
    final = train(config, tmp_path / "run", progress=False)
    assert final["status"] == "diverged" and final["diverged"] is True and final["test_acc"] is None
    assert json.loads((tmp_path / "run" / "final.json").read_text())["status"] == "diverged"


def test_final_json_reports_dead_units_and_live_unit_selectivity(tmp_path, tiny_overrides):
    """A dead unit has SI 0: mean SI alone mixes 'not selective' with 'silent'."""
    import json

    from selectivity.config import load_config
    from selectivity.train.trainer import train

    final = train(load_config("demo", tiny_overrides + ["train.epochs=1"]), tmp_path / "run", progress=False)
    stored = json.loads((tmp_path / "run" / "final.json").read_text())
    assert stored["dead_fraction"] == final["dead_fraction"] and 0 <= final["dead_fraction"] <= 1
    if final["dead_fraction"] == 0:
        assert final["mean_si_live"] == pytest.approx(final["mean_si"])
