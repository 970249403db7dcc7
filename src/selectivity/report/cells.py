"""Cells, and the runs each cell planned: what is compared with what, and what is missing.

A results table (one row per run, any status) is split into **cells**: one per combination
of ``model``, ``dataset`` and every training setting that differs between completed runs.
The settings are the dotted columns read from each run's resolved ``config.yaml``
(``optim.weight_decay``, ``train.batch_size``, ...; see
:func:`selectivity.runs.summary.flatten_settings`), not a fixed list, so a sweep over any
setting gives one cell per value. Keys that legitimately vary within a cell never split it:

- the compared condition and the replicate: ``regularizer.alpha`` (the alpha column),
  ``train.seed`` (the seed column); for a claim with ``by: X``, X itself and, when X is
  derived from the alpha schedule (``reg_from``), the schedule keys;
- where and how a run was computed, not what was trained: paths (``data.source``, named by
  the ``dataset`` column instead; ``data.cache_dir``), ``train.device``, ``train.threads``,
  ``train.channels_last``; ``model.name`` (the ``model`` column);
- what is observed, not what is trained: ``train.eval_every`` (the final evaluation is the
  same), ``record.*`` (the SI recorded during training).

Tables without settings columns (a results.csv from an older version) split on the columns
:data:`LEGACY_COLUMNS` and ``config/<key>``, as before.

Runs that did not complete (diverged, failed, unfinished) have no metrics, and failed or
unfinished ones often no ``dataset``: :func:`assign_cells` puts such a run in the one cell
that matches what it does record, so that it counts as a planned run of that cell.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..config import Config

__all__ = ["CELL_COLUMNS", "LEGACY_COLUMNS", "SCHEDULE_COLUMNS", "WITHIN_CELL", "assign_cells", "cell_columns",
           "is_setting"]

#: Columns that name what was trained on what: always cell columns when present.
CELL_COLUMNS = ("model", "dataset")
#: The sections of a resolved config: a results column "<section>.<key>" is a training setting.
SETTING_SECTIONS = tuple(f.name for f in dataclasses.fields(Config) if f.name != "name")
#: Settings that never split cells, and why (keys ending in "." cover a whole section).
WITHIN_CELL = {
    "regularizer.alpha": "the condition compared (the alpha column)",
    "train.seed": "the replicate (the seed column)",
    "model.name": "named by the model column",
    "data.source": "a path: the data are named by the dataset column",
    "data.cache_dir": "a path",
    "train.device": "where the run trained",
    "train.threads": "CPU threads",
    "train.channels_last": "memory layout",
    "train.eval_every": "how often test accuracy is logged; the final evaluation is the same",
    "record.": "what is recorded during training, not what is trained",
}
#: Config columns that split cells in tables without settings columns (older results.csv).
LEGACY_COLUMNS = ("epochs", "optimizer", "lr", "batch_size", "width", "augment", "preset", "schedule")
#: The columns that say when the selectivity term acts: they do not split cells for a claim
#: that compares by a column derived from them (``by: reg_from``).
SCHEDULE_COLUMNS = ("schedule", "regularizer.schedule", "regularizer.epoch_window", "reg_from")


def is_setting(column) -> bool:
    """A dotted training-setting column such as ``optim.lr`` (not a metric such as ``si/layer1.0``)."""
    text = str(column)
    return "." in text and text.split(".", 1)[0] in SETTING_SECTIONS


def _within_cell(column: str) -> bool:
    return any(column == key or (key.endswith(".") and column.startswith(key)) for key in WITHIN_CELL)


def _completed(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["status"] == "completed"] if "status" in results.columns else results


def cell_columns(results: pd.DataFrame, exempt=()) -> list[str]:
    """The columns that split ``results`` into cells: model and dataset (when present), then
    every training setting (or, in older tables, legacy config column) whose value differs
    between completed runs, except :data:`WITHIN_CELL` and ``exempt``."""
    done = _completed(results)
    out = [c for c in CELL_COLUMNS if c in results.columns]
    settings = [c for c in results.columns if is_setting(c)]
    candidates = settings if settings else [c for c in results.columns if c in LEGACY_COLUMNS]
    candidates += [c for c in results.columns if str(c).startswith("config/")]
    for column in candidates:
        if column in exempt or _within_cell(str(column)):
            continue
        if done[column].astype(str).nunique() > 1:
            out.append(column)
    return out


def _unknown(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Where a non-completed row does not know its value of ``column`` (not a None setting)."""
    missing = frame[column].isna().to_numpy(copy=True)
    not_done = (frame["status"] != "completed").to_numpy() if "status" in frame.columns else np.zeros(len(frame), bool)
    if is_setting(column):
        source = frame["config_source"] if "config_source" in frame.columns else pd.Series(np.nan, frame.index)
        missing &= source.isna().to_numpy()  # a run with a config.yaml knows its None settings
    return missing & not_done


def assign_cells(results: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``results`` with the cell columns ``keys`` as text, and each non-completed run that does
    not record some of them (a failed run has no dataset) put in the one cell of completed runs
    that matches what it records; a run that matches none or several keeps 'nan' there."""
    frame = results.copy()
    if not keys:
        return frame
    unknown = {k: _unknown(frame, k) for k in keys}
    text = {k: frame[k].astype(str) for k in keys}
    for k in keys:
        frame[k] = text[k]
    done = _completed(frame)
    cells = done[keys].drop_duplicates().to_dict("records")
    rows = np.flatnonzero(np.any([unknown[k] for k in keys], axis=0))
    for i in rows:
        row = frame.iloc[i]
        known = {k: row[k] for k in keys if not unknown[k][i]}
        matches = [c for c in cells if all(c[k] == v for k, v in known.items())]
        if len(matches) == 1:
            for k in keys:
                if unknown[k][i]:
                    frame.iat[i, frame.columns.get_loc(k)] = matches[0][k]
    return frame
