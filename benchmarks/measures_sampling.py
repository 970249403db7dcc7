"""How far the streamed measures of ``UnitMeasureAccumulator`` (the default of ``selectivity measure``)
lie from the same measures computed on every sample (``unit_measures``, exact).

Synthetic layer: 10 classes, 64 units: 32 dense (a rectified Gaussian, shifted up for one class),
31 sparse (fire on a few percent of the images, more often on one class) and the known-answer unit
(fires on exactly 100 images of class 0, zero elsewhere: its top-100 precision is 1). Two data sets:
10 x 1000 images (balanced), and class sizes from 2000 down to 100 (unequal). For every seed the
data are streamed in batches of 500 into an accumulator with its defaults; the first table gives
the mean over seeds and units of (streamed - exact), and the streamed precision of the known-answer unit.
(Before issue 16 the default kept a class-balanced reservoir of 100 per class for every measure
but SI, sparseness and d'; now only AUROC, informedness and MI can be sampled, and by default
nothing is.)

The second table (new API only) samples on purpose: ``sample_size=1000`` (the old default's memory),
uniform over the data or ``balanced``; for each measure the mean of (sampled - exact) (the bias),
the root mean square of (sampled - exact) over seeds and units (the error), and the root mean
square of the estimated standard error (``sampling_errors``), which should match the error where
the bias is small.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/measures_sampling.py [--seeds 8]
"""

from __future__ import annotations

import argparse
import inspect

import numpy as np
import torch

from selectivity.analysis.measures import UnitMeasureAccumulator, unit_measures

C = 10
MEASURES = ["precision", "top_class", "localist_gap", "auroc", "informedness", "mi"]
SAMPLED = ["auroc", "informedness", "mi"]


def layer(sizes, seed):
    gen = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])
    y = y[torch.randperm(len(y), generator=gen)]
    n = len(y)
    pref = torch.randint(0, C, (64,), generator=gen)
    onehot = (y.unsqueeze(1) == pref.unsqueeze(0)).double()  # (N, 64)
    offsets = 0.3 * torch.randn(C, 64, generator=gen, dtype=torch.float64)
    dense = (torch.randn(n, 64, generator=gen, dtype=torch.float64) + offsets[y] + 1.5 * onehot).clamp(min=0)
    rate = 0.01 + 0.1 * onehot  # sparse: 1% of other images, 11% of the preferred class's
    fires = torch.rand(n, 64, generator=gen, dtype=torch.float64) < rate
    sparse = torch.where(fires, torch.empty(n, 64, dtype=torch.float64).exponential_(1.0, generator=gen) + 0.1, 0.0)
    acts = torch.cat([dense[:, :32], sparse[:, 32:63], torch.zeros(n, 1, dtype=torch.float64)], dim=1)
    zeros = (y == 0).nonzero().squeeze(1)
    acts[zeros[:100], 63] = 1.0  # the known-answer unit
    return acts, y


def compare(sizes, seeds):
    diffs = {kind: {m: [] for m in MEASURES} for kind in ("dense", "sparse")}
    known = []
    for seed in range(seeds):
        acts, y = layer(sizes, seed)
        exact = unit_measures(acts, y, C, measures=MEASURES)
        acc = UnitMeasureAccumulator(C, MEASURES, seed=seed)
        for chunk in torch.split(torch.arange(len(y)), 500):
            acc.update(acts[chunk], y[chunk])
        streamed = acc.to_frame()
        for m in MEASURES:
            d = (streamed[m] - exact[m]).to_numpy()
            diffs["dense"][m].append(d[:32])
            diffs["sparse"][m].append(d[32:63])
        known.append(float(streamed["precision"].iloc[63]))
        assert float(exact["precision"].iloc[63]) == 1.0
    return diffs, known


def sampled(sizes, seeds, balanced):
    rows = {m: {"diff": [], "se": []} for m in SAMPLED}
    for seed in range(seeds):
        acts, y = layer(sizes, seed)
        exact = unit_measures(acts[:, :63], y, C, measures=SAMPLED)
        acc = UnitMeasureAccumulator(C, SAMPLED, sample_size=1000, balanced=balanced, seed=seed)
        for chunk in torch.split(torch.arange(len(y)), 500):
            acc.update(acts[chunk, :63], y[chunk])
        got, se = acc.to_frame(), acc.sampling_errors()
        for m in SAMPLED:
            rows[m]["diff"].append((got[m] - exact[m]).to_numpy())
            rows[m]["se"].append(se[m].numpy())
    return {m: (np.mean(np.concatenate(r["diff"])), np.sqrt(np.mean(np.concatenate(r["diff"]) ** 2)),
                np.sqrt(np.mean(np.concatenate(r["se"]) ** 2))) for m, r in rows.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    balanced = [1000] * C
    unequal = np.geomspace(2000, 100, C).round().astype(int).tolist()
    print(f"mean of (streamed - exact) over {args.seeds} seeds; 64 units (32 dense, 31 sparse, 1 known-answer)")
    print(f"{'data':<28} {'units':<7}" + "".join(f"{m:>14}" for m in MEASURES))
    for name, sizes in (("10 x 1000 (balanced)", balanced), (f"unequal {sizes_text(unequal)}", unequal)):
        diffs, known = compare(sizes, args.seeds)
        for kind in ("dense", "sparse"):
            print(f"{name:<28} {kind:<7}" + "".join(f"{np.mean(np.concatenate(diffs[kind][m])):>+14.4f}"
                                                   for m in MEASURES))
        print(f"{name:<28} known-answer unit: streamed precision {np.mean(known):.3f} (exact 1.000)")
    if "sample_size" not in inspect.signature(UnitMeasureAccumulator).parameters:
        return
    print(f"\nsample_size=1000 on purpose, 63 units x {args.seeds} seeds: bias, RMS error, RMS estimated SE")
    print(f"{'data':<28} {'sample':<9}" + "".join(f"{m:>28}" for m in SAMPLED))
    for name, sizes in (("10 x 1000 (balanced)", balanced), (f"unequal {sizes_text(unequal)}", unequal)):
        for kind in ("uniform", "balanced"):
            table = sampled(sizes, args.seeds, kind == "balanced")
            print(f"{name:<28} {kind:<9}" + "".join(f"{b:>+10.4f} {e:>8.4f} {s:>8.4f}" for b, e, s in table.values()))


def sizes_text(sizes):
    return f"{sizes[0]}..{sizes[-1]}"


if __name__ == "__main__":
    main()
