"""`selectivity measure`: the meter on a finished (or checkpointed) run's weights."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..data import DeviceLoader, load_split
from ..runs import RunError, RunPaths, atomic_write, load_tensors, write_text
from ..train.config import ConfigError, load_config
from ..train.trainer import build_model, evaluate, limit_test, resolve_device

__all__ = ["measure_run", "load_run_model"]


def load_run_model(run_dir: str | Path, data_split):
    """The run's model with its final weights (or its last checkpoint's), in eval mode."""
    paths = RunPaths(Path(run_dir))
    if not paths.config.exists():
        raise RunError(f"{paths.root} is not a run directory (no config.yaml)")
    config = load_config(paths.config)
    model = build_model(config, data_split, start_weights=False)  # the run's own weights follow
    source = paths.weights if paths.weights.exists() else paths.checkpoint
    if not source.exists():
        raise RunError(f"{paths.root} has no weights yet (neither weights.safetensors nor a checkpoint)")
    tensors, _ = load_tensors(source)
    state = {k.removeprefix("model."): v for k, v in tensors.items() if source == paths.weights or k.startswith("model.")}
    own = model.state_dict()  # a class count that differs shows as the output layer's first dimension
    n = data_split.num_classes
    outputs = [k for k, v in state.items() if k in own and v.ndim and own[k].shape[0] == n != v.shape[0]]
    if outputs:
        raise RunError(f"{paths.root} was trained on {state[outputs[0]].shape[0]} classes but the data "
                       f"{data_split.name!r} has {n}; measure on data with the run's classes")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise RunError(f"{source} does not fit the model of {paths.config}: {str(err).splitlines()[0]}") from None
    return config, model.eval()


def run_model_on(run_dir: str | Path, data: str | None, split: str, progress: bool):
    """(config, model on its device, the split to measure, device) for a run directory: the run's
    own dataset unless ``data`` names another. The run's own test split is the images its
    training evaluated (``data.test_limit``), so that mean SI here is final.json's."""
    paths = RunPaths(Path(run_dir))
    if not paths.config.exists():
        raise RunError(f"{paths.root} is not a run directory (no config.yaml)")
    config = load_config(paths.config)
    # The model's normalization comes with its weights: no need to decode the train split.
    split_data = load_split(data or config.data.source, split, cache_dir=config.data.cache_dir, progress=progress,
                            stats_from=split)
    if data is None and split == "test":
        split_data = limit_test(split_data, config.data.test_limit)
    config, model = load_run_model(run_dir, split_data)
    device = resolve_device(config.train.device)
    return config, model.to(device), split_data, device


def measure_run(run_dir: str | Path, data: str | None = None, split: str = "test", progress: bool = True) -> dict:
    """Per-unit and per-layer SI of a run on ``data`` (default: the run's own dataset)."""
    paths = RunPaths(Path(run_dir))
    config, model, split_data, device = run_model_on(run_dir, data, split, progress)
    source = data or config.data.source
    loader = DeviceLoader(split_data, 1024, device, shuffle=False)
    try:
        result = evaluate(model, loader, split_data.num_classes, config.regularizer.layers)
    except ValueError as err:
        raise ConfigError(f"cannot measure {paths.root} on {source}: {err}") from None
    si = result["selectivity"]
    stem = f"measure-{split_data.name}-{split}"
    units_csv = paths.root / f"{stem}.csv"
    atomic_write(units_csv, lambda tmp: si.to_frame().to_csv(tmp, index=False))
    summary = {"data": str(source), "split": split, "images": len(split_data.labels), "accuracy": result["test_acc"],
               "mean_si": si.mean, "dead_fraction": si.dead_fraction,
               "mean_si_live": None if math.isnan(si.live_mean) else si.live_mean,
               "per_layer": si.per_layer, "units_csv": str(units_csv),
               "mean_monoscore": None if math.isnan(si.mean_monoscore) else si.mean_monoscore}
    write_text(paths.root / f"{stem}.json", json.dumps(summary, indent=2))
    return summary
