"""Training step time of one run on 1 process against 2 processes (torchrun, gloo, CPU).

The demo ResNet on the bundled CIFAR-10 subset, global batch 64, alpha = -1, one thread per
process: ``python -m selectivity train`` against ``torchrun --nproc-per-node=2 -m selectivity
train`` with the same config, alternated round by round. A step's time is an epoch's
``epoch_seconds`` (training only, from metrics.jsonl) over its steps; the first epoch of each
run (warm-up) is left out. On a CPU this is the correctness path: two processes split the
batch but add the all-reduces (gradients, sync batch norm, the selectivity term's class sums).
Usage: python benchmarks/ddp_step.py [--rounds 2] [--epochs 3] [--per-class 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run(processes: int, out: Path, overrides: list[str]) -> list[float]:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
                if processes > 1 else [sys.executable])
    command = [*launcher, "-m", "selectivity", "train", "demo", "--out", str(out), "--no-progress"]
    command += [a for o in overrides for a in ("--set", o)]
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, env=env, capture_output=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    final = json.loads((out / "final.json").read_text())
    assert final["processes"] == processes
    return [row["epoch_seconds"] for row in rows[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=200)
    args = parser.parse_args()
    steps = args.per_class * 10 // 64
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"data.cache_dir={tmp}/cache", f"data.train_per_class={args.per_class}", "data.test_limit=100",
                     f"train.epochs={args.epochs}", f"train.eval_every={args.epochs}", "train.batch_size=64",
                     "train.threads=1", "regularizer.alpha=-1", "regularizer.warmup_epochs=0"]
        times: dict[int, list[float]] = {1: [], 2: []}
        for r in range(args.rounds):
            for processes in (1, 2):
                times[processes] += run(processes, Path(tmp) / f"p{processes}-r{r}", overrides)
    medians = {p: statistics.median(t) / steps for p, t in times.items()}
    print(f"{steps} steps per epoch, global batch 64, {len(times[1])} epochs timed per setting")
    for p, m in medians.items():
        print(f"{p} process{'es' if p > 1 else ''}: median step {m * 1000:.1f} ms ({m / medians[1]:.2f}x)")


if __name__ == "__main__":
    main()
