"""`selectivity measure`: the meter on a finished (or checkpointed) run's weights."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..analysis.evaluation import evaluate
from ..config import ConfigError
from ..data.text import make_loader
from ..runs import atomic_write, open_run, write_text

__all__ = ["measure_run"]


def measure_run(run_dir: str | Path, data: str | None = None, split: str = "test", progress: bool = True) -> dict:
    """Per-unit and per-layer SI of a run on ``data`` (default: the run's own dataset)."""
    run = open_run(run_dir, data=data, split=split, progress=progress)
    paths, config, split_data = run.paths, run.config, run.data
    source = data or config.data.source
    loader = make_loader(split_data, 1024, run.device, shuffle=False)  # images, or texts by length
    try:
        result = evaluate(run.model, loader, split_data.num_classes, config.regularizer.layers)
    except ValueError as err:
        raise ConfigError(f"cannot measure {paths.root} on {source}: {err}") from None
    si = result["selectivity"]
    stem = f"measure-{split_data.name}-{split}"
    units_csv = paths.root / f"{stem}.csv"
    atomic_write(units_csv, lambda tmp: si.to_frame().to_csv(tmp, index=False))
    summary = {"data": str(source), "split": split, "images": len(split_data.labels), "accuracy": result["test_acc"],
               "samples": "texts" if hasattr(split_data, "texts") else "images",
               "mean_si": si.mean, "dead_fraction": si.dead_fraction,
               "mean_si_live": None if math.isnan(si.live_mean) else si.live_mean,
               "per_layer": si.per_layer, "units_csv": str(units_csv),
               "mean_monoscore": None if math.isnan(si.mean_monoscore) else si.mean_monoscore}
    write_text(paths.root / f"{stem}.json", json.dumps(summary, indent=2))
    return summary
