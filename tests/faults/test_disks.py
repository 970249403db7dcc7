"""A read-only run directory and a full disk: one line naming the file (exit 2), nothing lost.

As root a chmod does not stop writes, so both are simulated where the bytes go: the
temporary file cannot be made (EROFS), or writing it fails half-way (ENOSPC).
"""

from __future__ import annotations

import errno
import tempfile

import matplotlib.figure
import pandas as pd
import pytest

from .conftest import snapshot


@pytest.fixture
def read_only(monkeypatch):
    def refuse(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)


def _fill_disk(monkeypatch):
    """Every CSV and figure write fails after a first partial chunk, as ENOSPC does."""

    def half_then_fail(self, path, *args, **kwargs):
        with open(path, "w") as f:
            f.write("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_fail)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_then_fail)


@pytest.fixture
def full_disk(monkeypatch):
    _fill_disk(monkeypatch)


def _no_temporaries(folder):
    return [p.name for p in folder.rglob(".*") if p.is_file() and not p.name.endswith(".lock")]


def test_measure_into_a_read_only_run(finished_run, read_only, cli, one_line):
    before = snapshot(finished_run)
    code, _, err = cli(["measure", finished_run, "--no-progress"])
    line = one_line(err)
    assert code == 2 and f"cannot write {finished_run}/measure-" in line and "Read-only file system" in line
    assert snapshot(finished_run) == before


def test_measure_on_a_full_disk(finished_run, full_disk, cli, one_line):
    before = snapshot(finished_run)
    code, _, err = cli(["measure", finished_run, "--no-progress"])
    line = one_line(err)
    assert code == 2 and f"cannot write {finished_run}/measure-cifar10-demo-test.csv" in line
    assert "No space left on device" in line
    assert snapshot(finished_run) == before and not _no_temporaries(finished_run)


def test_report_on_a_full_disk_keeps_the_previous_report(finished_run, cli, one_line, monkeypatch):
    sweep = finished_run.parent
    assert cli(["report", sweep, "--bootstrap", "200"])[0] == 0
    before = snapshot(sweep)
    _fill_disk(monkeypatch)
    code, _, err = cli(["report", sweep, "--bootstrap", "200"])
    line = one_line(err)
    assert code == 2 and f"cannot write {sweep}/" in line and "No space left on device" in line
    assert snapshot(sweep) == before and not _no_temporaries(sweep)  # the earlier report is whole


def test_train_into_a_read_only_directory(tmp_path, read_only, cli, one_line, tiny_sets):
    code, _, err = cli(["train", "demo", "--out", tmp_path / "run", "--no-progress", *tiny_sets])
    line = one_line(err)
    assert code == 2 and f"{tmp_path / 'run'}" in line and "Read-only file system" in line


def test_cli_names_a_file_for_any_other_write_error(monkeypatch, cli, one_line, tmp_path):
    # An OSError that no writer wrapped (here from the sweep's code) still ends in one line.
    import selectivity.sweep.runner as runner

    def boom(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "sw" / "sweep.json"))

    monkeypatch.setattr(runner, "run_sweep", boom)
    code, _, err = cli(["sweep", "demo", "--alphas", "0", "--seeds", "0", "--out", tmp_path / "sw"])
    assert code == 2 and one_line(err).endswith(f"{tmp_path / 'sw' / 'sweep.json'}: No space left on device")


def _safetensors_full(monkeypatch):
    """safetensors reports a full disk as its own SafetensorError (not an OSError), after a partial write."""
    from safetensors import SafetensorError

    from selectivity.runs import tensors

    def half_then_fail(data, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                              '"No space left on device" })')

    monkeypatch.setattr(tensors, "save_file", half_then_fail)


def test_train_on_a_full_disk_is_one_line_and_can_be_retried(tmp_path, cli, one_line, tiny_sets, monkeypatch):
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        _safetensors_full(patch)
        code, _, err = cli(["train", "demo", "--out", run, "--no-progress", *tiny_sets])
    line = one_line(err)
    assert code == 2 and "No space left on device" in line and str(run) in line
    assert not _no_temporaries(run)
    code, _, err = cli(["train", "demo", "--out", run, "--no-progress", *tiny_sets])  # space again: it finishes
    assert code == 0, err and (run / "final.json").is_file()


def test_robustness_on_a_full_disk_keeps_what_was_there(finished_run, cli, one_line, monkeypatch):
    args = ["robustness", finished_run, "--corruptions", "contrast", "--severities", "1", "--attacks", "fgsm",
            "--eps", "2/255", "--limit", "16", "--no-progress"]
    before = snapshot(finished_run)
    _safetensors_full(monkeypatch)
    code, _, err = cli(args)
    line = one_line(err)
    assert code == 2 and "attack_outcomes.safetensors" in line and "No space left on device" in line
    assert snapshot(finished_run) == before and not _no_temporaries(finished_run)
