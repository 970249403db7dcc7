"""Bad values that used to train silently: each is a one-line error before any work (exit 2)."""

from __future__ import annotations

import math

import pytest
from torch import nn

from selectivity.core import SelectivityRegularizer
from selectivity.config import Config, ConfigError, load_config
from selectivity.runs import resolve_device
from selectivity.train.trainer import train

BAD = [
    ("regularizer.alpha=nan", "regularizer.alpha must be a finite number, got nan"),
    ("regularizer.alpha=.inf", "regularizer.alpha must be a finite number, got inf"),
    ("regularizer.alpha=-inf", "regularizer.alpha must be a finite number, got -inf"),
    ("optim.lr=inf", "optim.lr must be a finite number, got inf"),
    ("lr_schedule.milestones=[0.5, .nan]", "lr_schedule.milestones[1] must be a finite number"),
    ("lr_schedule.gamma=-0.1", "lr_schedule.gamma must be > 0, got -0.1"),
    ("regularizer.epoch_window=[5, 2]", "regularizer.epoch_window must be [start, end] with 0 <= start < end"),
    ("data.test_limit=0", "data.test_limit must be >= 1"),
    ("data.test_limit=-5", "data.test_limit must be >= 1"),
    ("data.train_per_class=0", "data.train_per_class must be >= 1"),
    ("data.train_per_class=-3", "data.train_per_class must be >= 1"),
    ("train.threads=-1", "train.threads must be >= 1"),
    ("train.device=gpu0", "train.device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'gpu0'"),
]


@pytest.mark.parametrize("override, message", BAD, ids=[b[0] for b in BAD])
def test_bad_value_is_refused_before_any_work(override, message, tmp_path, cli, one_line):
    out = tmp_path / "run"
    code, _, err = cli(["train", "demo", "--set", override, "--out", out, "--no-progress"])
    assert code == 2
    assert message in one_line(err)
    assert not out.exists()  # refused before the run directory (or any data) was touched


@pytest.mark.parametrize("alpha", ["nan", "inf", "-inf"])
def test_alpha_flag_non_finite(alpha, tmp_path, cli, one_line):
    out = tmp_path / "run"
    code, _, err = cli(["train", "demo", "--alpha", alpha, "--out", out, "--no-progress"])
    assert code == 2 and "regularizer.alpha must be a finite number" in one_line(err)
    assert not out.exists()


def test_sweep_alpha_nan_is_refused(tmp_path, cli, one_line):
    code, _, err = cli(["sweep", "demo", "--alphas", "0,nan", "--seeds", "0", "--out", tmp_path / "sw", "--no-progress"])
    assert code == 2 and "nan" in one_line(err)
    assert not (tmp_path / "sw").exists()


def test_demo_alphas_nan_is_refused(tmp_path, capsys):
    from selectivity.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--alphas", "0,nan", "--out", str(tmp_path / "demo")])
    assert exit_.value.code == 2 and "expected finite numbers" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_good_edge_values_still_load():
    config = load_config("demo", ["regularizer.epoch_window=[0, 3]", "data.test_limit=1", "train.threads=1",
                                  "train.device=cpu", "lr_schedule.gamma=0.5"])
    assert config.regularizer.epoch_window == [0.0, 3.0] and config.train.device == "cpu"


def test_a_config_built_in_code_is_validated_by_train(tmp_path):
    config = Config()
    config.optim.lr = math.inf
    with pytest.raises(ConfigError, match="optim.lr must be a finite number"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_resolve_device_names_an_unknown_device():
    with pytest.raises(ConfigError, match="train.device .* got 'tpu7'"):
        resolve_device("tpu7")


@pytest.mark.parametrize("alpha", [math.nan, math.inf, -math.inf])
def test_library_regularizer_refuses_non_finite_alpha(alpha):
    with pytest.raises(ValueError, match=f"alpha must be a finite number, got {alpha}"):
        SelectivityRegularizer(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), alpha=alpha, num_classes=2, layers="1")


def test_library_regularizer_refuses_bad_eps():
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        SelectivityRegularizer(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), alpha=1.0, num_classes=2, layers="1",
                               eps=float("nan"))
