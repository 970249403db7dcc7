"""A run's summary, read back from its directory: one row of a results table.

``run_row`` reads ``final.json`` (or ``failed.json`` in a sweep), the wall time over the
attempts, the summary columns of the evaluations (``robustness.csv``, ``analysis.json``) and
every training setting of the run's resolved ``config.yaml``, one column per setting with a
dotted name (``optim.weight_decay``, ``train.batch_size``, ``model.kwargs.width``), so that
runs trained differently can always be told apart. ``unfinished_row`` is the row of a run
that was planned (it has a config.yaml, or an entry in the sweep's manifest) but has not
finished: the report counts it.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pandas as pd
import yaml

from .files import RunError, read_json
from .paths import RunPaths
from ..safe_yaml import load_yaml

__all__ = ["ROBUSTNESS_COLUMNS", "SEVERITIES", "completed", "eps_label", "flatten_settings", "main_image_set",
           "population_summary", "read_final", "read_robustness", "run_row", "run_settings", "run_summary", "unfinished_row"]

#: ``config_source``: where a row's settings columns come from.
FROM_CONFIG, FROM_MANIFEST = "config.yaml", "sweep.json"

#: Columns of robustness.csv: kind (clean/corruption/attack), name, level (severity or epsilon),
#: accuracy (a fraction) and n (images evaluated).
ROBUSTNESS_COLUMNS = ["kind", "name", "level", "accuracy", "n"]

#: The benchmark's severities: the declared set of ``corruption_acc`` is every corruption at each.
SEVERITIES = (1, 2, 3, 4, 5)


def eps_label(eps: float) -> str:
    """'4/255' for a multiple of 1/255, else the number ('0.03')."""
    k = eps * 255
    if abs(k - round(k)) < 1e-6:
        return f"{round(k)}/255"
    return f"{eps:g}"


def completed(run_dir: str | Path) -> dict | None:
    """The run's final.json when it completed; None otherwise (unfinished, diverged, unreadable)."""
    path = RunPaths(run_dir).final
    if not path.is_file():
        return None
    try:
        final = read_json(path)
    except RunError:
        return None
    return final if isinstance(final, dict) and final.get("status") == "completed" else None


def read_final(path: Path) -> dict:
    """A run's final.json: a JSON object with a status, else a one-line RunError naming it."""
    final = read_json(path)
    if not isinstance(final, dict) or not isinstance(final.get("status"), str):
        what = "an object without a status" if isinstance(final, dict) else f"a JSON {type(final).__name__}"
        raise RunError(f"{path} is {what}, not the final.json training writes (an object with its status, alpha, "
                       "seed and metrics); remove it or train the run again")
    return final


def read_robustness(path: Path) -> pd.DataFrame:
    """robustness.csv as a frame; an empty frame when it is missing or not that table."""
    if not path.is_file():
        return pd.DataFrame(columns=ROBUSTNESS_COLUMNS)
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError):
        return pd.DataFrame(columns=ROBUSTNESS_COLUMNS)
    if any(c not in frame.columns for c in ROBUSTNESS_COLUMNS):
        return pd.DataFrame(columns=ROBUSTNESS_COLUMNS)
    return frame


def main_image_set(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of robustness.csv (or masking.csv) on the run's largest image set.

    Calls with other ``--limit`` values keep their results apart, keyed by the number of images
    ``n``; a run's summary columns, and the report, read the set with the most images.
    """
    if not len(table) or "n" not in table.columns or table["n"].isna().all():
        return table
    return table[table["n"] == table["n"].max()]


def run_summary(run_dir: str | Path) -> dict:
    """Scalar summary columns of a run's robustness.csv and analysis.json (empty when neither exists).

    ``corruption_acc``: mean accuracy over the full declared set, the 15 corruptions x 5
    severities on one number of images; NaN when robustness.csv lacks some of them (a subset
    run, or a corruption skipped for a missing package) or mixes image counts, with
    ``corruption_acc_reason`` saying which. ``corruption_acc/s<k>``: over the 15 at severity k
    (NaN unless all 15 are there); ``clean_acc_eval``: the clean row; ``adv_acc/<attack>/<eps>``
    (eps as '4/255'); then analysis.json's ``summary`` (``pc95/<layer>``, ``pc95_early``, ...)
    and population.csv's (:func:`population_summary`). The robustness columns come from the run's
    largest image set (:func:`main_image_set`), whose size is ``robustness_n``.
    """
    from ..analysis.corruptions import CORRUPTIONS  # the benchmark's 15: a constant, no torch work

    paths = RunPaths(run_dir)
    out: dict = {}
    table = main_image_set(read_robustness(paths.robustness))
    if len(table):
        # the 4 extra corruptions never count; a row without accuracy was skipped, so it is missing
        corr = table[(table["kind"] == "corruption") & table["name"].isin(CORRUPTIONS) & table["accuracy"].notna()]
        if len(corr):
            pairs = set(zip(corr["name"], corr["level"].astype(float), strict=True))
            declared = len(CORRUPTIONS) * len(SEVERITIES)
            have = len(pairs & {(c, float(s)) for c in CORRUPTIONS for s in SEVERITIES})
            sizes = sorted(int(n) for n in corr["n"].unique())
            if have < declared or len(sizes) > 1:
                out["corruption_acc"] = math.nan
                out["corruption_acc_reason"] = (
                    f"robustness.csv mixes image counts (n = {', '.join(map(str, sizes))})" if len(sizes) > 1 else
                    f"robustness.csv has {have} of the {declared} declared (corruption, severity) pairs: run "
                    "`selectivity robustness` with every corruption and severity")
            else:
                out["corruption_acc"] = float(corr["accuracy"].mean())
            for s, group in corr.groupby("level"):
                full = group["name"].nunique() == len(CORRUPTIONS) and len(sizes) == 1
                out[f"corruption_acc/s{int(s)}"] = float(group["accuracy"].mean()) if full else math.nan
        clean = table[table["kind"] == "clean"]
        if len(clean):
            out["clean_acc_eval"] = float(clean["accuracy"].iloc[-1])
        for r in table[table["kind"] == "attack"].itertuples(index=False):
            out[f"adv_acc/{r.name}/{eps_label(float(r.level))}"] = float(r.accuracy)
        counts = table["n"].dropna().unique()
        if len(counts) == 1:  # the images per evaluation: accuracies move in steps of 1 / n
            out["robustness_n"] = int(counts[0])
    out.update(measure_means(paths.unit_measures))
    for rule in ("cls", "mean", "patches", "last"):  # units read on other tokens: mean_<measure>_<rule>
        read_on = measure_means(paths.unit_measures_read_on(rule), with_si=True)
        out.update({f"{k}_{rule}": v for k, v in read_on.items()})
    out.update(population_summary(paths.population))
    if paths.analysis.is_file():
        try:
            summary = json.loads(paths.analysis.read_text()).get("summary") or {}
        except (OSError, ValueError, AttributeError):
            summary = {}
        out.update({k: (math.nan if v is None else v) for k, v in summary.items()})
    return out


#: unit_measures.csv columns that are not measures.
_NOT_MEASURES = ("layer", "unit", "dead", "preferred_class", "si")


def _read_table(path: Path, columns: set[str]) -> pd.DataFrame | None:
    """An evaluation's CSV with at least ``columns``; None when it is missing, unreadable or another table."""
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError):
        return None
    return frame if columns <= set(frame.columns) else None


def measure_means(path: Path, with_si: bool = False) -> dict:
    """``mean_<measure>`` of a run's unit_measures.csv (`selectivity measure --measures`): per layer
    the mean over the units where the measure is defined (a dead unit's informedness is 0, as its
    SI is; its MonoScore is undefined and left out), then the mean over layers, as mean SI is.
    SI itself is final.json's ``mean_si`` (``with_si``: also from this file, for units read on other
    tokens than training's). Empty when the file is missing or unreadable."""
    frame = _read_table(path, {"layer"})
    if frame is None:
        return {}
    out = {}
    for column in frame.columns:
        if (column in _NOT_MEASURES and not (with_si and column == "si")) or \
                not pd.api.types.is_numeric_dtype(frame[column]):
            continue
        per_layer = frame.groupby("layer", sort=False)[column].mean().dropna()
        out[f"mean_{column}"] = float(per_layer.mean()) if len(per_layer) else math.nan
    return out


#: population.csv columns that become ``<column>/<layer>`` summary columns.
_POPULATION_COLUMNS = ("probe_acc", "probe_loss", "axis_gap")


def population_summary(path: Path) -> dict:
    """A run's population.csv (`selectivity analyze --population`) as summary columns: per layer
    ``probe_acc/<layer>``, ``probe_loss/<layer>`` and ``axis_gap/<layer>``; over the layers
    ``mean_probe_acc`` and ``mean_axis_gap`` (layers without a gap, all units dead, left out).
    Empty when the file is missing or unreadable."""
    frame = _read_table(path, {"layer", *_POPULATION_COLUMNS})
    if frame is None:
        return {}
    out = {}
    for row in frame.itertuples(index=False):
        for column in _POPULATION_COLUMNS:
            out[f"{column}/{row.layer}"] = float(getattr(row, column))
    for column in ("probe_acc", "axis_gap"):
        values = frame[column].dropna()
        out[f"mean_{column}"] = float(values.mean()) if len(values) else math.nan
    return out


def _wall_seconds(paths: RunPaths) -> float | None:
    if not paths.attempts.exists():
        return None
    total = 0.0
    for line in paths.attempts.read_text(errors="replace").splitlines():
        try:
            total += float(json.loads(line).get("wall_seconds") or 0.0)
        except (ValueError, AttributeError):  # a line cut short by a crash
            continue
    return total


def flatten_settings(config: dict, prefix: str = "") -> dict:
    """Every setting of a resolved config as one column: nested keys joined by dots, lists as
    JSON text (a table cell holds one value), None kept; the config's ``name`` (a label, not a
    setting) is left out.

    >>> flatten_settings({"name": "x", "optim": {"lr": 0.1, "milestones": [0.5]}, "model": {"kwargs": {}}})
    {'optim.lr': 0.1, 'optim.milestones': '[0.5]'}
    """
    out = {}
    for key, value in config.items():
        if not prefix and key == "name":
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_settings(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(list(value))
        else:
            out[name] = value
    return out


def run_settings(run_dir: str | Path) -> dict:
    """The run's training settings from its config.yaml (see :func:`flatten_settings`), with
    ``config_source``; empty when the run has no readable config.yaml."""
    path = RunPaths(run_dir).config
    if not path.is_file():
        return {}
    try:
        config = load_yaml(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    if not isinstance(config, dict):
        return {}
    return {**flatten_settings(config), "config_source": FROM_CONFIG}


def knob_columns(settings: dict) -> dict:
    """The regularizer's knob of a run beside its alpha: ``kind`` (si | monoloss) and ``lambda``
    (MonoLoss strength); runs trained before MonoLoss existed are kind si, lambda 0."""
    return {"kind": settings.get("regularizer.kind") or "si",
            "lambda": float(settings.get("regularizer.lambda") or 0.0)}


def unfinished_row(run_dir: str | Path, entry: dict | None = None, base_config: dict | None = None) -> dict:
    """The row of a planned run without final.json or failed.json: status ``unfinished``.

    Its settings come from its config.yaml (written when training starts), else from the
    sweep manifest's ``entry`` (alpha, seed, status) over the sweep's ``base_config``.
    """
    paths = RunPaths(run_dir)
    settings = run_settings(paths.root)
    entry = entry or {}
    if not settings and base_config is not None:
        config = copy.deepcopy(base_config)
        config.setdefault("regularizer", {})["alpha"] = entry.get("alpha")
        if entry.get("kind") == "monoloss":  # a MonoLoss run's entry holds its knob
            config["regularizer"].update(kind="monoloss", **{"lambda": entry.get("lambda")})
        config.setdefault("train", {})["seed"] = entry.get("seed")
        settings = {**flatten_settings(config), "config_source": FROM_MANIFEST}
    alpha = entry.get("alpha", settings.get("regularizer.alpha"))
    seed = entry.get("seed", settings.get("train.seed"))
    row = {"alpha": None if alpha is None else float(alpha), "seed": seed, "model": settings.get("model.name"),
           "status": "unfinished", "run": paths.root.name}
    if entry.get("status"):
        row["sweep_status"] = entry["status"]  # queued, submitted, retrying, interrupted, ...
    if settings.get("regularizer.schedule") is not None:
        row["schedule"] = settings["regularizer.schedule"]
    row.update(knob_columns(settings))
    row.update({k: v for k, v in settings.items() if k not in row})
    return row


def run_row(run_dir: str | Path) -> dict | None:
    """One results-table row: final.json (completed or diverged), or failed.json; None otherwise.

    Every training setting of the run's config.yaml is added (dotted names), unless final.json
    already holds a column of that name.
    """
    paths = RunPaths(run_dir)
    if paths.final.exists():
        row = read_final(paths.final)
    elif paths.failed.exists():
        try:
            failed = read_json(paths.failed)
        except RunError:
            failed = {"error": "failed.json is unreadable"}
        if not isinstance(failed, dict):
            failed = {"error": "failed.json is not a JSON object"}
        row = {key: failed.get(key) for key in ("alpha", "seed", "model", "error", "attempts")}
        row["status"] = "failed"
    else:
        return None
    row["run"] = paths.root.name
    row["wall_seconds"] = _wall_seconds(paths)
    if row.get("status") == "completed":
        row.update(run_summary(paths.root))
    settings = run_settings(paths.root)
    row.update({k: v for k, v in knob_columns(settings).items() if k not in row})
    row.update({k: v for k, v in settings.items() if k not in row})
    return row
