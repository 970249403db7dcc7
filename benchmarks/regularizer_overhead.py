"""Cost of the selectivity regularizer in a training step, as ratios measured in one run.

A ResNet18-shaped model for 64x64 inputs and 200 classes (Tiny ImageNet), batch 64, all 8
residual blocks regularized. Four variants of one SGD step, interleaved round by round so
that drifts of the machine hit all of them alike:

  plain      no regularizer attached at all
  alpha=0    SelectivityRegularizer attached with alpha = 0 (must cost nothing)
  alpha=-1   SelectivityRegularizer with alpha = -1 (vectorized over classes, units, layers)
  naive      alpha = -1 with a Python loop over the classes present, as public
             re-implementations compute the class means

Prints the median step time of each and the ratios of medians to the plain step; then
times the selectivity term alone (forward + backward from the 8 blocks' captured
activations), vectorized against the loop, where the convolutions do not hide it.
Usage: python benchmarks/regularizer_overhead.py [--rounds 7] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from selectivity import SelectivityRegularizer
from selectivity.models import create_model


class NaiveRegularizer:
    """The common re-implementation: hooks, then a loop over the classes in the batch."""

    def __init__(self, model, layers, alpha, eps=1e-7):
        self.alpha, self.eps, self.acts = alpha, eps, {}
        modules = dict(model.named_modules())
        self.handles = [modules[n].register_forward_hook(self._hook(n)) for n in layers]

    def _hook(self, name):
        def hook(module, args, output):
            self.acts[name] = output.mean(dim=(2, 3))

        return hook

    def loss(self, labels):
        layer_si = []
        for acts in self.acts.values():
            classes = labels.unique()
            means = torch.stack([acts[labels == c].mean(dim=0) for c in classes])
            mu_max = means.max(dim=0).values
            mu_rest = (means.sum(dim=0) - mu_max) / (len(classes) - 1)
            layer_si.append(((mu_max - mu_rest) / (mu_max + mu_rest + self.eps)).mean())
        return -self.alpha * torch.stack(layer_si).mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    num_classes = 200
    x = torch.rand(args.batch, 3, 64, 64)
    y = torch.randint(0, num_classes, (args.batch,))
    variants = {}
    for name, alpha in [("plain", None), ("alpha=0", 0.0), ("alpha=-1", -1.0), ("naive", -1.0)]:
        model = create_model("resnet18", num_classes=num_classes)
        layers = list(model.selectivity_layers)
        if name == "naive":
            reg = NaiveRegularizer(model, layers, alpha)
        elif alpha is not None:
            reg = SelectivityRegularizer(model, alpha, num_classes, schedule=None)
        else:
            reg = None
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        variants[name] = (model, reg, opt)
    assert len(layers) == 8, layers

    def step(model, reg, opt) -> float:
        start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        if reg is not None:
            loss = loss + reg.loss(y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    for model, reg, opt in variants.values():  # warm-up, outside the timings
        step(model, reg, opt)
    times = {name: [] for name in variants}
    names = list(variants)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order
            times[name].append(step(*variants[name]))
    medians = {n: statistics.median(t) for n, t in times.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"64x64, 200 classes, 8 blocks, {args.rounds} interleaved rounds")
    print(f"{'variant':<10} {'median step (s)':>16} {'ratio to plain':>15}")
    for name, m in medians.items():
        print(f"{name:<10} {m:>16.3f} {m / medians['plain']:>15.3f}")
    print(f"regularizer overhead, alpha=-1 / alpha=0: {medians['alpha=-1'] / medians['alpha=0']:.3f}")
    print(f"naive overhead,       naive / alpha=0:    {medians['naive'] / medians['alpha=0']:.3f}")
    term_only(variants, x, y, args.rounds)


def term_only(variants, x, y, rounds: int, repeats: int = 20) -> None:
    """The selectivity term alone: loss from captured activations, then its backward."""
    model, reg, _ = variants["alpha=-1"]
    naive = variants["naive"][1]
    model(x)
    captured = {n: a.detach() for n, a in reg.probe.activations.items()}

    def run(kind: str) -> float:
        start = time.perf_counter()
        for _ in range(repeats):
            acts = {n: a.clone().requires_grad_(True) for n, a in captured.items()}
            if kind == "vectorized":
                reg.probe.activations = dict(acts)
                loss = reg.loss(y)
            else:
                naive.acts = dict(acts)
                loss = naive.loss(y)
            loss.backward()
        return (time.perf_counter() - start) / repeats

    times = {"vectorized": [], "naive": []}
    for r in range(rounds):
        for kind in (["vectorized", "naive"] if r % 2 == 0 else ["naive", "vectorized"]):
            times[kind].append(run(kind))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"selectivity term alone (8 layers, {len(y)} samples, {y.unique().numel()} classes present):")
    print(f"  vectorized {1e3 * med['vectorized']:.2f} ms, naive loop {1e3 * med['naive']:.2f} ms, "
          f"naive / vectorized = {med['naive'] / med['vectorized']:.1f}")


if __name__ == "__main__":
    main()
