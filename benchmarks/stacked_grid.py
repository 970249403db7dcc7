"""Wall time of one alpha x seed grid trained three ways, interleaved in one run, as ratios.

  stacked     selectivity sweep --executor stacked: the grid as one stacked model, one process
  sequential  --executor debug: one run after another in this process
  jobs2       --executor local --jobs 2: two training processes at once

Each round trains the whole grid once per way, into fresh directories, in a rotated order,
so that drifts of the machine hit all three alike; the medians over rounds are compared.
The in-process ways use ``--threads`` torch threads (default: all CPUs); each of the two
processes of jobs2 gets half the CPUs. On a busy machine, compare with ``--threads 1`` too:
threads that wait on each other suffer most when other processes take the cores.
Evaluation and run-directory files are inside the timings, as in a real sweep.

Usage:
  PYTHONPATH=src python benchmarks/stacked_grid.py [--networks 8] [--epochs 2] [--per-class 200]
      [--rounds 2] [--config demo] [--device cpu] [--ways stacked,sequential,jobs2] [--set KEY=VALUE ...]
On a GPU: --config resnet20_cifar10_fast --device cuda --ways stacked,sequential (see benchmarks/gpu.sh).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from selectivity.sweep import run_sweep

WAYS = {"stacked": {"executor": "stacked"}, "sequential": {"executor": "debug"},
        "jobs2": {"executor": "local", "jobs": 2}}


def grid(networks: int) -> tuple[list[float], list[int]]:
    """alphas -1, 0, +1 (then more) times as many seeds as it takes to reach ``networks`` runs."""
    alphas = [-1.0, 0.0, 1.0, -0.5, 0.5, -2.0, 2.0]
    if networks <= len(alphas):
        return alphas[:networks], [0]
    seeds = -(-networks // 2)
    return [-1.0, 1.0], list(range(seeds))


def time_way(way: str, args, alphas, seeds, root: Path, threads: int) -> float:
    overrides = [f"train.epochs={args.epochs}", f"train.device={args.device}", *args.set]
    if args.per_class:
        overrides.append(f"data.train_per_class={args.per_class}")
    if args.test_limit:
        overrides.append(f"data.test_limit={args.test_limit}")
    if way != "jobs2" and args.device == "cpu":
        overrides.append(f"train.threads={threads}")
    started = time.perf_counter()
    outcome = run_sweep(args.config, alphas, seeds, root, overrides=overrides, progress=False, retries=0,
                        **WAYS[way])
    seconds = time.perf_counter() - started
    if not outcome.ok or len(outcome.finished) != len(alphas) * len(seeds):
        raise SystemExit(f"{way}: the grid did not finish: failed {outcome.failed}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--per-class", type=int, default=200, help="training images per class (0: all)")
    parser.add_argument("--test-limit", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--config", default="demo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ways", default="stacked,sequential,jobs2")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads, in-process ways")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    ways = args.ways.split(",")
    alphas, seeds = grid(args.networks)
    threads = args.threads
    seconds: dict[str, list[float]] = {w: [] for w in ways}
    with tempfile.TemporaryDirectory() as tmp:
        # A first tiny sweep decodes the data into the cache, outside the timings.
        run_sweep(args.config, "0", "0", Path(tmp) / "warm", executor="debug", progress=False, retries=0,
                  overrides=["train.epochs=1", f"train.device={args.device}", "data.train_per_class=2",
                             "data.test_limit=10", "train.batch_size=10", *args.set])
        for r in range(args.rounds):
            for way in ways[r % len(ways):] + ways[: r % len(ways)]:
                seconds[way].append(time_way(way, args, alphas, seeds, Path(tmp) / f"{way}-{r}", threads))
                print(f"round {r}: {way} {seconds[way][-1]:.1f} s", flush=True)
    median = {w: statistics.median(s) for w, s in seconds.items()}
    base = median.get("stacked", next(iter(median.values())))
    print(f"\n{len(alphas) * len(seeds)} networks ({args.config}, {args.epochs} epochs, "
          f"{args.per_class or 'all'} images/class, {args.device}, {threads} torch threads in-process, "
          f"{os.cpu_count()} CPUs), {args.rounds} rounds\n")
    print("| way | median wall s | time / stacked |")
    print("| --- | --- | --- |")
    for way in ways:
        print(f"| {way} | {median[way]:.1f} | {median[way] / base:.2f}x |")


if __name__ == "__main__":
    main()
