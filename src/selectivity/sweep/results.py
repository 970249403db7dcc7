"""The results table: one row per run, read from each run directory.

A finished run's row comes from its final.json (status ``completed`` or ``diverged``); a
run that used up its retries in a sweep has a ``failed.json`` and gets a row with status
``failed``, its error and no metrics. Runs that are neither are left out. ``wall_seconds``
is the sum over the run's attempts in a sweep (``attempts.jsonl``; empty outside sweeps),
``train_seconds`` the training time alone (a stacked run's share of its stack's; the stack's own
is ``stack_train_seconds``). final.json's ``settings`` (the run's whole config) is not a column:
the table is flat, and each run's config.yaml holds the same.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..runs import run_row

__all__ = ["RESULT_COLUMNS", "collect_results"]

#: Leading columns, in order; one ``si/<layer>`` column per layer follows.
RESULT_COLUMNS = ["alpha", "seed", "model", "dataset", "test_acc", "mean_si", "dead_fraction", "mean_si_live",
                  "kind", "lambda",
                  "status", "epochs", "train_seconds", "wall_seconds"]


def collect_results(run_dirs: list[str | Path]) -> pd.DataFrame:
    """Rows for the finished and failed runs among ``run_dirs`` (the others are left out)."""
    rows = [{k: v for k, v in row.items() if not isinstance(v, dict)}  # final.json's settings
            for row in (run_row(run_dir) for run_dir in run_dirs) if row is not None]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    layer_columns = [c for c in frame.columns if c.startswith("si/")]
    rest = [c for c in frame.columns if c not in RESULT_COLUMNS and c not in layer_columns]
    frame = frame.reindex(columns=RESULT_COLUMNS + layer_columns + rest)
    return frame.sort_values(["kind", "lambda", "alpha", "seed"], kind="stable").reset_index(drop=True)
