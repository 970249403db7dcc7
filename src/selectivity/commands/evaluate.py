"""Robustness and representation analyses of trained runs, written into their run directories.

    selectivity robustness RUN_DIR|SWEEP_DIR   -> robustness.csv in each run directory
    selectivity analyze RUN_DIR|SWEEP_DIR      -> analysis.json (+ analysis_*.csv) in each

``robustness.csv`` has one row per evaluation: ``kind`` (``clean``, ``corruption`` or
``attack``), ``name`` (``clean``, a corruption or ``fgsm``/``pgd``), ``level`` (severity
1..5; epsilon in [0, 1] pixel units; 0 for the clean row), ``accuracy`` (a fraction) and
``n`` (the images evaluated). An attack counts a sample only when the clean image is also
classified right, so the accuracy at eps = 0 equals the clean accuracy (the clean row).

Both evaluate on the run's test split (as its config selects it: ``data.test_limit``
included). ``limit=N`` takes a fixed random subset of N of those images (seeded, the same
for every run of a sweep, so runs stay comparable). Corruptions and PGD's random starts are
seeded too: a rerun gives the same numbers on the same device and torch version.

In a sweep directory, the results table (``results.csv`` and ``results.parquet``) is rewritten
atomically afterwards with summary columns read back from the run directories by
:func:`selectivity.runs.run_summary` (``corruption_acc``, ``adv_acc/<attack>/<eps>``, ``pc95/<layer>``,
``pwcca/<layer>``, ...), so a later ``selectivity sweep`` keeps them too.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS, PRESETS, corrupt, corruption_names
from ..runs import (ROBUSTNESS_COLUMNS, SEVERITIES, RunPaths, atomic_write, completed, eps_label, read_robustness,
                   write_text)

__all__ = [
    "DEFAULT_ATTACK_EPS",
    "DEFAULT_ATTACKS",
    "DEFAULT_SEVERITIES",
    "EvaluationError",
    "Target",
    "analyze",
    "analyze_run",
    "eps_label",
    "evaluate_robustness",
    "find_runs",
    "parse_eps",
    "robustness",
    "validate_robustness",
]


DEFAULT_SEVERITIES = SEVERITIES
DEFAULT_ATTACKS = ("fgsm", "pgd")
DEFAULT_ATTACK_EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
ATTACKS = ("fgsm", "pgd")
PRESET_BY_SIZE = {32: "cifar10-c", 64: "tinyimagenet-c"}

#: The perturbations of ``analyze``'s dimensionality comparison.
ANALYSIS_CORRUPTION = ("gaussian_noise", 3)
ANALYSIS_ATTACK = ("pgd", 4 / 255)
ABLATION_FRACTIONS = (0.0, 0.1, 0.25, 0.5, 0.75)
ABLATION_RANDOM = 3
GRADIENT_SAMPLES = 32
SEED = 0


class EvaluationError(ValueError):
    """A directory, corruption, severity or epsilon that cannot be evaluated as asked."""


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """What a command was pointed at: the run directories and, for a sweep, its root."""

    runs: tuple[Path, ...]
    sweep: Path | None = None


def _is_run(path: Path) -> bool:
    return RunPaths(path).is_run()


def find_runs(path: str | Path) -> Target:
    """A run directory (config.yaml) or a sweep directory (sweep.json, or run directories with final.json)."""
    root = Path(path)
    if not root.is_dir():
        raise EvaluationError(f"{root} is not a directory: expected a run directory or a sweep directory")
    if _is_run(root):
        return Target(runs=(root,))
    dirs: list[Path] = []
    manifest = root / "sweep.json"
    if manifest.is_file():
        try:
            entries = json.loads(manifest.read_text()).get("runs", {}).values()
            dirs = [root / e["dir"] for e in entries]
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            dirs = []
    if not dirs:
        dirs = [p for p in root.iterdir() if p.is_dir() and (p / "final.json").is_file()]
    dirs = sorted(d for d in dirs if d.is_dir())
    if not dirs:
        raise EvaluationError(f"{root} is neither a run directory (config.yaml) nor a sweep directory "
                              "(sweep.json, or run directories with a final.json)")
    return Target(runs=tuple(dirs), sweep=root)


# --------------------------------------------------------------------------- arguments


def parse_eps(text: str) -> float:
    """'4/255', '0.0157' or '0' -> a float; a ValueError (EvaluationError) otherwise."""
    text = str(text).strip()
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        raise EvaluationError(f"epsilon {text!r} is not a number (give e.g. 4/255 or 0.0157)") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise EvaluationError(f"epsilon {text} is outside [0, 1] (pixel units: 8/255 = 0.031)")
    return value


def validate_robustness(corruptions=None, severities=None, attacks=None, eps=None, preset=None, limit=None):
    """Checked (corruptions, severities, attacks, eps, preset, limit); EvaluationError on a bad one."""
    valid = corruption_names("all")
    corruptions = list(corruption_names("benchmark") if corruptions is None else corruptions)
    unknown = [c for c in corruptions if c not in valid]
    if unknown:
        raise EvaluationError(f"unknown corruption(s) {', '.join(unknown)}; valid names: {', '.join(valid)}")
    severities = list(DEFAULT_SEVERITIES if severities is None else severities)
    for s in severities:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 1 <= int(s) <= 5:
            raise EvaluationError(f"severity {s!r} is outside 1..5")
    attacks = list(DEFAULT_ATTACKS if attacks is None else attacks)
    bad = [a for a in attacks if a not in ATTACKS]
    if bad:
        raise EvaluationError(f"unknown attack(s) {', '.join(bad)}; valid: {', '.join(ATTACKS)}")
    eps = [parse_eps(e) if isinstance(e, str) else float(e) for e in (DEFAULT_ATTACK_EPS if eps is None else eps)]
    for e in eps:
        if not (math.isfinite(e) and 0.0 <= e <= 1.0):
            raise EvaluationError(f"epsilon {e:g} is outside [0, 1] (pixel units: 8/255 = 0.031)")
    if preset is not None and preset not in PRESETS:
        raise EvaluationError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    if limit is not None and (isinstance(limit, bool) or int(limit) < 2):
        raise EvaluationError(f"--limit must be 2 or more images, got {limit!r}")
    return corruptions, [int(s) for s in severities], attacks, eps, preset, limit


# --------------------------------------------------------------------------- data and model


def _load(run_dir: Path, limit: int | None, progress: bool):
    """(config, model on its device, x, y) with x, y the run's test images (a seeded subset of ``limit``)."""
    import torch

    from ..data import DeviceLoader, load_split
    from ..train.config import load_config
    from ..train.trainer import limit_test, resolve_device
    from .measure import load_run_model

    config = load_config(run_dir / "config.yaml")
    test = load_split(config.data.source, "test", cache_dir=config.data.cache_dir, progress=progress,
                      stats_from="test")
    test = limit_test(test, config.data.test_limit)  # the same subset as training's evaluation
    config, model = load_run_model(run_dir, test)
    device = resolve_device(config.train.device)
    model.to(device)
    xs, ys = [], []
    for x, y in DeviceLoader(test, 512, torch.device("cpu"), shuffle=False):
        xs.append(x.float().cpu())
        ys.append(y.cpu())
    x, y = torch.cat(xs), torch.cat(ys)
    if limit is not None and limit < len(y):
        keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(SEED))[:limit].sort().values
        x, y = x[keep], y[keep]
    return config, model, x, y


def _preset(x, preset: str | None) -> str:
    if preset is not None:
        return preset
    side = int(x.shape[-1])
    if side not in PRESET_BY_SIZE:
        raise EvaluationError(f"images are {side} px: no corruption preset for that size; "
                              f"give --preset ({', '.join(PRESET_BY_SIZE.values())})")
    return PRESET_BY_SIZE[side]


def _accuracy(model, x, y, batch_size: int = 256) -> float:
    import torch

    device = next(model.parameters()).device
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            correct += int((model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum())
    return correct / len(y)


def _corrupted(x, name: str, severity: int, preset: str, batch_size: int = 256):
    """``x`` corrupted batch by batch, seeded per (corruption, severity, batch): deterministic."""
    import torch

    index = (CORRUPTIONS + EXTRA_CORRUPTIONS).index(name)
    parts = []
    for b, i in enumerate(range(0, len(x), batch_size)):
        seed = SEED + 1_000_003 * index + 10_007 * severity + b
        try:
            parts.append(corrupt(x[i:i + batch_size], name, severity, preset=preset, generator=seed))
        except ImportError as err:
            raise EvaluationError(f"corruption {name!r} needs a missing package ({err})") from None
    return torch.cat(parts)


# --------------------------------------------------------------------------- robustness


def _key(kind: str, name: str, level: float) -> tuple[str, str, float]:
    return kind, name, round(float(level), 9)


def evaluate_robustness(run_dir: str | Path, corruptions=None, severities=None, attacks=None, eps=None,
                        preset: str | None = None, limit: int | None = None, batch_size: int = 256,
                        progress: bool = True, force: bool = False) -> Path:
    """Write (or complete) ``robustness.csv`` in one run directory; returns its path.

    Resumable: rows already in robustness.csv for the same number of images are kept and not
    recomputed; only the missing (kind, name, level) rows are evaluated, and the file is
    rewritten atomically with all rows. ``force`` recomputes the requested rows.
    """
    import torch
    from tqdm.auto import tqdm

    from ..analysis.attacks import adversarial_accuracy

    corruptions, severities, attacks, eps, preset, limit = validate_robustness(
        corruptions, severities, attacks, eps, preset, limit)
    run_dir = Path(run_dir)
    path = RunPaths(run_dir).robustness
    existing = read_robustness(path)
    config, model, x, y = _load(run_dir, limit, progress)
    n = len(y)
    existing = existing[existing["n"] == n] if not force else existing.iloc[0:0]
    # A row without accuracy records a corruption skipped for a missing package: redone when possible.
    have = {_key(r.kind, r.name, r.level) for r in existing.itertuples(index=False) if pd.notna(r.accuracy)}

    wanted = [("clean", "clean", 0.0)]
    wanted += [("corruption", c, float(s)) for c in corruptions for s in severities]
    wanted += [("attack", a, float(e)) for a in attacks for e in eps]
    todo = [w for w in wanted if _key(*w) not in have]
    if not todo:
        return path
    preset = _preset(x, preset)
    rows = []
    bar = tqdm(total=len(todo), desc=f"robustness {run_dir.name}", unit="eval", disable=not progress,
               dynamic_ncols=True)
    clean_acc = None
    for kind, name, level in todo:
        if kind == "clean":
            clean_acc = _accuracy(model, x, y, batch_size)
            rows.append((kind, name, level, clean_acc))
            bar.update()
    adv = {}
    for a in attacks:
        levels = [lv for k, nm, lv in todo if k == "attack" and nm == a]
        if not levels:
            continue
        kwargs = {"generator": torch.Generator(device=next(model.parameters()).device).manual_seed(SEED)} \
            if a == "pgd" else {}
        adv[a] = adversarial_accuracy(model, x, y, attack=a, eps=levels, batch_size=batch_size, **kwargs)
    missing = unavailable_corruptions(corruptions)
    for kind, name, level in todo:
        if kind == "corruption":
            accuracy = math.nan if name in missing else _accuracy(model, _corrupted(x, name, int(level), preset), y,
                                                                  batch_size)
            rows.append((kind, name, level, accuracy))
            bar.update()
        elif kind == "attack":
            rows.append((kind, name, level, float(adv[name][level])))
            bar.update()
    bar.close()
    new = pd.DataFrame(rows, columns=ROBUSTNESS_COLUMNS[:4]).assign(n=n)
    new_keys = {_key(*r[:3]) for r in rows}
    old = existing[[_key(r.kind, r.name, r.level) not in new_keys for r in existing.itertuples(index=False)]]
    table = pd.concat([old, new], ignore_index=True) if len(old) else new
    order = {"clean": 0, "corruption": 1, "attack": 2}
    table = table.assign(_o=table["kind"].map(order)).sort_values(["_o", "name", "level"], kind="stable")
    table = table.drop(columns="_o")[ROBUSTNESS_COLUMNS].reset_index(drop=True)
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
    return path


def _rewrite_results(target: Target) -> Path | None:
    if target.sweep is None:
        return None
    from ..sweep.manifest import SweepPaths
    from ..sweep.runner import write_results

    _, csv, _ = write_results(SweepPaths(target.sweep), list(target.runs))
    return csv


def unavailable_corruptions(names) -> dict[str, str]:
    """Corruptions among ``names`` that cannot run here, with the reason (a missing optional package)."""
    from ..analysis.corruptions.weather import frost_folder

    missing = {}
    if "frost" in names:
        try:
            frost_folder()
        except ImportError as err:
            missing["frost"] = str(err)
    return missing


def robustness(path: str | Path, *, corruptions=None, severities=None, attacks=None, eps=None,
               preset: str | None = None, limit: int | None = None, progress: bool = True,
               force: bool = False) -> dict:
    """:func:`evaluate_robustness` on a run directory, or on every completed run of a sweep directory.

    A corruption that needs a missing optional package is announced (a warning) before any work,
    the rest runs, and robustness.csv records the skipped rows without an accuracy (they are
    computed by a later call once the package is there).

    Returns {"runs": [robustness.csv paths], "skipped": [run dirs not completed], "results": results.csv or None,
    "unavailable": {corruption: reason}}.
    """
    args = validate_robustness(corruptions, severities, attacks, eps, preset, limit)
    target = find_runs(path)
    missing = unavailable_corruptions(args[0])
    for name, reason in missing.items():
        warnings.warn(f"skipping {name}: {reason}", stacklevel=2)
    done, skipped = [], []
    for run_dir in target.runs:
        if target.sweep is not None and completed(run_dir) is None:
            skipped.append(run_dir)
            continue
        done.append(evaluate_robustness(run_dir, *args, progress=progress, force=force))
    return {"runs": done, "skipped": skipped, "results": _rewrite_results(target), "unavailable": missing}


# --------------------------------------------------------------------------- analysis


def _si_from_csv(run_dir: Path, layers: list[str]):
    import torch

    path = RunPaths(run_dir).si_per_unit
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError):
        return None
    if not {"layer", "unit", "si"} <= set(frame.columns):
        return None
    si = {}
    for name in layers:
        rows = frame[frame["layer"] == name].sort_values("unit")
        if rows.empty:
            return None
        si[name] = torch.tensor(rows["si"].to_numpy(dtype=float))
    return si


def _early(layers: list[str]) -> list[str]:
    """The first third of the layers (at least one): the 'early' layers."""
    return layers[: max(1, math.ceil(len(layers) / 3))]


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def analyze_run(run_dir: str | Path, baseline_dir: str | Path | None = None, limit: int | None = None,
                progress: bool = True) -> dict:
    """Dimensionality, similarity to a baseline run, ablation and gradient variability of one run.

    Writes ``analysis.json``, ``analysis_dimensionality.csv`` and ``analysis_ablation.csv`` in
    ``run_dir`` and returns the JSON's content. Similarity (PWCCA and unbiased linear CKA) is
    computed only with a ``baseline_dir`` (the alpha = 0 run of the same seed in a sweep).
    Gradient variability uses the first 32 images of the subset.
    """
    import torch
    from tqdm.auto import tqdm

    from ..analysis.ablation import ablation_curves
    from ..analysis.attacks import adversarial_examples
    from ..analysis.dimensionality import compare_dimensionality
    from ..analysis.gradients import gradient_variability
    from ..analysis.similarity import layer_similarity
    from ..core import resolve_layers

    validate_robustness(limit=limit)
    run_dir = Path(run_dir)
    bar = tqdm(total=5, desc=f"analyze {run_dir.name}", unit="step", disable=not progress, dynamic_ncols=True)
    config, model, x, y = _load(run_dir, limit, progress)
    layers = resolve_layers(model, config.regularizer.layers)
    preset = _preset(x, None) if int(x.shape[-1]) in PRESET_BY_SIZE else "cifar10-c"
    cname, severity = ANALYSIS_CORRUPTION
    attack, eps = ANALYSIS_ATTACK
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(SEED)
    perturbed = {
        "corrupted": _corrupted(x, cname, severity, preset),
        "adversarial": adversarial_examples(model, x, y, attack=attack, eps=eps, generator=gen),
    }
    dims = compare_dimensionality(model, x, perturbed, layers)
    bar.update()

    similarity = None
    if baseline_dir is not None:
        _, base_model, _, _ = _load(Path(baseline_dir), limit, progress=False)
        similarity = {
            "baseline": Path(baseline_dir).name,
            "pwcca": {k: _finite(v) for k, v in layer_similarity(model, base_model, x, layers, measure="pwcca").items()},
            "cka": {k: _finite(v) for k, v in layer_similarity(model, base_model, x, layers, measure="cka",
                                                                debiased=True).items()},
        }
    bar.update()

    si = _si_from_csv(run_dir, layers)
    curves = ablation_curves(model, x, y, layers, si=si, fractions=ABLATION_FRACTIONS, n_random=ABLATION_RANDOM,
                             generator=torch.Generator().manual_seed(SEED))
    ablation = {name: {"fractions": c.fractions.tolist(), "n_units": c.n_units.tolist(),
                       "selective": c.selective.tolist(), "random_mean": c.random_mean.tolist(),
                       "random_std": c.random_std.tolist(), "clean": float(c.clean)}
                for name, c in curves.items()}
    bar.update()

    grads = gradient_variability(model, x[:GRADIENT_SAMPLES], layers)
    gradients = {name: {k: _finite(v) for k, v in g.summary().items()} for name, g in grads.items()}
    bar.update()

    early = _early(layers)
    clean = dims["clean"]
    summary: dict[str, float | None] = {}
    for name in early:
        summary[f"pc95/{name}"] = float(clean[name]["pc95"])
        summary[f"pr/{name}"] = float(clean[name]["participation_ratio"])
    summary["pc95_early"] = float(np.mean([clean[n]["pc95"] for n in early]))
    summary["pr_early"] = float(np.mean([clean[n]["participation_ratio"] for n in early]))
    for p in perturbed:
        summary[f"delta_pc95_early/{p}"] = float(np.mean([dims[p][n]["delta_pc95"] for n in early]))
    if similarity is not None:
        for measure in ("pwcca", "cka"):
            values = similarity[measure]
            for name, v in values.items():
                summary[f"{measure}/{name}"] = v
            finite = [v for v in values.values() if v is not None]
            summary[f"{measure}_mean"] = float(np.mean(finite)) if finite else None
    summary["grad_cv_across_samples"] = _finite(np.nanmean([g["cv_across_samples"] for g in gradients.values()
                                                            if g["cv_across_samples"] is not None] or [np.nan]))

    out = {
        "n": int(len(y)),
        "limit": limit,
        "seed": SEED,
        "layers": layers,
        "early_layers": early,
        "perturbations": {"corrupted": f"{cname} severity {severity} ({preset})",
                          "adversarial": f"{attack} eps {eps_label(eps)}"},
        "dimensionality": dims,
        "similarity": similarity,
        "ablation": ablation,
        "gradients": gradients,
        "summary": summary,
    }
    rows = [{"input": p, "layer": name, **values} for p, per_layer in dims.items() for name, values in per_layer.items()]
    atomic_write(RunPaths(run_dir).analysis_dimensionality, lambda tmp: pd.DataFrame(rows).to_csv(tmp, index=False))
    rows = []
    for name, c in ablation.items():
        for j, f in enumerate(c["fractions"]):
            rows.append({"layer": name, "fraction": f, "n_units": c["n_units"][j], "order": "selectivity",
                         "accuracy": c["selective"][j], "std": 0.0})
            rows.append({"layer": name, "fraction": f, "n_units": c["n_units"][j], "order": "random",
                         "accuracy": c["random_mean"][j], "std": c["random_std"][j]})
    atomic_write(RunPaths(run_dir).analysis_ablation, lambda tmp: pd.DataFrame(rows).to_csv(tmp, index=False))
    write_text(RunPaths(run_dir).analysis, json.dumps(out, indent=2))
    bar.update()
    bar.close()
    return out


def _baselines(runs: Sequence[Path]) -> dict[Path, Path]:
    """Each completed run -> the completed alpha = 0 run of the same seed, model and dataset."""
    finals = {r: f for r in runs if (f := completed(r)) is not None}
    out = {}
    for run, final in finals.items():
        for other, base in finals.items():
            if (float(base.get("alpha", math.nan)) == 0.0 and base.get("seed") == final.get("seed")
                    and base.get("model") == final.get("model") and base.get("dataset") == final.get("dataset")):
                out[run] = other
                break
    return out


def analyze(path: str | Path, *, limit: int | None = None, progress: bool = True) -> dict:
    """:func:`analyze_run` on a run directory, or on every completed run of a sweep directory
    (with similarity to the alpha = 0 run of the same seed where the sweep has one)."""
    validate_robustness(limit=limit)
    target = find_runs(path)
    baselines = _baselines(target.runs) if target.sweep is not None else {}
    done, skipped = [], []
    for run_dir in target.runs:
        if target.sweep is not None and completed(run_dir) is None:
            skipped.append(run_dir)
            continue
        analyze_run(run_dir, baselines.get(run_dir), limit=limit, progress=progress)
        done.append(RunPaths(run_dir).analysis)
    return {"runs": done, "skipped": skipped, "results": _rewrite_results(target)}
