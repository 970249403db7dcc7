"""The two examples run to completion as a user runs them, at a tiny size, and say what they measured."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(script: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def _metrics(line: str, steps: int) -> dict:
    match = re.fullmatch(rf"alpha=-1 after {steps} steps: (\{{.*\}})", line)
    assert match, line
    return ast.literal_eval(match.group(1))


@pytest.mark.slow
def test_the_lightning_example_trains_and_measures(tmp_path):
    line = _run("lightning_demo.py", "--alpha", "-1", "--max-steps", "4", "--train-per-class", "20",
                "--val-batches", "1", "--out", "runs/lightning_demo", cwd=tmp_path)
    metrics = _metrics(line, 4)
    assert set(metrics) == {"val_acc", "selectivity/val_si", "selectivity/val_dead_fraction"}
    assert 0 < metrics["selectivity/val_si"] < 1 and 0 <= metrics["selectivity/val_dead_fraction"] <= 1
    logs = "".join(p.read_text() for p in (tmp_path / "runs" / "lightning_demo").glob("**/metrics.csv"))
    assert "selectivity/alpha_now" in logs and "selectivity/batch_si/model.layer3.0" in logs


@pytest.mark.slow
def test_the_hugging_face_example_trains_and_measures(tmp_path):
    line = _run("hf_trainer_demo.py", "--alpha", "-1", "--max-steps", "4", "--train-per-class", "20",
                "--test-limit", "50", "--out", "runs/hf_trainer_demo", cwd=tmp_path)
    metrics = _metrics(line, 4)
    layers = [k for k in metrics if k.startswith("eval_selectivity/si/")]
    assert len(layers) == 4 and all(k.endswith("mlp.activation_fn") for k in layers)  # one per ViT block
    assert 0 < metrics["eval_selectivity/si"] < 1 and 0 <= metrics["eval_accuracy"] <= 1
