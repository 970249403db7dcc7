"""Under strategy="ddp" (2 CPU processes, gloo) the callback's term is the SI of the global batch:
the weights and the logged batch SI equal one process's plain loop on the global batches."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selectivity import SelectivityMeter, SelectivityRegularizer

from .helpers import LAYERS, NUM_CLASSES, plain_loop, relative_difference, tiny_data, tiny_net

SCRIPT = Path(__file__).with_name("lightning_ddp.py")


@pytest.mark.slow
def test_two_ddp_processes_train_the_plain_loop_of_the_global_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "world size 2" in done.stdout

    # Lightning shuffles training data under DDP with torch's DistributedSampler (seed 0): in epoch e
    # the permutation randperm(48) of a generator seeded e, rank r taking every second index from r.
    # Step k of the two ranks together is both ranks' k-th slice of 8: one global batch of 16.
    x, y = tiny_data(48)

    def global_batches(epoch):
        order = torch.randperm(48, generator=torch.Generator().manual_seed(epoch))
        ranks = [order[r::2] for r in range(2)]
        return [(x[i], y[i]) for i in (torch.cat([ranks[0][k:k + 8], ranks[1][k:k + 8]]) for k in range(0, 24, 8))]

    record: list = []
    want = plain_loop(tiny_net(), global_batches, 2,
                      lambda m, spe: SelectivityRegularizer(m, -2.0, NUM_CLASSES, LAYERS, schedule=None), 1, record)
    got = load_file(tmp_path / "weights.safetensors")
    assert relative_difference(got, want.state_dict()) < 1e-9

    [path] = tmp_path.glob("**/metrics.csv")
    rows = list(csv.DictReader(path.open()))
    logged = [float(r["selectivity/batch_si"]) for r in rows if r.get("selectivity/batch_si")]
    assert logged == pytest.approx([s for _, s in record], rel=1e-9)  # the global batch's SI, on rank 0

    # The validation meter summed both ranks' halves of the 20 validation images.
    vx, vy = tiny_data(20, seed=7)
    with SelectivityMeter(want.eval(), NUM_CLASSES, LAYERS) as meter:
        meter.update(vx, vy)
    val = [float(r["selectivity/val_si"]) for r in rows if r.get("selectivity/val_si")]
    assert val[-1] == pytest.approx(meter.compute().mean, rel=1e-8)
