"""Cost of ``population.csv`` (`selectivity analyze --population`) on one CPU thread.

Every regularized layer of the demo ResNet (``layer1.0``, ``layer2.0``, ``layer3.0``: 16, 32 and
64 units) on the bundled demo set's 5,000 training and 1,000 test images, 10 classes:

  responses    the forward passes that capture the three layers' responses to the 6,000 images
  probe        per layer, the linear probe: six L2 strengths on the held-out 20% (warm starts),
               then the refit on all 5,000 images, scored on the 1,000
  axis gap     per layer, the units against 10 Haar-random bases (on the test responses)
  plain        the three probes again with L-BFGS unpreconditioned (the identity instead of the
               inverse of the features' second moments): what the preconditioner saves

Prints the median over ``--rounds`` of each stage in seconds, the probes' and gaps' total as a
ratio of the forward passes, and the unpreconditioned probes' as a ratio of the preconditioned
ones, each measured in the same round. The network is a freshly
initialized ``resnet_demo`` (seed 0), or a trained run's (``--run RUN_DIR``): a trained
network's features are more separable, and a weak strength then needs more L-BFGS iterations.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/population_cost.py [--rounds 3] [--run RUN_DIR]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from selectivity.analysis import population
from selectivity.analysis.population import axis_gap, linear_probe
from selectivity.commands.population import layer_responses
from selectivity.data import DeviceLoader, load_split
from selectivity.models import create_model


def model_and_data(run: str | None):
    train = load_split("demo", "train", progress=False)
    test = load_split("demo", "test", progress=False)
    if run is None:
        torch.manual_seed(0)
        model = create_model("resnet_demo", 10)
    else:
        from selectivity.runs import open_run

        model = open_run(run, device="cpu").model
    return model.eval(), train, test


def one_round(model, train, test) -> dict[str, float]:
    times: dict[str, float] = {}
    start = time.perf_counter()
    train_x, train_y = layer_responses(model, DeviceLoader(train, 512, "cpu", shuffle=False))
    test_x, test_y = layer_responses(model, DeviceLoader(test, 512, "cpu", shuffle=False))
    times["responses"] = time.perf_counter() - start
    for name in train_x:
        start = time.perf_counter()
        probe = linear_probe(train_x[name], train_y, test_x[name], test_y)
        times[f"probe {name} ({train_x[name].shape[1]} units)"] = time.perf_counter() - start
        times[f"_strength {name}"] = probe.strength
        times[f"_accuracy {name}"] = probe.accuracy
        start = time.perf_counter()
        axis_gap(test_x[name], test_y, 10, rotations=10)
        times[f"axis gap {name}"] = time.perf_counter() - start
    preconditioner = population._Objective.precondition
    population._Objective.precondition = lambda self, g: g.clone()
    try:
        start = time.perf_counter()
        for name in train_x:
            linear_probe(train_x[name], train_y, test_x[name], test_y)
        times["_plain"] = time.perf_counter() - start
    finally:
        population._Objective.precondition = preconditioner
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--run", help="a trained run directory of the demo config (default: a fresh resnet_demo)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, train, test = model_and_data(args.run)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, {len(train.labels)} train and "
          f"{len(test.labels)} test images, network: {args.run or 'resnet_demo, fresh (seed 0)'}")
    rounds = [one_round(model, train, test) for _ in range(args.rounds)]
    stages = [k for k in rounds[0] if not k.startswith("_")]
    median = {k: statistics.median(r[k] for r in rounds) for k in stages}
    work = [statistics.fmean(sum(v for k, v in r.items() if k.startswith(("probe", "axis"))) for r in rounds)]
    ratios = [sum(v for k, v in r.items() if k.startswith(("probe", "axis"))) / r["responses"] for r in rounds]
    print(f"{'stage':<40} {'median s':>9}")
    for stage in stages:
        print(f"{stage:<40} {median[stage]:>9.3f}")
    total = [sum(v for k, v in r.items() if not k.startswith("_")) for r in rounds]
    print(f"{'probes and gaps, all layers':<40} {work[0]:>9.3f}  (mean over rounds)")
    print(f"{'total':<40} {statistics.median(total):>9.3f}")
    print(f"probes and gaps / forward passes: {statistics.median(ratios):.2f}x (median of the rounds' ratios)")
    probes = [sum(v for k, v in r.items() if k.startswith("probe")) for r in rounds]
    plain = statistics.median(r["_plain"] / p for r, p in zip(rounds, probes))
    print(f"probes unpreconditioned: {statistics.median(r['_plain'] for r in rounds):.3f} s, {plain:.1f}x the "
          "preconditioned probes (median of the rounds' ratios)")
    chosen = ", ".join(f"{k.split()[1]} L2 {rounds[0][k]:g} acc {rounds[0]['_accuracy ' + k.split()[1]]:.3f}"
                       for k in rounds[0] if k.startswith("_strength"))
    # the unpreconditioned probes reach the same minima: same strengths and accuracies (checked in the tests)
    print(f"chosen: {chosen}")


if __name__ == "__main__":
    main()
