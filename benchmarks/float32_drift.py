"""Why float32 runs part: rounding at step 0 is small; single ReLU inputs whose sign differs are not.

Three measurements on the demo recipe (demo ResNet, bundled CIFAR-10 subset, one thread):

1. Step 0: the float32 gradient against the float64 gradient of the same weights and batch,
   ||g32 - g64|| / ||g64|| over the whole network and on the worst tensor, for inits x batches;
   and how many ReLU inputs have another sign in float32 than in float64.
2. Twins over training: the float32 run and its float64 twin (same init, batches, crops and flips)
   step by step, with the weight distance and the ReLU inputs of differing sign at each step; and
   a third run in float64 that takes every ReLU's on/off pattern from the float32 run (its forward
   and backward, batch norm included, are its own float64 arithmetic). If that run stays with the
   float32 run while the free twin leaves, the parting comes from ReLU signs, not from batch norm.
3. Whole runs through the CLI: one float32 process, two (torchrun) and one float64 process, same
   seed: how far 2 float32 processes land from 1, and 1 float32 process from its float64 twin.

Usage: python benchmarks/float32_drift.py [--cases 20] [--steps 240] [--epochs 3] [--skip-runs]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

SRC = str(Path(__file__).resolve().parents[1] / "src")
sys.path.insert(0, SRC)

from selectivity.core import SelectivityRegularizer  # noqa: E402
from selectivity.data import Augment, DeviceLoader  # noqa: E402
from selectivity.runs import load_tensors  # noqa: E402
from selectivity.config import load_config  # noqa: E402
from selectivity.analysis.evaluation import evaluate  # noqa: E402
from selectivity.runs import build_model  # noqa: E402
from selectivity.train.trainer import _alpha_schedule, _optimizer, load_data, lr_at  # noqa: E402


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().double().flatten() for t in tensors])


class ReluSigns:
    """Records the on/off pattern (input > 0) of every ReLU of a model in forward order; or, with
    ``force``, makes each ReLU use a given pattern (output = input * pattern, gradient = pattern)."""

    def __init__(self, model: nn.Module):
        self.masks: list[torch.Tensor] = []
        self.force: list[torch.Tensor] | None = None
        self.handles = [m.register_forward_hook(self._hook) for m in model.modules() if isinstance(m, nn.ReLU)]

    def _hook(self, module, inputs, output):
        x = inputs[0]
        if self.force is not None:
            mask = self.force[len(self.masks)]
            self.masks.append(mask)
            return x * mask.to(x.dtype)
        self.masks.append(x.detach() > 0)
        return output

    def start(self, force=None):
        self.masks, self.force = [], force

    def differing(self, other: "ReluSigns") -> int:
        return int(sum((a != b).sum() for a, b in zip(self.masks, other.masks)))


def setup(args):
    config = load_config("demo", [f"regularizer.alpha={args.alpha}", f"train.epochs={args.epochs}"])
    data = load_data(config, progress=False)
    return config, data


def step0(config, data, cases: int):
    train_split = data[0]
    augment = Augment(crop_padding=config.data.crop_padding, flip=config.data.flip)
    whole, worst, flips = [], [], []
    inits = max(1, round(cases ** 0.5))
    batches = -(-cases // inits)
    for init in range(inits):
        torch.manual_seed(init)
        m32 = build_model(config, train_split).train()
        m64 = copy.deepcopy(m32).double()
        loaders = [DeviceLoader(train_split, config.train.batch_size, shuffle=True, drop_last=True, augment=augment,
                                seed=init, dtype=d) for d in (torch.float32, torch.float64)]
        for (x32, y), (x64, _) in list(zip(*loaders))[:batches]:
            grads, signs = [], []
            for model, x in ((m32, x32), (m64, x64)):
                model.zero_grad()
                hooks = ReluSigns(model)
                hooks.start()
                with SelectivityRegularizer(model, -1.0, train_split.num_classes, schedule=None) as reg:
                    loss = F.cross_entropy(model(x), y) + reg.loss(y)
                loss.backward()
                grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
                signs.append(hooks)
                for h in hooks.handles:
                    h.remove()
            g32, g64 = grads
            whole.append(relative(flat(g32.values()), flat(g64.values())))
            worst.append(max((relative(g32[n], g64[n]), n) for n in g64 if g64[n].norm() > 0))
            flips.append(signs[0].differing(signs[1]))
            if len(whole) == cases:
                return whole, worst, flips
    return whole, worst, flips


def twins(config, data, steps: int):
    """float32, its free float64 twin, and a float64 twin on the float32 run's ReLU patterns."""
    train_split, test_split = data
    torch.manual_seed(config.train.seed)
    m32 = build_model(config, train_split).train()
    m64, forced = copy.deepcopy(m32).double(), copy.deepcopy(m32).double()
    models = (m32, m64, forced)
    optimizers = [_optimizer(config, m) for m in models]
    augment = Augment(crop_padding=config.data.crop_padding, flip=config.data.flip)
    loaders = [DeviceLoader(train_split, config.train.batch_size, shuffle=True, drop_last=True, augment=augment,
                            seed=config.train.seed, dtype=d) for d in (torch.float32, torch.float64, torch.float64)]
    per_epoch = len(loaders[0])
    total = per_epoch * config.train.epochs
    regs = [SelectivityRegularizer(m, config.regularizer.alpha, train_split.num_classes, schedule=_alpha_schedule(config),
                                   steps_per_epoch=per_epoch) for m in models]
    signs = [ReluSigns(m) for m in models]
    rows, step = [], 0
    for epoch in range(config.train.epochs):
        batches = [iter(_epoch(loader, epoch)) for loader in loaders]
        for _ in range(per_epoch):
            if step == steps:
                break
            lr = lr_at(config, step, total, per_epoch)
            for model, optimizer, reg, sign, batch, i in zip(models, optimizers, regs, signs, batches, range(3)):
                x, y = next(batch)
                sign.start(signs[0].masks if i == 2 else None)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss = F.cross_entropy(model(x), y) + reg.loss(y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            w32, w64, wf = (flat(m.state_dict()[k] for k in m.state_dict() if "num_batches" not in k) for m in models)
            rows.append((step, signs[0].differing(signs[1]), relative(w32, w64), relative(w32, wf)))
            step += 1
    accuracy = []
    for model, d in zip(models, (torch.float32, torch.float64, torch.float64)):
        for s in signs:
            s.start()
        loader = DeviceLoader(test_split, 1024, shuffle=False, dtype=d)
        accuracy.append(evaluate(model, loader, train_split.num_classes)["test_acc"])
    return rows, accuracy


def _epoch(loader, epoch):
    loader.set_epoch(epoch)
    return loader


def whole_runs(epochs: int, alpha: float) -> dict:
    """(1p float32, 2p float32, 1p float64) through the CLI; weights and test accuracy of each."""
    out = Path(tempfile.mkdtemp(prefix="float32-drift-"))
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    sets = [f"train.epochs={epochs}", f"train.eval_every={epochs}", f"regularizer.alpha={alpha}"]
    runs = {}
    for name, processes, dtype in (("1p float32", 1, "float32"), ("2p float32", 2, "float32"),
                                   ("1p float64", 1, "float64")):
        launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
                    if processes > 1 else [sys.executable])
        run_dir = out / name.replace(" ", "-")
        command = [*launcher, "-m", "selectivity", "train", "demo", "--out", str(run_dir), "--no-progress"]
        command += [a for o in sets + [f"train.dtype={dtype}"] for a in ("--set", o)]
        subprocess.run(command, check=True, env=env, capture_output=True)
        weights, _ = load_tensors(run_dir / "weights.safetensors")
        import json

        final = json.loads((run_dir / "final.json").read_text())
        runs[name] = ({k: v for k, v in weights.items() if v.is_floating_point()}, final["test_acc"])
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20, help="step-0 cases (inits x batches)")
    parser.add_argument("--steps", type=int, default=234, help="steps of the twins (the demo: 78 per epoch)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the recipe (learning rate schedule, runs)")
    parser.add_argument("--alpha", type=float, default=-1.0)
    parser.add_argument("--skip-runs", action="store_true", help="leave out part 3 (the CLI runs)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config, data = setup(args)
    print(f"torch {torch.__version__}, demo recipe, alpha {args.alpha:g}, {args.epochs} epochs, one thread")

    whole, worst, flips = step0(config, data, args.cases)
    print(f"\n1. step 0, {len(whole)} cases (init x batch): float32 gradient vs float64, ||g32 - g64|| / ||g64||")
    print(f"   whole network: median {statistics.median(whole):.2e}, max {max(whole):.2e}")
    w = sorted(worst)
    print(f"   worst tensor per case: median {statistics.median(x for x, _ in w):.2e}, max {w[-1][0]:.2e} "
          f"({w[-1][1]})")
    print(f"   ReLU inputs of another sign in float32: median {statistics.median(flips):g} per forward pass, "
          f"max {max(flips)}")
    clean = [g for g, f in zip(whole, flips) if f == 0]
    flipped = [g for g, f in zip(whole, flips) if f > 0]
    if clean and flipped:
        print(f"   whole network, the {len(clean)} cases without a differing sign: median {statistics.median(clean):.2e}, "
              f"max {max(clean):.2e}; the {len(flipped)} with one or more: median {statistics.median(flipped):.2e}")

    rows, accuracy = twins(config, data, args.steps)
    print("\n2. twins: float32 run vs its float64 twin, and vs a float64 run on the float32 run's ReLU patterns")
    print("   step  ReLU inputs of other sign  weights: float64 twin  float64 on float32's ReLU signs")
    first = next((s for s, f, _, _ in rows if f), None)
    shown = sorted({0, 1, 9, 29, 59, 99, 149, len(rows) - 1} | ({first - 1, first} if first else set()))
    for step, flipped, free, forced in rows:
        if step in shown and step >= 0:
            print(f"   {step + 1:>4}  {flipped:>25}  {free:>20.2e}  {forced:>31.2e}")
    print(f"   first step with a differing ReLU sign: {first + 1 if first is not None else 'none'}")
    print(f"   test accuracy after {len(rows)} steps: float32 {accuracy[0]:.4f}, float64 twin {accuracy[1]:.4f}, "
          f"float64 on float32's signs {accuracy[2]:.4f}")

    if not args.skip_runs:
        runs = whole_runs(args.epochs, args.alpha)
        keys = sorted(runs["1p float32"][0])

        def distance(a, b):
            return relative(flat(runs[a][0][k] for k in keys), flat(runs[b][0][k] for k in keys))

        print(f"\n3. whole runs ({args.epochs} demo epochs, CLI): relative weight distance, test accuracy")
        for a, b in (("2p float32", "1p float32"), ("1p float32", "1p float64"), ("2p float32", "1p float64")):
            print(f"   {a} vs {b}: {distance(a, b):.3f}, accuracy {runs[a][1]:.4f} vs {runs[b][1]:.4f} "
                  f"({100 * (runs[a][1] - runs[b][1]):+.1f} points)")


if __name__ == "__main__":
    main()
