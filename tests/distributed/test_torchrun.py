"""torchrun -m selectivity train: 2 gloo processes equal 1 (float64, checked by `selectivity compare`);
kill -9 of all ranks, rerun, same weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _torchrun(out, overrides):
    """``torchrun --standalone --nproc-per-node=2 -m selectivity train demo ...`` in its own process group."""
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "selectivity",
            "train", "demo", "--out", str(out), "--no-progress"] + [a for o in overrides for a in ("--set", o)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def overrides(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    # float64: the suite compares no float32 end state of training with a tolerance (see test_train_ddp.py)
    return [f"data.cache_dir={cache}", "data.train_per_class=30", "data.test_limit=100", "train.epochs=5",
            "train.batch_size=50", "train.threads=1", "regularizer.warmup_epochs=0", "regularizer.alpha=-1",
            "train.dtype=float64"]


def _selectivity(*argv):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "selectivity", *map(str, argv)], capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.mark.slow
def test_torchrun_of_two_processes_equals_one_process_in_float64_as_selectivity_compare_shows(tmp_path, overrides):
    """The check a user runs: the same `train` under torchrun --nproc-per-node=2 and alone, then compare."""
    overrides = overrides + ["train.epochs=2"]
    two = _torchrun(tmp_path / "two", overrides)
    out, err = two.communicate(timeout=600)
    assert two.returncode == 0, err[-3000:]
    one = _selectivity("train", "demo", "--out", tmp_path / "one", "--no-progress",
                       *[a for o in overrides for a in ("--set", o)])
    assert one.returncode == 0, one.stderr[-3000:]
    fa, fb = (json.loads((tmp_path / d / "final.json").read_text()) for d in ("one", "two"))
    assert (fa["processes"], fb["processes"]) == (1, 2) and fa["dtype"] == fb["dtype"] == "float64"
    compared = _selectivity("compare", tmp_path / "one", tmp_path / "two", "--rtol", "1e-9")
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "equal within rtol 1e-09" in compared.stdout and "dtypes float64 and float64" in compared.stdout


@pytest.mark.slow
def test_kill_9_of_every_rank_then_torchrun_again_resumes_to_the_uninterrupted_weights(tmp_path, overrides):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    reference = _torchrun(whole, overrides)
    out, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err[-3000:]
    assert out.count("run directory:") == 1  # rank 0 reports, once
    assert [r["epoch"] for r in _lines(whole / "metrics.jsonl")] == [0, 1, 2, 3, 4]  # each epoch logged once

    proc = _torchrun(killed, overrides)
    for _ in range(6000):  # up to 5 minutes: two epochs on disk, then kill -9 the agent and both ranks
        metrics = killed / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(_lines(killed / "metrics.jsonl"))
    assert 2 <= done < 5 and not (killed / "final.json").exists()
    resumed = _torchrun(killed, overrides)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert [r["epoch"] for r in _lines(killed / "metrics.jsonl")] == [0, 1, 2, 3, 4]
    a, b = load_file(str(killed / "weights.safetensors")), load_file(str(whole / "weights.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-9, atol=1e-12)
    fa, fb = (json.loads((d / "final.json").read_text()) for d in (killed, whole))
    assert fa["processes"] == 2 and fa["test_acc"] == fb["test_acc"]
