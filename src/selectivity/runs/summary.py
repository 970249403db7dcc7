"""A run's summary, read back from its directory: one row of a results table.

``run_row`` reads ``final.json`` (or ``failed.json`` in a sweep), the wall time over the
attempts, and the summary columns of the evaluations (``robustness.csv``, ``analysis.json``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from .files import RunError, read_json
from .paths import RunPaths

__all__ = ["ROBUSTNESS_COLUMNS", "SEVERITIES", "completed", "eps_label", "read_robustness", "run_row", "run_summary"]

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
    return final if final.get("status") == "completed" else None


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


def run_summary(run_dir: str | Path) -> dict:
    """Scalar summary columns of a run's robustness.csv and analysis.json (empty when neither exists).

    ``corruption_acc``: mean accuracy over the full declared set, the 15 corruptions x 5
    severities on one number of images; NaN when robustness.csv lacks some of them (a subset
    run, or a corruption skipped for a missing package) or mixes image counts, with
    ``corruption_acc_reason`` saying which. ``corruption_acc/s<k>``: over the 15 at severity k
    (NaN unless all 15 are there); ``clean_acc_eval``: the clean row; ``adv_acc/<attack>/<eps>``
    (eps as '4/255'); then analysis.json's ``summary`` (``pc95/<layer>``, ``pc95_early``, ...).
    """
    from ..analysis.corruptions import CORRUPTIONS  # the benchmark's 15: a constant, no torch work

    paths = RunPaths(run_dir)
    out: dict = {}
    table = read_robustness(paths.robustness)
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
    if paths.analysis.is_file():
        try:
            summary = json.loads(paths.analysis.read_text()).get("summary") or {}
        except (OSError, ValueError, AttributeError):
            summary = {}
        out.update({k: (math.nan if v is None else v) for k, v in summary.items()})
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


def run_row(run_dir: str | Path) -> dict | None:
    """One results-table row: final.json (completed or diverged), or failed.json; None otherwise."""
    paths = RunPaths(run_dir)
    if paths.final.exists():
        row = read_json(paths.final)
    elif paths.failed.exists():
        try:
            failed = read_json(paths.failed)
        except RunError:
            failed = {"error": "failed.json is unreadable"}
        row = {key: failed.get(key) for key in ("alpha", "seed", "model", "error", "attempts")}
        row["status"] = "failed"
    else:
        return None
    row["run"] = paths.root.name
    row["wall_seconds"] = _wall_seconds(paths)
    if row.get("status") == "completed":
        row.update(run_summary(paths.root))
    return row
