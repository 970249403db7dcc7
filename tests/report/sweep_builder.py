"""A synthetic sweep directory, written the way the trainer writes its runs.

The truth behind it (alpha < 0 discourages selectivity, alpha > 0 encourages it):
accuracy is flat for alpha <= 0 and falls for alpha > 0; mean SI rises with alpha, and
alpha = -1 cuts it to a third of the baseline's.

``settings`` writes the run's resolved config.yaml (the defaults of ``Config`` with dotted
overrides, as ``selectivity train`` resolves them); :func:`write_failed` and
:func:`write_unfinished` leave a run as a sweep leaves one that failed or never finished.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ALPHAS = (-1.0, -0.1, 0.0, 1.0, 5.0)
SEEDS = (0, 1, 2)
LAYERS = ("layer1.0", "layer2.0", "layer3.0")
#: alpha -> (test accuracy, mean SI) of the synthetic truth
TRUTH = {-1.0: (0.902, 0.10), -0.1: (0.899, 0.27), 0.0: (0.900, 0.30), 1.0: (0.850, 0.45), 5.0: (0.700, 0.60)}


def run_name(alpha: float, seed: int) -> str:
    return f"alpha{alpha:+g}_seed{seed}"


def resolved_config(alpha: float, seed: int, settings: dict | None = None) -> dict:
    """A resolved config as the trainer writes it to config.yaml, with dotted ``settings`` set."""
    from selectivity.config import Config, config_to_dict

    config = config_to_dict(Config())
    config["model"]["name"], config["data"]["source"] = "resnet20", "/data/cifar10"
    config["train"]["epochs"], config["regularizer"]["alpha"], config["train"]["seed"] = 6, alpha, seed
    for dotted, value in (settings or {}).items():
        *parents, last = dotted.split(".")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return config


def _write_config(run: Path, alpha: float, seed: int, settings: dict | None) -> None:
    (run / "config.yaml").write_text(yaml.safe_dump(resolved_config(alpha, seed, settings), sort_keys=False))


def write_failed(root: Path, alpha: float, seed: int, *, name: str | None = None, settings: dict | None = None,
                 config: bool = True) -> Path:
    """A run that used up its retries in a sweep: failed.json (and the config.yaml training wrote)."""
    run = root / (name or run_name(alpha, seed))
    run.mkdir(parents=True, exist_ok=True)
    if config:
        _write_config(run, alpha, seed, settings)
    (run / "failed.json").write_text(json.dumps({"status": "failed", "alpha": alpha, "seed": seed,
                                                 "model": "resnet20", "error": "CUDA error: out of memory",
                                                 "attempts": 2}))
    return run


def write_unfinished(root: Path, alpha: float, seed: int, *, name: str | None = None,
                     settings: dict | None = None) -> Path:
    """A run that started (its config.yaml is written) and never ended."""
    run = root / (name or run_name(alpha, seed))
    run.mkdir(parents=True, exist_ok=True)
    _write_config(run, alpha, seed, settings)
    return run


def write_run(root: Path, alpha: float, seed: int, *, acc: float, si: float, status: str = "completed",
              epochs: int = 6, units: bool = True, rng=None, settings: dict | None = None, name: str | None = None,
              final: dict | None = None) -> Path:
    """One run directory; with ``settings`` (dotted overrides, may be empty) also its config.yaml;
    ``final``: extra final.json fields (n_test, ...)."""
    rng = rng or np.random.default_rng(seed)
    run = root / (name or run_name(alpha, seed))
    run.mkdir(parents=True, exist_ok=True)
    if settings is not None:
        _write_config(run, alpha, seed, settings)
    depth_si = np.clip(si * np.array([0.6, 1.0, 1.4]), 0.0, 0.99)  # selectivity grows with depth
    extra = final
    final = {"status": status, "diverged": status == "diverged", "alpha": alpha, "seed": seed,
             "model": "resnet20", "dataset": "cifar10", "epochs": epochs, "train_seconds": 30.0 + seed}
    if status == "completed":
        final.update(test_acc=acc, mean_si=si, **{f"si/{n}": float(v) for n, v in zip(LAYERS, depth_si)})
    else:
        final.update(test_acc=None, mean_si=None)
    (run / "final.json").write_text(json.dumps({**final, **(extra or {})}, indent=2))
    lines = []
    for epoch in range(epochs):
        progress = (epoch + 1) / epochs
        row = {"epoch": epoch, "train_loss": float(2.3 * np.exp(-2.5 * progress) + 0.05 * (alpha > 0) * alpha),
               "train_acc": acc * progress, "batch_si": float(si * (0.5 + 0.5 * progress) + rng.normal(0, 0.005)),
               "alpha": alpha, "alpha_now": alpha * min(1.0, progress * 2), "lr": 0.1}
        if epoch % 2 == 1:
            row.update(test_acc=float(acc * (0.6 + 0.4 * progress)), test_loss=1.0, test_si=si)
        lines.append(json.dumps(row))
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    if units and status == "completed":
        rows = []
        for index, (layer, mean) in enumerate(zip(LAYERS, depth_si)):
            mean = float(np.clip(mean, 0.02, 0.95))
            values = rng.beta(4 * mean / (1 - mean), 4, size=16)  # mean of Beta(a, 4) is a / (a + 4) = mean
            rows += [{"layer": layer, "layer_index": index, "unit": u, "si": float(v), "preferred_class": u % 10,
                      "mu_max": 1.0} for u, v in enumerate(values)]
        pd.DataFrame(rows).to_csv(run / "si_per_unit.csv", index=False)
    return run


def write_sweep(root: Path, alphas=ALPHAS, seeds=SEEDS, *, acc_sd: float = 0.003, si_sd: float = 0.01,
                diverged: bool = True, units: bool = True, seed: int = 0) -> Path:
    """One run directory per (alpha, seed); plus, with ``diverged``, a diverged run at the largest alpha."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for alpha in alphas:
        acc, si = TRUTH[alpha]
        for s in seeds:
            write_run(root, alpha, s, acc=float(acc + rng.normal(0, acc_sd)), si=float(si + rng.normal(0, si_sd)),
                      units=units, rng=rng)
    if diverged:
        write_run(root, max(alphas), max(seeds) + 1, acc=0.1, si=0.0, status="diverged", epochs=2, rng=rng)
    return root
