"""The results table: one row per run, read from each run directory.

A finished run's row comes from its final.json (status ``completed`` or ``diverged``); a
run that used up its retries in a sweep has a ``failed.json`` and gets a row with status
``failed``, its error and no metrics. Runs that are neither are left out. ``wall_seconds``
is the sum over the run's attempts in a sweep (``attempts.jsonl``; empty outside sweeps),
``train_seconds`` the training time alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..train.run import RunError, RunPaths, read_json

__all__ = ["RESULT_COLUMNS", "collect_results"]

#: Leading columns, in order; one ``si/<layer>`` column per layer follows.
RESULT_COLUMNS = ["alpha", "seed", "model", "dataset", "test_acc", "mean_si", "status", "epochs", "train_seconds",
                  "wall_seconds"]

# File names a sweep adds to a run directory (see selectivity.sweep.manifest.SweepRunPaths).
_ATTEMPTS, _FAILED = "attempts.jsonl", "failed.json"


def _wall_seconds(root: Path) -> float | None:
    path = root / _ATTEMPTS
    if not path.exists():
        return None
    total = 0.0
    for line in path.read_text().splitlines():
        try:
            total += float(json.loads(line).get("wall_seconds") or 0.0)
        except (ValueError, AttributeError):  # a line cut short by a crash
            continue
    return total


def _row(paths: RunPaths) -> dict | None:
    if paths.final.exists():
        row = read_json(paths.final)
    elif (paths.root / _FAILED).exists():
        try:
            failed = read_json(paths.root / _FAILED)
        except RunError:
            failed = {"error": "failed.json is unreadable"}
        row = {key: failed.get(key) for key in ("alpha", "seed", "model", "error", "attempts")}
        row["status"] = "failed"
    else:
        return None
    row["run"] = paths.root.name
    row["wall_seconds"] = _wall_seconds(paths.root)
    if row.get("status") == "completed":
        # Summary columns of `selectivity robustness` / `analyze` (robustness.csv, analysis.json).
        from ..analysis.evaluate import run_summary

        row.update(run_summary(paths.root))
    return row


def collect_results(run_dirs: list[str | Path]) -> pd.DataFrame:
    """Rows for the finished and failed runs among ``run_dirs`` (the others are left out)."""
    rows = [row for row in (_row(RunPaths(Path(run_dir))) for run_dir in run_dirs) if row is not None]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    layer_columns = [c for c in frame.columns if c.startswith("si/")]
    rest = [c for c in frame.columns if c not in RESULT_COLUMNS and c not in layer_columns]
    frame = frame.reindex(columns=RESULT_COLUMNS + layer_columns + rest)
    return frame.sort_values(["alpha", "seed"], kind="stable").reset_index(drop=True)
