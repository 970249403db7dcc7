"""The run directory under faults: garbled bytes, concurrent commands, kills, umask, bad starts."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import torch

from selectivity.cli import main
from selectivity.runs import (RunBusy, RunError, RunPaths, atomic_write, exclusive, load_tensors, remove_orphans,
                              save_tensors, write_text)


def _sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


@pytest.fixture
def trained(tmp_path, tiny_overrides, capsys):
    """A finished one-epoch demo run."""
    run = tmp_path / "run"
    code = main(["train", "demo", "--out", str(run), "--no-progress"] + _sets(tiny_overrides + ["train.epochs=1"]))
    capsys.readouterr()
    assert code == 0
    return run


def _garble(path: Path) -> None:
    """Flip bytes after the safetensors header: the header (and so the file's shape) stays valid."""
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    for i in range(header + 16, len(data), max(1, (len(data) - header) // 50)):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def test_checksums_catch_bytes_garbled_behind_a_valid_header(tmp_path):
    path = tmp_path / "t.safetensors"
    save_tensors(path, {"a": torch.randn(64, 8), "b": torch.arange(5), "c": torch.tensor(2.0)})
    tensors, meta = load_tensors(path)
    assert set(tensors) == {"a", "b", "c"} and len(meta["sha256"]) == 64
    _garble(path)
    with pytest.raises(RunError, match=r"t.safetensors is corrupt: its tensors do not match the checksum"):
        load_tensors(path)


def test_garbled_weights_make_measure_fail_and_leave_the_run_intact(trained, capsys):
    final_before = (trained / "final.json").read_text()
    _garble(trained / "weights.safetensors")
    code = main(["measure", str(trained), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "weights.safetensors is corrupt" in err and err.count("\n") == 1
    assert (trained / "final.json").read_text() == final_before


def test_a_garbled_checkpoint_is_refused_on_resume(trained, tiny_overrides, capsys):
    (trained / "final.json").unlink()  # as if killed before the end
    _garble(trained / "checkpoint.safetensors")
    code = main(["train", "demo", "--out", str(trained), "--no-progress"] + _sets(tiny_overrides + ["train.epochs=1"]))
    err = capsys.readouterr().err
    assert code == 2 and "checkpoint.safetensors" in err and "corrupt" in err
    assert (trained / "metrics.jsonl").read_text().count("\n") == 1  # the finished epoch is still logged


def test_a_second_train_on_the_same_directory_is_refused(trained, tiny_overrides, capsys):
    (trained / "final.json").unlink()
    metrics = (trained / "metrics.jsonl").read_text()
    with exclusive(RunPaths(trained).lock, "held by the test"):  # flock: a second open conflicts like a process
        code = main(["train", "demo", "--out", str(trained), "--no-progress"] +
                    _sets(tiny_overrides + ["train.epochs=1"]))
    err = capsys.readouterr().err
    assert code == 2 and "is being trained by another process" in err
    assert (trained / "metrics.jsonl").read_text() == metrics


def test_waiting_for_the_lock_is_possible_and_a_held_lock_refuses_at_once(tmp_path):
    lock = tmp_path / "d" / ".run.lock"
    with exclusive(lock, "busy"):
        with pytest.raises(RunBusy, match=rf"busy \(pid {os.getpid()}\)"):
            with exclusive(lock, "busy"):
                pass
    with exclusive(lock, "busy", wait=True):  # free again: no wait
        pass


def test_orphaned_temporaries_are_removed_on_the_next_run(trained, tiny_overrides, capsys):
    orphan = trained / ".checkpoint.safetensors.k2j3h4"
    orphan.write_bytes(b"half a file")
    stranger = trained / ".notes.txt"  # not ours: kept
    stranger.write_text("mine")
    (trained / "final.json").unlink()
    code = main(["train", "demo", "--out", str(trained), "--no-progress"] + _sets(tiny_overrides + ["train.epochs=1"]))
    capsys.readouterr()
    assert code == 0 and not orphan.exists() and stranger.exists()
    assert remove_orphans(tmp := trained / "nothing", ["x"]) == [] and not tmp.exists()


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_text(tmp_path / "a.json", "{}")
        save_tensors(tmp_path / "w.safetensors", {"x": torch.zeros(2)})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o640


def test_a_failed_write_names_the_file_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "final.json"
    write_text(path, "old")

    def full_disk(tmp):
        raise OSError(28, "No space left on device")

    with pytest.raises(RunError, match=r"cannot write .*final.json: No space left on device"):
        atomic_write(path, full_disk)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["final.json"]


def test_a_run_that_fails_at_start_up_leaves_no_directory(tmp_path, tiny_overrides, capsys):
    run = tmp_path / "run"
    bad = tiny_overrides + ["model.name=tests.models.model_factories:no_such_factory"]
    code = main(["train", "demo", "--out", str(run), "--no-progress"] + _sets(bad))
    err = capsys.readouterr().err
    assert code == 2 and "no_such_factory" in err and not run.exists()
    code = main(["train", "demo", "--out", str(run), "--no-progress"] + _sets(tiny_overrides + ["train.epochs=1"]))
    assert code == 0, capsys.readouterr().err


def test_a_relative_data_path_is_stored_resolved(tmp_path, tiny_overrides, capsys, monkeypatch):
    from selectivity.data import demo_path

    work = tmp_path / "work"
    work.mkdir()
    (work / "data.zip").write_bytes(Path(demo_path()).read_bytes())
    monkeypatch.chdir(work)
    sets = _sets(tiny_overrides + ["train.epochs=1"])
    assert main(["train", "demo", "--data", "data.zip", "--out", str(tmp_path / "run"), "--no-progress"] + sets) == 0
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert f"source: {work / 'data.zip'}" in config
    monkeypatch.chdir(tmp_path)  # another directory: measure still finds the data
    assert main(["measure", str(tmp_path / "run"), "--no-progress"]) == 0
    # the same data named by its absolute path is the same run, not "a different config"
    code = main(["train", "demo", "--data", str(work / "data.zip"), "--out", str(tmp_path / "run"),
                 "--no-progress"] + sets)
    assert code == 0, capsys.readouterr().err


def test_train_default_directory_does_not_collide_with_another_config(tmp_path, tiny_overrides, capsys,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "demo", "--no-progress"] + _sets(tiny_overrides + ["train.epochs=1"])) == 0
    assert main(["train", "demo", "--no-progress"] + _sets(tiny_overrides + ["train.epochs=2"])) == 0
    runs = sorted(p.name for p in (tmp_path / "runs" / "demo").iterdir())
    assert len(runs) == 2 and all(r.startswith("alpha+0_seed0-") for r in runs)
    assert main(["train", "demo", "--no-progress"] + _sets(tiny_overrides + ["train.epochs=2"])) == 0  # resumes
    assert len(list((tmp_path / "runs" / "demo").iterdir())) == 2


def test_a_corrupt_sweep_manifest_is_rebuilt_from_the_run_directories(tmp_path, tiny_overrides):
    from selectivity.sweep import SweepError, run_sweep

    out = tmp_path / "sweep"
    overrides = tiny_overrides + ["train.epochs=1"]
    run_sweep("demo", "-1,0", "0", out, executor="debug", overrides=overrides, progress=False)
    finals = {p.parent.name: p.read_text() for p in out.glob("*/final.json")}
    (out / "sweep.json").write_text('{"format": "selectivity-sweep-1", "runs": {')  # cut short
    with pytest.warns(UserWarning, match="rebuilt it from 2 run directories"):
        outcome = run_sweep("demo", "-1,0", "0", out, executor="debug", overrides=overrides, progress=False)
    assert outcome.ok and outcome.submitted == 0 and len(outcome.results) == 2
    assert {p.parent.name: p.read_text() for p in out.glob("*/final.json")} == finals
    assert (out / "sweep.json.corrupt").exists() and len(json.loads((out / "sweep.json").read_text())["runs"]) == 2
    (out / "sweep.json").write_text("garbage")
    with pytest.raises(SweepError, match="holds a sweep of a different config"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_sweep("demo", "-1,0", "0", out, executor="debug", overrides=overrides + ["train.epochs=3"],
                  progress=False)


def test_resuming_on_other_images_at_the_same_path_is_refused(tmp_path, monkeypatch):
    """The data is identified by the checksum of its decoded images, not by its path alone."""
    import shutil
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
    from builders import make_cifar

    import selectivity.train.trainer as trainer
    from selectivity.config import load_config

    folder, _ = make_cifar(tmp_path / "a", per_batch=12, n_test=20, seed=0)
    overrides = [f"data.source={folder}", f"data.cache_dir={tmp_path / 'cache'}", "train.epochs=2",
                 "train.batch_size=10", "train.threads=1", "regularizer.warmup_epochs=0", "data.crop_padding=0"]
    real_save, calls = trainer.save_checkpoint, []

    def killed_at_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_save(*args, **kwargs)

    monkeypatch.setattr(trainer, "save_checkpoint", killed_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(load_config("demo", overrides), tmp_path / "run", progress=False)
    monkeypatch.setattr(trainer, "save_checkpoint", real_save)
    shutil.rmtree(folder)
    make_cifar(tmp_path / "a", per_batch=12, n_test=20, seed=1)  # other pixels, same path and layout
    with pytest.raises(RunError, match="differs from the data .* was trained on"):
        trainer.train(load_config("demo", overrides), tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 1
