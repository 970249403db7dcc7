"""The GPU check of issue 12, run by benchmarks/gpu.sh: everything measured, one Markdown table.

Rows: the CUDA tests; the fast recipe (resnet20_cifar10_fast) at alpha -1, 0, +1 (test accuracy,
mean SI, training seconds); a grid of ResNet20s stacked against one after another; the
regularizer's overhead (alpha = -1 against alpha = 0 seconds per epoch, from the same runs);
SelectivityMeter throughput against plain inference. Budget: <= 8 minutes on one H100/H200.

``--dry-run`` does the same on the CPU with the bundled demo set and tiny sizes (a test runs it).
Only torch, numpy, PIL, yaml, safetensors, tqdm and pandas are needed (no submitit, matplotlib
or pyarrow): the sweeps here use the in-process executors.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".cache/gpu-data/cifar10-gpu.zip"
CUDA_TESTS = ["tests/core/test_functional.py", "tests/data/test_data_loader.py", "tests/train/test_stacked.py"]


def cuda_tests(dry: bool) -> str:
    """Pass/skip/fail counts of the test files that hold the CUDA tests (stacked ones included)."""
    selection = ["-k", "cuda"] if dry else ["-m", "not slow"]
    done = subprocess.run([sys.executable, "-m", "pytest", *CUDA_TESTS, "-q", "-p", "no:cacheprovider", *selection],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    lines = [line for line in done.stdout.splitlines() if re.search(r"\d+ (passed|failed|skipped|deselected)", line)]
    return lines[-1].strip("= ") if lines else f"pytest exited {done.returncode}: {done.stderr.strip()[-200:]}"


def recipe(dry: bool, source: str, out: Path):
    """The fast recipe at alpha -1, 0, +1, one run after another: its results table."""
    from selectivity.sweep import run_sweep

    if dry:
        config, overrides = "demo", ["train.epochs=1", "train.device=cpu", "data.train_per_class=20",
                                     "data.test_limit=100", "train.batch_size=50"]
    else:
        config, overrides = "resnet20_cifar10_fast", [f"data.source={source}", "train.device=cuda"]
    outcome = run_sweep(config, "-1,0,1", "0", out, executor="debug", overrides=overrides, progress=False, retries=0)
    return outcome.results, config, overrides


def stacked_ratio(dry: bool, source: str) -> str:
    """benchmarks/stacked_grid.py: 16 ResNet20s x 2 epochs, stacked vs one after another."""
    if dry:
        argv = ["--networks", "3", "--epochs", "1", "--per-class", "20", "--test-limit", "100", "--rounds", "1",
                "--ways", "stacked,sequential", "--set", "train.batch_size=50"]
    else:
        argv = ["--config", "resnet20_cifar10_fast", "--device", "cuda", "--networks", "16", "--epochs", "2",
                "--per-class", "0", "--test-limit", "0", "--rounds", "1", "--ways", "stacked,sequential",
                "--set", f"data.source={source}", "train.eval_every=100"]
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/stacked_grid.py"), *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=420)
    rows = [line for line in done.stdout.splitlines() if line.startswith("| sequential")]
    if done.returncode or not rows:
        return f"failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}"
    seq = float(rows[0].split("|")[3].strip().rstrip("x"))
    head = [line for line in done.stdout.splitlines() if "networks (" in line]
    return f"one after another takes {seq:.2f}x the stacked time ({head[0].strip() if head else ''})"


@torch.no_grad()
def meter_throughput(dry: bool, device: torch.device, source: str) -> tuple[float, float]:
    """Images/s of plain inference and of inference under SelectivityMeter (bf16 on CUDA)."""
    from selectivity.core import SelectivityMeter
    from selectivity.data import DeviceLoader
    from selectivity.models import create_model
    from selectivity.config import load_config
    from selectivity.train.trainer import load_data

    overrides = ["data.test_limit=200", "data.train_per_class=1"] if dry else [f"data.source={source}"]
    config = load_config("demo" if dry else "resnet20_cifar10_fast", overrides)
    _, test = load_data(config, progress=False)
    model = create_model("resnet_demo" if dry else "resnet20", num_classes=10).to(device).eval()
    loader = DeviceLoader(test, 1024 if not dry else 100, device, shuffle=False)
    amp = device.type == "cuda"

    def plain():
        for x, _ in loader:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                model(x)

    def metered():
        with SelectivityMeter(model, 10) as meter:
            for x, y in loader:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    model(x)
                meter.update_activations(meter.probe.collect(batch_size=y.shape[0]), y)
            meter.compute()

    seconds = {"plain": [], "meter": []}
    for _ in range(1 if dry else 5):  # interleaved rounds; the first is a warm-up on the GPU
        for name, fn in (("plain", plain), ("meter", metered)):
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds[name].append(time.perf_counter() - started)
    n = len(test.labels)
    best = {k: min(v[1:] or v) for k, v in seconds.items()}
    return n / best["plain"], n / best["meter"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="a tiny CPU grid on the bundled demo set")
    parser.add_argument("--data", default=str(DATA), help="the CIFAR-10 zip (benchmarks/pack_gpu_data.py)")
    args = parser.parse_args()
    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --dry-run, or on a GPU machine")
    if not dry and not Path(args.data).exists():
        raise SystemExit(f"{args.data} is missing: run benchmarks/pack_gpu_data.py here and carry .cache/gpu-data")
    device = torch.device("cpu" if dry else "cuda")
    name = "CPU (dry run)" if dry else torch.cuda.get_device_name(0)
    started = time.perf_counter()
    rows = [("device", f"{name}, torch {torch.__version__}, {os.cpu_count()} CPUs")]
    rows.append(("CUDA tests", cuda_tests(dry)))
    with tempfile.TemporaryDirectory() as tmp:
        table, config, _ = recipe(dry, args.data, Path(tmp) / "recipe")
    per_epoch = {}
    for _, r in table.iterrows():
        per_epoch[r.alpha] = r.train_seconds / r.epochs
        rows.append((f"{config} alpha={r.alpha:+g}", f"test acc {r.test_acc:.4f}, mean SI {r.mean_si:.4f}, "
                     f"train {r.train_seconds:.1f} s ({r.epochs} epochs)"))
    if -1.0 in per_epoch and 0.0 in per_epoch:
        ratio = per_epoch[-1.0] / per_epoch[0.0]
        rows.append(("regularizer overhead", f"alpha=-1 / alpha=0 seconds per epoch: {ratio:.3f}x (target <= 1.02x)"))
    rows.append(("stacked vs one after another", stacked_ratio(dry, args.data) + " (target >= 5x on a GPU)"))
    plain, metered = meter_throughput(dry, device, args.data)
    rows.append(("SelectivityMeter throughput", f"{metered:,.0f} vs {plain:,.0f} images/s plain: "
                 f"{metered / plain:.2f}x (target >= 0.9x)"))
    rows.append(("total wall time", f"{time.perf_counter() - started:.0f} s"))
    print("| check | result |")
    print("| --- | --- |")
    for key, value in rows:
        print(f"| {key} | {value} |")


if __name__ == "__main__":
    main()
