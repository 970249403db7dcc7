"""A sweep is a grid of runs, alphas x seeds, over one base config.

Each run has a stable id: a short hash of its resolved config (the same config always
gives the same id, any other config another one). Its directory name puts the readable
part first: ``alpha-1_seed0-3f2a9c01b7``, or ``alpha-5_sched0x2_-5x6_seed0-...`` for a run of
the per-epoch alpha schedule ``"0*2 -5*6"``. alpha < 0 discourages selectivity, alpha > 0
encourages it, alpha = 0 is plain training.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runs import run_name
from ..config import (Config, ConfigError, RecordConfig, config_from_dict, config_to_dict, load_config, parse_override,
                      read_config_source)

__all__ = [
    "SweepError",
    "GridRun",
    "make_grid",
    "parse_alphas",
    "parse_seeds",
    "run_id",
    "base_config_dict",
    "load_sweep_config",
    "parse_schedules",
]

#: The keys the grid sets per run; a base config's own values for them are ignored.
GRID_KEYS = (("regularizer", "alpha"), ("regularizer", "schedule"), ("train", "seed"), ("regularizer", "kind"),
             ("regularizer", "lambda"))


class SweepError(ValueError):
    """A sweep that cannot run as asked: a bad grid, executor or sweep directory."""


# -- the grid's axes ---------------------------------------------------------------------------


def _items(values: str | Iterable, what: str) -> list:
    """``"-1,0,1"``, ``["-1", "0,1"]`` or ``[-1, 0, 1]`` -> a flat list of items."""
    if isinstance(values, str):
        values = [values]
    items: list = []
    for value in values:
        if isinstance(value, str):
            if not value.strip():
                continue
            parts = [p.strip() for p in value.split(",")]
            if any(not p for p in parts):
                raise SweepError(f"{what} list {value!r} has an empty item; expected comma-separated values: 0,1,2")
            items.extend(parts)
        else:
            items.append(value)
    if not items:
        raise SweepError(f"the {what} list is empty; expected comma-separated numbers, e.g. -1,0,1")
    return items


def _unique(values: list, what: str) -> list:
    seen = set()
    for value in values:
        if value in seen:
            raise SweepError(f"{what} {value:g} appears twice in the {what} list")
        seen.add(value)
    return values


def parse_alphas(values: str | Iterable, what: str = "alpha") -> list[float]:
    """Alphas (or MonoLoss lambdas: ``what="lambda"``) from ``"-1,0,1"`` or a list; finite numbers,
    each once, in the order given.

    >>> parse_alphas("-1, 0,0.5")
    [-1.0, 0.0, 0.5]
    """
    alphas = []
    for item in _items(values, what):
        try:
            alpha = float(item)
        except (TypeError, ValueError):
            raise SweepError(f"{what} {item!r} is not a number; expected comma-separated numbers, e.g. -1,0,1") from None
        if isinstance(item, bool) or not math.isfinite(alpha):
            raise SweepError(f"{what} {item!r} is not a finite number")
        alphas.append(alpha + 0.0)  # -0.0 -> 0.0: one run, one id
    return _unique(alphas, what)


def parse_seeds(values: str | Iterable) -> list[int]:
    """Seeds from ``"0,1,2"`` or a list; integers >= 0, each once, in the order given.

    >>> parse_seeds("0,1,2")
    [0, 1, 2]
    """
    seeds = []
    for item in _items(values, "seed"):
        text = str(item)
        if isinstance(item, bool) or not text.isdigit():
            raise SweepError(f"seed {item!r} is not an integer >= 0; expected comma-separated integers, e.g. 0,1,2")
        seeds.append(int(text))
    return _unique(seeds, "seed")


# -- runs and their ids ------------------------------------------------------------------------


#: Config keys added after a version that wrote sweeps (0.1): at their default values they are
#: left out of run ids and of a sweep's shared config, so sweeps written before they existed keep
#: their ids and resume instead of training everything again. Add each new key here.
LATER_KEYS = {("regularizer", "schedule"): None, ("record",): RecordConfig(), ("regularizer", "sync"): "global",
              ("train", "sync_bn"): True, ("train", "dtype"): "float32", ("regularizer", "kind"): "si",
              ("regularizer", "lambda"): 0.0, ("regularizer", "embeddings"): "labels",
              ("regularizer", "embeddings_file"): None, ("regularizer", "encoder"): None,
              ("regularizer", "encoder_weights"): None}
LATER_KEYS.update({("model", "weights"): None, ("regularizer", "tokens"): "mean", ("regularizer", "positive_part"): True})
LATER_KEYS.update({("data", "text_column"): "text", ("data", "label_column"): "label", ("data", "max_length"): None,
                   ("data", "truncation"): "none"})


def _without_later_defaults(data: dict) -> dict:
    data = copy.deepcopy(data)
    for path, default in LATER_KEYS.items():
        *parents, last = path
        node = data
        for key in parents:
            node = node.get(key, {})
        if last in node and node[last] == (dataclasses.asdict(default) if dataclasses.is_dataclass(default)
                                           else default):
            del node[last]
    return data


def run_id(config: Config | dict) -> str:
    """A short hash of the resolved config: equal configs, equal ids (key order does not count)."""
    data = config_to_dict(config) if isinstance(config, Config) else config
    text = json.dumps(_without_later_defaults(data), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def base_config_dict(config: Config) -> dict:
    """The resolved config without the keys the grid sets (alpha, seed, schedule): what a sweep shares."""
    data = config_to_dict(config)
    for section, key in GRID_KEYS:
        data[section].pop(key, None)
    return _without_later_defaults(data)


@dataclass(frozen=True, eq=True)
class GridRun:
    """One point of the grid: its alpha, seed, resolved config (a dict), id and, for a MonoLoss
    run (``regularizer.kind: monoloss``), its lambda."""

    alpha: float
    seed: int
    config: dict
    id: str
    lam: float = 0.0

    @property
    def kind(self) -> str:
        return self.config["regularizer"].get("kind", "si")

    @property
    def schedule(self) -> str | None:
        return self.config["regularizer"].get("schedule")

    @property
    def name(self) -> str:
        """Directory name: readable alpha, schedule (if any) and seed, then the id."""
        return f"{run_name(self.alpha, self.seed, self.schedule, self.lam)}-{self.id}"


def parse_schedules(values: str | Iterable) -> list[str]:
    """Per-epoch alpha schedules from ``"0*20,-20*20,0*5 -20*15"`` or a list, each checked, each once."""
    from ..core.schedule import PerEpochAlpha

    schedules = []
    for item in _items(values, "schedule"):
        try:
            PerEpochAlpha.parse(item)
        except ValueError as err:
            raise SweepError(str(err)) from None
        if item in schedules:
            raise SweepError(f"schedule {item!r} appears twice in the schedule list")
        schedules.append(item)
    return schedules


def make_grid(config: Config, alphas: Iterable | None, seeds: Iterable,
              schedules: Iterable | None = None, lambdas: Iterable | None = None) -> list[GridRun]:
    """One run per (alpha, seed), alphas outermost, in the order given; or per (schedule, seed),
    where each per-epoch schedule (``"0*5 -20*15"``) sets the run's alpha to its strongest value;
    then one MonoLoss run (``regularizer.kind: monoloss``) per (lambda, seed). Both knobs may be in
    one grid; lambda 0 is plain training, the run of alpha 0 (one run, one id)."""
    if alphas is not None and schedules is not None:
        raise SweepError("give the grid's alphas (--alphas) or its per-epoch alpha schedules (--schedules), "
                         "not both")
    if alphas is None and schedules is None and lambdas is None:
        raise SweepError("give the grid's alphas (--alphas), per-epoch alpha schedules (--schedules) "
                         "or MonoLoss lambdas (--lambdas)")
    seeds = parse_seeds(seeds)
    points = []  # (alpha, lambda, schedule)
    if schedules is not None:
        from ..core.schedule import PerEpochAlpha

        points = [(PerEpochAlpha.parse(s).strength, 0.0, s) for s in parse_schedules(schedules)]
    elif alphas is not None:
        points = [(alpha, 0.0, None) for alpha in parse_alphas(alphas)]
    if lambdas is not None:
        points += [(0.0, lam, None) for lam in parse_alphas(lambdas, "lambda")]
    runs, ids = [], set()
    for alpha, lam, schedule in points:
        for seed in seeds:
            data = copy.deepcopy(config_to_dict(config))
            reg = data["regularizer"]
            reg["alpha"], reg["lambda"], reg["schedule"] = alpha, lam, schedule
            reg["kind"] = "monoloss" if lam != 0.0 else "si"
            if schedule is not None:
                reg["epoch_window"] = None
            data["train"]["seed"] = seed
            try:  # every run's config is checked before any run starts (a schedule the epochs do not cover)
                config_from_dict(copy.deepcopy(data))
            except ConfigError as err:
                what = f"schedule {schedule!r}" if schedule else f"lambda {lam:g}" if lam else f"alpha {alpha:g}"
                raise ConfigError(f"the run of {what}, seed {seed}: {err}") from None
            run = GridRun(alpha=alpha, seed=seed, config=data, id=run_id(data), lam=lam)
            if run.id not in ids:  # lambda 0 beside alpha 0: the same plain run
                ids.add(run.id)
                runs.append(run)
    return runs


# -- the sweep config: a run config plus an optional `slurm:` section ------------------------


def load_sweep_config(source: str | Path | dict | None, overrides: list[str] | None = None) -> tuple[Config, dict]:
    """A run config and the raw ``slurm:`` section from a preset, YAML file or dict.

    Overrides ``slurm.KEY=VALUE`` go to the SLURM section, all others to the run config
    (``train.epochs=2``). The SLURM section is checked by :class:`~.slurm.SlurmResources`.
    """
    data = read_config_source(source)
    slurm: Any = data.pop("slurm", None) or {}
    if not isinstance(slurm, dict):
        raise ConfigError(f"the slurm section must be a mapping of resources, got {slurm!r}")
    run_overrides = []
    for text in overrides or []:
        keys, value = parse_override(text)
        if keys[0] == "slurm":
            if len(keys) != 2:
                raise ConfigError(f"override {text!r}: SLURM resources look like slurm.time=60")
            slurm[keys[1]] = value
        else:
            run_overrides.append(text)
    return load_config(data, run_overrides), slurm
