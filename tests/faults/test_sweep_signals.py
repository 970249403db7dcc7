"""A local sweep under signals: Ctrl-C prints no traceback, a killed command leaves no workers,
and the next command finishes the runs instead of marking them failed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def _start(out: Path, cache: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "selectivity.cli", "sweep", "demo", "--alphas=-1,0", "--seeds", "0",
            "--out", str(out), "--executor", "local", "--jobs", "2", "--no-progress", "--set",
            f"data.cache_dir={cache}", "data.train_per_class=60", "data.test_limit=100", "train.epochs=25",
            "train.batch_size=50", "train.threads=1", "regularizer.warmup_epochs=0"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, text=True)


def _workers(out: Path, polls: int = 600) -> list[int]:
    """The pids holding the two runs' locks, once both have finished an epoch (polled, bounded)."""
    for _ in range(polls):
        locks = sorted(out.glob("*/.run.lock"))
        if len(locks) == 2 and len(list(out.glob("*/checkpoint.safetensors"))) == 2:
            pids = [int(text) for p in locks if (text := p.read_text().strip()).isdigit()]
            if len(pids) == 2:
                return pids
        time.sleep(0.1)
    raise AssertionError("the two runs never started")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_kill_ctrl_c_and_rerun(tmp_path, cache_dir):
    out = tmp_path / "sweep"
    # Ctrl-C: one line, no traceback, from the command or its workers' controllers.
    proc = _start(out, cache_dir)
    _workers(out)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stdout + stderr
    assert "interrupted; run the same command again to resume" in stderr

    # SIGKILL of the command alone: its workers end too (they watch it), bounded wait.
    proc = _start(out, cache_dir)
    pids = _workers(out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    for _ in range(200):
        if not any(_alive(pid) for pid in pids):
            break
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)

    # The next command finishes both runs: none is "being trained by another process".
    proc = _start(out, cache_dir)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    table = pd.read_csv(out / "results.csv")
    assert table["status"].tolist() == ["completed", "completed"] and (table["epochs"] == 25).all()
