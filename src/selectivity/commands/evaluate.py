"""Robustness and representation analyses of trained runs, written into their run directories.

    selectivity robustness RUN_DIR|SWEEP_DIR   -> robustness.csv in each run directory
    selectivity analyze RUN_DIR|SWEEP_DIR      -> analysis.json (+ analysis_*.csv) in each

``robustness.csv`` has one row per evaluation: ``kind`` (``clean``, ``corruption`` or
``attack``), ``name`` (``clean``, a corruption, an attack of ``fgsm``, ``pgd``, ``apgd-ce``,
``apgd-dlr``, ``square``, or ``worst``), ``level`` (severity 1..5; epsilon in [0, 1] pixel
units; 0 for the clean row), ``accuracy`` (a fraction) and ``n`` (the images evaluated). An
attack counts a sample only when the clean image is also classified right, so the accuracy at
eps = 0 equals the clean accuracy (the clean row). ``worst`` counts an image only when every
attack run at that epsilon failed on it: the robust accuracy to report.

Beside it, ``attack_outcomes.safetensors`` keeps each attack's per-image outcomes (so that a
later call with other attacks still gives the worst case over all of them), its settings and
its cost, and ``masking.csv`` the gradient-masking checks at each epsilon (eps, check,
flagged, value, threshold, n, detail; see :mod:`selectivity.analysis.attacks.masking`).

Both evaluate on the run's test split (as its config selects it: ``data.test_limit``
included). ``limit=N`` takes a fixed random subset of N of those images (seeded, the same
for every run of a sweep, so runs stay comparable). Corruptions and the attacks' random starts,
windows and targets are seeded too: a rerun gives the same numbers on the same device and
torch version.

In a sweep directory, the results table (``results.csv`` and ``results.parquet``) is rewritten
atomically afterwards with summary columns read back from the run directories by
:func:`selectivity.runs.run_summary` (``corruption_acc``, ``adv_acc/<attack>/<eps>``, ``pc95/<layer>``,
``pwcca/<layer>``, ...), so a later ``selectivity sweep`` keeps them too.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS, PRESETS, corrupt, corruption_names
from ..runs import (ROBUSTNESS_COLUMNS, SEVERITIES, RunPaths, atomic_write, completed, eps_label, exclusive,
                   read_robustness, write_text)

__all__ = [
    "DEFAULT_ATTACK_EPS",
    "DEFAULT_ATTACKS",
    "DEFAULT_SEVERITIES",
    "EvaluationError",
    "Target",
    "analyze",
    "attack_costs",
    "analyze_run",
    "eps_label",
    "evaluate_robustness",
    "find_runs",
    "parse_eps",
    "robustness",
    "validate_budgets",
    "validate_robustness",
]


DEFAULT_SEVERITIES = SEVERITIES
DEFAULT_ATTACKS = ("fgsm", "pgd")
DEFAULT_ATTACK_EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
#: The attacks by their command-line names (selectivity.analysis.attacks.ATTACKS), white-box first.
ATTACKS = ("fgsm", "pgd", "apgd-ce", "apgd-dlr", "square")
#: robustness.csv's rows of the worst case over every attack run at an epsilon.
WORST = "worst"
PGD_STEPS = 10
DEFAULT_APGD_STEPS = 100  # AutoAttack's budget: 100 iterations, 1 restart; APGD-T over 9 target classes
APGD_TARGETS = 9
DEFAULT_SQUARE_QUERIES = 5000
MASKING_COLUMNS = ["eps", "check", "flagged", "value", "threshold", "n", "detail"]
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

    from ..data import DeviceLoader
    from ..runs import open_run

    run = open_run(run_dir, progress=progress)  # the run's own test images, as training evaluated them
    if hasattr(run.data, "texts"):
        raise EvaluationError(f"{run_dir} was trained on labelled text: robustness and analyze evaluate image runs "
                              "(corruptions, attacks and representations of images)")
    config, model = run.config, run.model
    xs, ys = [], []
    for x, y in DeviceLoader(run.data, 512, torch.device("cpu"), shuffle=False):
        xs.append(x.float().cpu())
        ys.append(y.cpu())
    x, y = torch.cat(xs), torch.cat(ys)
    if limit is not None and limit < len(y):
        keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(SEED))[:limit].sort().values
        x, y = x[keep], y[keep]
    _correct(model, x, y)  # before any work: logits that are not finite are an error naming the layer
    return config, model, x, y


def _preset(x, preset: str | None) -> str:
    if preset is not None:
        return preset
    side = int(x.shape[-1])
    if side not in PRESET_BY_SIZE:
        raise EvaluationError(f"images are {side} px: no corruption preset for that size; "
                              f"give --preset ({', '.join(PRESET_BY_SIZE.values())})")
    return PRESET_BY_SIZE[side]


def _correct(model, x, y, batch_size: int = 256, where: str = "clean images"):
    """(N,) bool on the CPU: the model is right on the image. Logits that are not finite are an error
    naming the first non-finite layer (argmax of NaN would count as class 0)."""
    import torch

    from ..analysis.finite import check_finite_logits

    device = next(model.parameters()).device
    parts = []
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            xb = x[i:i + batch_size].to(device)
            logits = model(xb)
            check_finite_logits(model, xb, logits, where)
            parts.append(logits.argmax(1).cpu() == y[i:i + batch_size])
    return torch.cat(parts)


def _accuracy(model, x, y, batch_size: int = 256, where: str = "clean images") -> float:
    return int(_correct(model, x, y, batch_size, where).sum()) / len(y)


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


def validate_budgets(square_queries=None, apgd_steps=None) -> tuple[int, int]:
    """Checked (square_queries, apgd_steps), the defaults for None; EvaluationError on a bad one."""
    out = []
    for flag, value, default, what in (("--square-queries", square_queries, DEFAULT_SQUARE_QUERIES, "queries"),
                                       ("--apgd-steps", apgd_steps, DEFAULT_APGD_STEPS, "iterations")):
        if value is None:
            out.append(default)
            continue
        try:
            number = int(value) if isinstance(value, str) else value
        except ValueError:
            number = None
        if isinstance(number, bool) or not isinstance(number, (int, np.integer)) or number < 1:
            raise EvaluationError(f"{flag} must be a whole number of {what}, 1 or more, got {value!r}")
        out.append(int(number))
    return out[0], out[1]


def _attack_kwargs(attack: str, square_queries: int, apgd_steps: int) -> dict:
    """The attack's budget: its keyword arguments, as recorded with its outcomes."""
    return {"fgsm": {}, "pgd": {"steps": PGD_STEPS, "restarts": 1}, "apgd-ce": {"steps": apgd_steps, "restarts": 1},
            "apgd-dlr": {"steps": apgd_steps, "restarts": 1, "targets": APGD_TARGETS},
            "square": {"queries": square_queries}}[attack]


def _outcome_key(name: str, eps: float) -> str:
    return f"{name}@{float(eps)!r}"  # repr: the exact float, read back by float()


def _split_key(key: str) -> tuple[str, float]:
    name, _, eps = key.rpartition("@")
    return name, float(eps)


_SET = re.compile(r"^n(\d+)/(.+)$")


def _image_set(n: int) -> str:
    """The key of an image set in the run's evaluation files: its size, which fixes it (``limit`` N
    takes the first N of one seeded permutation of the run's test images; no limit takes them all)."""
    return f"n{int(n)}"


@dataclass
class _Outcomes:
    """attack_outcomes.safetensors: per image, robust (True) under each (attack, eps) and the
    margin gradient dead (True) at each eps (key ``gradient@eps``); each attack's settings and cost.

    The file keeps one such record per image set (keys ``n<N>/...``): a call on other images
    never touches the outcomes of the others, which are written back as they were.
    """

    labels: object
    bits: dict
    settings: dict
    costs: dict
    others: tuple = ({}, {}, {})  # tensors, settings and costs of the other image sets, verbatim

    @classmethod
    def read(cls, path: Path, labels) -> _Outcomes:
        """The stored outcomes of these images (same count, same labels); empty when there are none."""
        import torch

        from ..runs import RunError, load_tensors

        empty = cls(labels, {}, {}, {})
        if not path.is_file():
            return empty
        try:
            tensors, meta = load_tensors(path)
            settings, costs = json.loads(meta.get("settings", "{}")), json.loads(meta.get("costs", "{}"))
        except (RunError, ValueError) as err:
            warnings.warn(f"{path} is unreadable ({err}); its attacks are run again", stacklevel=3)
            return empty
        if "labels" in tensors:  # written before image sets were kept apart: one set, unprefixed
            size = _image_set(len(tensors["labels"]))
            tensors = {f"{size}/{k}": v for k, v in tensors.items()}
            settings = {f"{size}/{k}": v for k, v in settings.items()}
            costs = {f"{size}/{k}": v for k, v in costs.items()}
        prefix = _image_set(len(labels)) + "/"
        mine = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        others = ({k: v for k, v in tensors.items() if not k.startswith(prefix)},
                  {k: v for k, v in settings.items() if not k.startswith(prefix)},
                  {k: v for k, v in costs.items() if not k.startswith(prefix)})
        stored = mine.pop("labels", None)
        if stored is None or not torch.equal(stored, labels):  # none yet, or the run's test images changed
            return cls(labels, {}, {}, {}, others)
        own = {k[len(prefix):]: v for k, v in settings.items() if k.startswith(prefix)}
        own_costs = {k[len(prefix):]: v for k, v in costs.items() if k.startswith(prefix)}
        return cls(labels, {k: v.bool() for k, v in mine.items()}, own, own_costs, others)

    def write(self, path: Path) -> None:
        from ..runs import save_tensors

        import torch

        prefix = _image_set(len(self.labels)) + "/"
        tensors = {**self.others[0], prefix + "labels": self.labels,
                   **{prefix + k: v.to(torch.uint8) for k, v in self.bits.items()}}
        settings = {**self.others[1], **{prefix + k: v for k, v in self.settings.items()}}
        costs = {**self.others[2], **{prefix + k: v for k, v in self.costs.items()}}
        save_tensors(path, tensors, {"settings": json.dumps(settings), "costs": json.dumps(costs)})

    def robust(self) -> dict:
        """attack -> eps -> (N,) bool, for every stored attack (the worst case not included)."""
        out: dict = {}
        for key, value in self.bits.items():
            name, eps = _split_key(key)
            if name not in ("clean", "gradient", WORST):
                out.setdefault(name, {})[eps] = value
        return out


def attack_costs(run_dir: str | Path, n: int | None = None) -> list[tuple[str, float, float, float]]:
    """(attack, eps, seconds per image, model calls per image) of each attack of a run, as measured when
    it ran, on the image set of ``n`` images (None: the largest set that has any)."""
    path = RunPaths(run_dir).attack_outcomes
    if not path.is_file():
        return []
    from ..runs import RunError, load_tensors

    try:
        tensors, meta = load_tensors(path)
        costs = json.loads(meta.get("costs", "{}"))
    except (RunError, ValueError):
        return []
    if "labels" in tensors:  # one unprefixed set (an older file)
        costs = {f"{_image_set(len(tensors['labels']))}/{k}": v for k, v in costs.items()}
    by_set: dict = {}
    for key, value in costs.items():
        match = _SET.match(key)
        if match:
            by_set.setdefault(int(match.group(1)), {})[match.group(2)] = value
    if not by_set:
        return []
    chosen = by_set.get(n, {}) if n is not None else by_set[max(by_set)]
    rows = [(*_split_key(k), float(v["seconds"]), float(v["calls"])) for k, v in chosen.items()]
    order = {a: i for i, a in enumerate(ATTACKS)}
    return sorted(rows, key=lambda r: (order.get(r[0], len(order)), r[1]))


def _masking_table(outcomes: _Outcomes, clean, n: int, num_classes: int) -> pd.DataFrame:
    from ..analysis.attacks.masking import chance_floor, masking_flags

    dead = {_split_key(k)[1]: v for k, v in outcomes.bits.items() if k.startswith("gradient@")}
    flags = masking_flags(outcomes.robust(), clean, dead, floor=chance_floor(outcomes.labels, num_classes))
    rows = [{"eps": f.eps, "check": f.check, "flagged": f.flagged, "value": f.value, "threshold": f.threshold, "n": n,
             "detail": f.detail} for f in flags]
    return pd.DataFrame(rows, columns=MASKING_COLUMNS)


def evaluate_robustness(run_dir: str | Path, corruptions=None, severities=None, attacks=None, eps=None,
                        preset: str | None = None, limit: int | None = None, batch_size: int = 256,
                        progress: bool = True, force: bool = False, square_queries: int | None = None,
                        apgd_steps: int | None = None) -> Path:
    """Write (or complete) ``robustness.csv`` in one run directory; returns its path.

    Beside it: ``attack_outcomes.safetensors`` (per image, robust under each (attack, eps); the
    attacks' settings and cost) and ``masking.csv`` (:func:`selectivity.analysis.attacks.masking.masking_flags`
    at each epsilon). The ``worst`` rows of robustness.csv count an image only when every
    attack stored for that epsilon failed on it (and its clean image is right).

    Each image set (``limit`` N: the first N of one seeded permutation of the run's test images;
    no limit: all of them) keeps its own results, keyed by its size ``n`` in robustness.csv,
    masking.csv and attack_outcomes.safetensors: a call on other images adds its rows beside
    them and never replaces them, and the worst case of a set is over the attacks run on it.
    Resumable: rows already in robustness.csv for the same images are kept and not recomputed;
    an attack row is kept only with its per-image outcomes stored under the same settings
    (budget), so a changed ``square_queries`` or ``apgd_steps`` reruns that attack. Only
    missing rows are evaluated, and the files are rewritten atomically with all rows.
    ``force`` recomputes the requested rows. The run's lock is held throughout: a second call
    on the same run (or one on a run still training) is refused with :class:`~selectivity.runs.RunBusy`.
    """
    corruptions, severities, attacks, eps, preset, limit = validate_robustness(
        corruptions, severities, attacks, eps, preset, limit)
    square_queries, apgd_steps = validate_budgets(square_queries, apgd_steps)
    run_dir = Path(run_dir)
    paths = RunPaths(run_dir)
    with exclusive(paths.lock, f"{run_dir} is busy: another process (training, robustness or analyze) holds its "
                               "lock; run again when it has finished"):
        return _evaluate_robustness(run_dir, paths, corruptions, severities, attacks, eps, preset, limit, batch_size,
                                    progress, force, square_queries, apgd_steps)


def _evaluate_robustness(run_dir, paths, corruptions, severities, attacks, eps, preset, limit, batch_size, progress,
                         force, square_queries, apgd_steps) -> Path:
    import time

    import torch
    from tqdm.auto import tqdm

    from ..analysis.attacks import robust_images
    from ..analysis.attacks.masking import dead_gradients

    path = paths.robustness
    table = read_robustness(path)
    config, model, x, y = _load(run_dir, limit, progress)
    n = len(y)
    kept_apart = table[table["n"] != n]  # the results of other image sets: written back untouched
    existing = table[table["n"] == n] if not force else table.iloc[0:0]
    outcomes = _Outcomes.read(paths.attack_outcomes, y)
    # A row without accuracy records a corruption skipped for a missing package: redone when possible.
    have = {_key(r.kind, r.name, r.level) for r in existing.itertuples(index=False) if pd.notna(r.accuracy)}
    settings = {a: json.dumps(_attack_kwargs(a, square_queries, apgd_steps), sort_keys=True) for a in ATTACKS}
    # An attack row counts only with its per-image outcomes under the settings asked now; a row
    # from before the outcomes were stored is rerun too, so that the worst case covers it.
    stored = {_key("attack", a, e) for a, per_eps in outcomes.robust().items() for e in per_eps}
    legacy = {(r.name, float(r.level)) for r in existing.itertuples(index=False)
              if r.kind == "attack" and r.name in ATTACKS and _key(r.kind, r.name, r.level) not in stored}
    wanted_attacks = [(a, float(e)) for a in attacks for e in eps] + sorted(legacy - {(a, e) for a in attacks
                                                                                     for e in eps})
    stale = {(a, e) for a, e in wanted_attacks
             if force or _key("attack", a, e) not in have or outcomes.settings.get(_outcome_key(a, e)) != settings[a]}

    wanted = [("clean", "clean", 0.0)]
    wanted += [("corruption", c, float(s)) for c in corruptions for s in severities]
    todo = [w for w in wanted if _key(*w) not in have] + [("attack", a, e) for a, e in wanted_attacks
                                                          if (a, e) in stale]
    every_eps = [e for _, e in wanted_attacks] + [e for per_eps in outcomes.robust().values() for e in per_eps]
    attack_eps = sorted({round(e, 9): e for e in reversed(every_eps)}.values())  # one per radius, as asked first
    dead_todo = [e for e in attack_eps if e > 0 and (force or _outcome_key("gradient", e) not in outcomes.bits)]
    worst_missing = any(_key("attack", WORST, e) not in have for e in attack_eps)
    if not todo and not dead_todo and not worst_missing and (not attack_eps or (_read_masking(paths.masking)["n"] == n).any()):
        return path
    preset = _preset(x, preset)
    rows = []
    bar = tqdm(total=len(todo) + len(dead_todo), desc=f"robustness {run_dir.name}", unit="eval",
               disable=not progress, dynamic_ncols=True)
    for kind, name, level in todo:
        if kind == "clean":
            rows.append((kind, name, level, _accuracy(model, x, y, batch_size)))
            bar.update()
    calls = [0]
    hook = model.register_forward_pre_hook(lambda module, args: calls.__setitem__(0, calls[0] + len(args[0])))
    try:
        for kind, name, level in todo:
            if kind != "attack":
                continue
            start, calls[0] = time.perf_counter(), 0
            robust = robust_images(model, x, y, attack=name, eps=[level], batch_size=batch_size, seed=SEED,
                                   **_attack_kwargs(name, square_queries, apgd_steps))[level]
            key = _outcome_key(name, level)
            outcomes.bits[key], outcomes.settings[key] = robust, settings[name]
            outcomes.costs[key] = {"seconds": (time.perf_counter() - start) / n, "calls": calls[0] / n}
            bar.update()
    finally:
        hook.remove()
    for e in dead_todo:
        outcomes.bits[_outcome_key("gradient", e)] = dead_gradients(model, x, y, e, batch_size, seed=SEED)
        bar.update()
    missing = unavailable_corruptions(corruptions)
    for kind, name, level in todo:
        if kind == "corruption":
            accuracy = math.nan if name in missing else _accuracy(model, _corrupted(x, name, int(level), preset), y,
                                                                  batch_size, f"{name} at severity {int(level)}")
            rows.append((kind, name, level, accuracy))
            bar.update()
    bar.close()
    # Every stored attack gives its row, and each epsilon its worst case over them.
    clean = outcomes.bits.get(_outcome_key("clean", 0.0))
    if clean is None:
        clean = outcomes.bits[_outcome_key("clean", 0.0)] = _correct(model, x, y, batch_size)
    robust = outcomes.robust()
    for name, per_eps in robust.items():
        for level, bits in per_eps.items():
            rows.append(("attack", name, level, int(bits.sum()) / n))
    for level in attack_eps:
        runs = [bits for per_eps in robust.values() for e, bits in per_eps.items() if round(e, 9) == round(level, 9)]
        rows.append(("attack", WORST, level, int(torch.stack(runs).all(dim=0).sum()) / n))
    outcomes.write(paths.attack_outcomes)  # first: robustness.csv never names a row whose outcomes are missing
    new = pd.DataFrame(rows, columns=ROBUSTNESS_COLUMNS[:4]).assign(n=n)
    new_keys = {_key(*r[:3]) for r in rows}
    old = existing[[_key(r.kind, r.name, r.level) not in new_keys for r in existing.itertuples(index=False)]]
    table = pd.concat([f for f in (kept_apart, old, new) if len(f)], ignore_index=True)
    order = {"clean": 0, "corruption": 1, "attack": 2}
    table = table.assign(_o=table["kind"].map(order)).sort_values(["n", "_o", "name", "level"], kind="stable")
    table = table.drop(columns="_o")[ROBUSTNESS_COLUMNS].reset_index(drop=True)
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
    with torch.no_grad():  # the classes the model tells apart: the chance level of the masking check
        num_classes = int(model(x[:1].to(next(model.parameters()).device)).shape[1])
    masking = _masking_table(outcomes, clean, n, num_classes)
    if paths.masking.is_file():  # the checks of other image sets stay
        previous = _read_masking(paths.masking)
        masking = pd.concat([previous[previous["n"] != n], masking], ignore_index=True)
    atomic_write(paths.masking, lambda tmp: masking.to_csv(tmp, index=False))
    return path


def _read_masking(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError):
        return pd.DataFrame(columns=MASKING_COLUMNS)
    return frame if set(MASKING_COLUMNS) <= set(frame.columns) else pd.DataFrame(columns=MASKING_COLUMNS)


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
               force: bool = False, square_queries: int | None = None, apgd_steps: int | None = None) -> dict:
    """:func:`evaluate_robustness` on a run directory, or on every completed run of a sweep directory.

    A corruption that needs a missing optional package is announced (a warning) before any work,
    the rest runs, and robustness.csv records the skipped rows without an accuracy (they are
    computed by a later call once the package is there). ``square_queries`` (default 5000) and
    ``apgd_steps`` (default 100) are the budgets of the Square and APGD attacks; every argument
    is checked before any work.

    Returns {"runs": [robustness.csv paths], "skipped": [run dirs not completed], "results": results.csv or None,
    "unavailable": {corruption: reason}}.
    """
    args = validate_robustness(corruptions, severities, attacks, eps, preset, limit)
    square_queries, apgd_steps = validate_budgets(square_queries, apgd_steps)
    target = find_runs(path)
    missing = unavailable_corruptions(args[0])
    for name, reason in missing.items():
        warnings.warn(f"skipping {name}: {reason}", stacklevel=2)
    done, skipped = [], []
    for run_dir in target.runs:
        if target.sweep is not None and completed(run_dir) is None:
            skipped.append(run_dir)
            continue
        done.append(evaluate_robustness(run_dir, *args, progress=progress, force=force,
                                        square_queries=square_queries, apgd_steps=apgd_steps))
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
    Gradient variability uses the first 32 images of the subset. The run's lock is held
    throughout (a second call on the same run is refused with :class:`~selectivity.runs.RunBusy`).
    """
    validate_robustness(limit=limit)
    paths = RunPaths(run_dir)
    with exclusive(paths.lock, f"{run_dir} is busy: another process (training, robustness or analyze) holds its "
                               "lock; run again when it has finished"):
        return _analyze_run(run_dir, baseline_dir, limit, progress)


def _analyze_run(run_dir, baseline_dir, limit, progress) -> dict:
    import torch
    from tqdm.auto import tqdm

    from ..analysis.representations.ablation import ablation_curves
    from ..analysis.attacks import adversarial_examples
    from ..analysis.representations.dimensionality import compare_dimensionality
    from ..analysis.representations.gradients import gradient_variability
    from ..analysis.representations.similarity import layer_similarity
    from ..core import resolve_layers

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
