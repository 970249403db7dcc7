"""The stacked executor: a sweep's runs as stacks, with the same results table as run one by one."""

import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from selectivity.sweep import collect_results, run_sweep
from selectivity.sweep.grid import SweepError
from selectivity.sweep.stacked import group_stacks
from selectivity.train.stacked import StackError

CLI = [sys.executable, "-m", "selectivity.cli"]


def _overrides(cache_dir, *extra):
    # float64: there stacked and lone runs agree to rounding; in float32 they part after some steps
    # (see tests/train/test_stacked.py), at a point that depends on the processor.
    return [f"data.cache_dir={cache_dir}", "data.train_per_class=20", "data.test_limit=200", "train.batch_size=50",
            "train.threads=1", "regularizer.warmup_epochs=1", "train.epochs=2", "train.dtype=float64", *extra]


def _cli(*argv, env=None):
    return subprocess.run(CLI + [str(a) for a in argv], capture_output=True, text=True, timeout=600, env=env)


def test_runs_are_grouped_by_recipe_and_cut_into_stacks_of_m():
    a = {"model": {"name": "resnet_demo"}, "regularizer": {"alpha": 0.0}, "train": {"seed": 0}}

    def run(alpha, seed, model="resnet_demo"):
        return ({**a, "model": {"name": model}, "regularizer": {"alpha": alpha}, "train": {"seed": seed}}, "dir")

    args = [run(-1, 0), run(0, 0, "resnet20"), run(0, 1), run(1, 0), run(1, 1, "resnet20"), run(1, 2)]
    assert group_stacks(args, None) == [[0, 2, 3, 5], [1, 4]]
    assert group_stacks(args, 3) == [[0, 2, 3], [5], [1, 4]]


@pytest.mark.slow
def test_a_float64_stacked_sweep_equals_local_runs_through_the_cli_on_every_weight(tmp_path, cache_dir):
    """What a user runs to check it: `sweep --executor stacked` and `--executor local` with
    train.dtype=float64, then `selectivity compare` of the two sweeps (exit 0 within 1e-9)."""
    grid = ["--alphas=-1,0,1", "--seeds", "0", "--no-progress", "--set", *_overrides(cache_dir)]
    stacked_dir, local_dir = tmp_path / "stacked", tmp_path / "local"
    done = _cli("sweep", "demo", "--executor", "stacked", "--stack", "2", "--out", stacked_dir, *grid)
    assert done.returncode == 0, done.stderr[-3000:]
    done = _cli("sweep", "demo", "--executor", "local", "--out", local_dir, *grid)
    assert done.returncode == 0, done.stderr[-3000:]
    s, a = pd.read_csv(stacked_dir / "results.csv"), pd.read_csv(local_dir / "results.csv")
    assert len(s) == 3 and (s.status == "completed").all() and (s.dtype == "float64").all()
    assert s.run.tolist() == a.run.tolist() and s.test_acc.tolist() == a.test_acc.tolist()
    assert s.mean_si.to_numpy() == pytest.approx(a.mean_si.to_numpy(), rel=1e-9)
    assert sorted(c for c in s.columns if c.startswith("si/")) == sorted(c for c in a.columns if c.startswith("si/"))
    assert "settings" not in s.columns  # final.json's settings stay in the run directory
    attempts = [json.loads(line) for p in stacked_dir.glob("*/attempts.jsonl") for line in p.read_text().splitlines()]
    assert sorted(r["stack"] for r in attempts) == [1, 2, 2]  # 3 runs in stacks of at most 2
    compared = _cli("compare", stacked_dir, local_dir)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "equal within rtol 1e-09" in compared.stdout and "of 3 pair(s) of runs" in compared.stdout
    # Run again: nothing is trained, the table is the same.
    again = run_sweep("demo", "-1,0,1", "0", stacked_dir, executor="stacked", stack=2,
                      overrides=_overrides(cache_dir), progress=False)
    assert again.submitted == 0 and again.results.equals(collect_results(sorted(stacked_dir.glob("alpha*"))))


def test_stack_needs_the_stacked_executor_and_a_bad_model_is_refused_before_training(tmp_path, cache_dir):
    with pytest.raises(SweepError, match="--stack needs --executor stacked"):
        run_sweep("demo", "0", "0", tmp_path / "a", executor="debug", stack=2, overrides=_overrides(cache_dir))
    bad = _overrides(cache_dir, "model.name=tests.sweep.test_stacked:Branchy")
    with pytest.raises(StackError, match="cannot be trained stacked"):
        run_sweep("demo", "0,1", "0", tmp_path / "b", executor="stacked", overrides=bad, progress=False)
    assert not list((tmp_path / "b").glob("*/checkpoint.safetensors"))


class Branchy(torch.nn.Module):
    """Branches on its data in Python: vmap cannot run it."""

    selectivity_layers = ("body",)

    def __init__(self, num_classes=10, **kwargs):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
        self.head = torch.nn.Linear(4, num_classes)

    def forward(self, x):
        h = self.body(x).mean(dim=(2, 3))
        return self.head(h if h.sum() > 0 else -h)


@pytest.mark.slow
def test_a_stacked_sweep_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path, cache_dir):
    overrides = _overrides(cache_dir, "train.epochs=5", "data.train_per_class=30")
    argv = ["sweep", "demo", "--alphas=-1,1", "--seeds", "0", "--executor", "stacked", "--no-progress",
            "--set", *overrides]
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    proc = subprocess.Popen(CLI + argv + ["--out", str(killed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(2400):  # up to 2 minutes: two epochs of every network on disk, then kill -9
        rows = [len(p.read_text().splitlines()) for p in killed.glob("*/metrics.jsonl")]
        if len(rows) == 2 and min(rows) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(killed.glob("*/final.json"))
    for out in (killed, whole):
        done = subprocess.run(CLI + argv + ["--out", str(out)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    for run in sorted(p.name for p in whole.iterdir() if (p / "final.json").exists()):
        epochs = [json.loads(line)["epoch"] for line in (killed / run / "metrics.jsonl").read_text().splitlines()]
        assert epochs == [0, 1, 2, 3, 4]
        a, b = load_file(str(killed / run / "weights.safetensors")), load_file(str(whole / run / "weights.safetensors"))
        for key in a:  # a network may resume in a stack of its own: float64, where that is the same
            torch.testing.assert_close(a[key], b[key], rtol=1e-9, atol=1e-12)
    ka, wa = pd.read_csv(killed / "results.csv"), pd.read_csv(whole / "results.csv")
    assert ka.test_acc.tolist() == wa.test_acc.tolist()


def test_a_stack_that_does_not_fit_in_gpu_memory_is_halved_until_it_fits(monkeypatch):
    from selectivity.sweep import stacked

    calls = []

    def fake(configs, dirs, data=None):
        calls.append(len(configs))
        if len(configs) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return [{"run": d} for d in dirs]

    monkeypatch.setattr(stacked, "run_stack", fake)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    args = [({}, f"r{i}") for i in range(5)]
    assert stacked._fitting(list(range(5)), args, None) == [{"run": f"r{i}"} for i in range(5)]
    assert calls == [5, 2, 3, 1, 2]
