"""Selectivity over training: when it is recorded, what a row holds, and that resuming keeps it whole."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from selectivity.core import PerEpochAlpha
from selectivity.config import ConfigError, load_config
from selectivity.train.record import balanced_subset
from selectivity.train.trainer import load_data, train


def test_per_epoch_alpha_reads_ranadives_form():
    s = PerEpochAlpha.parse("0*5 -20*15")
    assert len(s.alphas) == 20 and s.alphas[:5] == (0.0,) * 5 and s.alphas[5:] == (-20.0,) * 15
    assert s.strength == -20.0 and s.alpha_at(4.9) == 0.0 and s.alpha_at(5.0) == -20.0 and s.alpha_at(99) == -20
    assert s(0, 3.0) == 0.0 and s(0, 7.5) == 1.0  # a multiplier of alpha = strength
    assert PerEpochAlpha.parse("1 2*2 -3").alphas == (1.0, 2.0, 2.0, -3.0)
    for bad in ("", "0*0", "x*3", "1*nan", "0*5,-20*15", "0*2 -2*", "*3"):
        with pytest.raises(ValueError, match="alpha schedule"):
            PerEpochAlpha.parse(bad)


def test_a_schedule_sets_alpha_and_refuses_contradictions():
    config = load_config("demo", ["regularizer.schedule=0*2 -5*6"])
    assert config.regularizer.alpha == -5.0
    assert load_config("demo", ["regularizer.schedule=0*2 -5*6", "regularizer.alpha=-5"]).regularizer.alpha == -5.0
    with pytest.raises(ConfigError, match="regularizer.alpha is -1 but regularizer.schedule"):
        load_config("demo", ["regularizer.schedule=0*2 -5*6", "regularizer.alpha=-1"])
    with pytest.raises(ConfigError, match="regularizer.schedule: alpha schedule"):
        load_config("demo", ["regularizer.schedule=soon"])
    with pytest.raises(ConfigError, match="record.every"):
        load_config("demo", ["record.every=0"])


@pytest.mark.parametrize("schedule,epochs", [("0*2 -2*6", 2), ("0*2", 8), ("0*2 -2*6", 9)])
def test_a_schedule_must_spell_out_every_epoch_of_training(schedule, epochs):
    """A schedule longer than the run would record an alpha it never trained with; a shorter one would
    leave epochs unsaid: both are one-line errors naming the counts."""
    with pytest.raises(ConfigError, match=rf"spells out {len(PerEpochAlpha.parse(schedule).alphas)} epochs but "
                                          rf"train.epochs is {epochs}"):
        load_config("demo", [f"regularizer.schedule={schedule}", f"train.epochs={epochs}"])


def test_a_sweep_with_a_schedule_the_epochs_do_not_cover_exits_2_before_writing(tmp_path, capsys):
    from selectivity.cli import main

    out = tmp_path / "sweep"
    assert main(["sweep", "demo", "--schedules", "0*2 -2*6,0*2", "--seeds", "0", "--out", str(out),
                 "--set", "train.epochs=2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "spells out 8 epochs but train.epochs is 2" in err and len(err.splitlines()) == 1
    assert not out.exists()
    assert main(["sweep", "demo", "--schedules", "0*2 -2*", "--seeds", "0", "--out", str(out), "--no-progress"]) == 2
    assert "'-2*' should read VALUE*EPOCHS" in capsys.readouterr().err
    assert not out.exists()


def test_the_recording_subset_is_class_balanced_and_fixed(cache_dir):
    _, test = load_data(load_config("demo", [f"data.cache_dir={cache_dir}"]), progress=False)
    a, b = balanced_subset(test, 7), balanced_subset(test, 7)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.images, b.images)
    assert torch.bincount(a.labels, minlength=10).tolist() == [7] * 10


def _record_overrides(tiny_overrides, epochs=3):
    return tiny_overrides + [f"train.epochs={epochs}", "record.enabled=true", "record.first_epochs=1",
                             "record.every=2", "record.per_epoch=2", "record.per_class=5",
                             "regularizer.schedule=0*1 -2*2"]


def test_recording_from_initialization_with_the_alpha_in_effect(tmp_path, tiny_overrides):
    config = load_config("demo", _record_overrides(tiny_overrides))
    final = train(config, tmp_path / "run", progress=False)
    assert final["schedule"] == "0*1 -2*2" and final["alpha"] == -2.0
    rows = pd.read_csv(tmp_path / "run" / "si_over_training.csv")
    # epoch 0 (init); 1 (first_epochs=1), 2 (every 2), 3 (the end), each with a half-way point
    epochs = sorted(rows["epoch"].unique())
    assert epochs == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    units = rows.groupby("epoch").size()
    assert (units == units.iloc[0]).all() and units.iloc[0] == 16 + 32 + 64  # every unit of the 3 blocks
    alpha = rows.groupby("epoch")["alpha"].first()
    # The alpha the recorded weights were trained with: epoch 1 (0-based 0) trained at 0, not the next -2.
    assert alpha.to_dict() == {0.0: 0.0, 0.5: 0.0, 1.0: 0.0, 1.5: -2.0, 2.0: -2.0, 2.5: -2.0, 3.0: -2.0}
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["alpha_now"] for r in logged] == [0.0, -2.0, -2.0] and {r["alpha"] for r in logged} == {-2.0}
    assert rows["si"].between(0, 1).all() and set(rows["stage"]) == {"layer1", "layer2", "layer3"}
    last = rows[rows["epoch"] == 3.0]
    si = pd.read_csv(tmp_path / "run" / "si_per_unit.csv")
    assert len(last) == len(si)  # same units as the final per-unit table (on another image set)


def test_a_run_killed_after_recording_resumes_with_each_row_once(tmp_path, tiny_overrides, monkeypatch):
    """Killed between the last epoch's recording and its checkpoint: the redone epoch records again,
    and the table equals an uninterrupted run's."""
    import selectivity.train.trainer as trainer

    config = load_config("demo", _record_overrides(tiny_overrides))
    train(config, tmp_path / "full", progress=False)
    real_save, calls = trainer.save_checkpoint, []

    def killed_at_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_save(*args, **kwargs)

    monkeypatch.setattr(trainer, "save_checkpoint", killed_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "cut", progress=False)
    assert pd.read_csv(tmp_path / "cut" / "si_over_training.csv")["epoch"].max() == 3.0  # recorded, not saved
    monkeypatch.setattr(trainer, "save_checkpoint", real_save)
    train(config, tmp_path / "cut", progress=False)
    full = pd.read_csv(tmp_path / "full" / "si_over_training.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "cut" / "si_over_training.csv"), full)
