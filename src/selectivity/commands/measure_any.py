"""Every selectivity measure of a network the tool did not train, or of a run, to CSV (and a page).

- :func:`measure_any` / :func:`measure_model`: a model (registered name or
  ``package.module:factory``) with weights from a ``.safetensors`` file, on labelled images of any size (:mod:`selectivity.data.imageset`),
  resized and centre-cropped to the model's input size. Images enter the model in [0, 1]
  unless ``mean``/``std`` are given. Writes ``unit_measures.csv``, ``measure_agreement.csv``,
  ``exemplars.html`` and ``measure.json`` to ``out``.
- :func:`measure_run_units`: a run directory's model on its own test split; writes
  ``unit_measures.csv`` and ``measure_agreement.csv`` in the run directory.

Every measure uses every image unless ``sample_size`` is given (then AUROC, informedness and MI
rank a seeded uniform sample, and :func:`sampling_summary` gives their standard error). Dead
units (no response above 0) are marked in the ``dead`` column and never ranked on the page;
nor are units active on fewer than ``min_active`` images (:func:`default_min_active`), which
the page lists apart.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import yaml
from torch import nn
from tqdm import tqdm

from ..analysis.finite import check_finite_logits
from ..analysis.measures import MEASURES, UnitMeasureAccumulator, measure_agreement, most_selective, ranked_measures
from ..core.functional import selectivity_index
from ..core.meter import dead_unit_summary
from ..core.probe import Probe, unit_activations
from ..data.imageset import ImageSet, open_image_set
from ..models import create_model
from ..runs import RunPaths, atomic_write, resolve_device, write_text
from ..runs.weights import WeightsError, load_safetensors_weights
from ..config import ConfigError
from .exemplars import TopK, class_histogram_svg, exemplar_page, png_data_uri
from ..safe_yaml import load_yaml

__all__ = ["WeightsError", "build_measured_model", "default_min_active", "load_safetensors_weights", "measure_any",
           "measure_model", "measure_run_units", "measure_sweep", "model_kwargs", "sampling_summary", "si_summary"]

def model_kwargs(settings: list[str] | None) -> dict:
    """``KEY=VALUE`` strings (``model.kwargs.KEY``, ``model.KEY`` or ``KEY``; YAML values) -> kwargs."""
    kwargs = {}
    for item in settings or []:
        key, sep, value = item.partition("=")
        key = key.strip().removeprefix("model.").removeprefix("kwargs.")
        if not sep or not key or "." in key:
            raise ConfigError(f"--set {item!r}: expected model.kwargs.KEY=VALUE (or KEY=VALUE)")
        try:
            kwargs[key] = load_yaml(value, f"--set {key}")
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({err})") from None
    return kwargs


def build_measured_model(name: str, weights: str | Path, num_classes: int, kwargs: dict | None = None) -> nn.Module:
    """``create_model`` (num_classes from the data unless kwargs give ``num_classes``) + safetensors weights."""
    kwargs = dict(kwargs or {})
    num_classes = int(kwargs.pop("num_classes", num_classes))
    try:
        model = create_model(name, num_classes, **kwargs)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return load_safetensors_weights(model, weights).eval()


def _input_size(model: nn.Module, images: ImageSet, size: int | None) -> int:
    if size is not None:
        return int(size)
    declared = getattr(model, "input_size", None)
    if declared:
        return int(declared[-1])
    h, w = images.first_image_size()
    if h != w:
        raise ConfigError(f"the model declares no input_size and the images are not square ({w}x{h}): pass --size")
    return int(h)


def _channel_stats(values, name: str) -> torch.Tensor | None:
    if values is None:
        return None
    t = torch.as_tensor(values, dtype=torch.float32).flatten()
    if t.numel() not in (1, 3) or (name == "std" and not bool((t > 0).all())):
        raise ConfigError(f"--{name} must be 1 or 3 {'positive ' if name == 'std' else ''}numbers, got {values}")
    return t.view(1, -1, 1, 1)


def _check_measures(measures, sample_size: int | None = None) -> None:
    try:
        UnitMeasureAccumulator(2, measures)
    except ValueError as err:
        raise ConfigError(f"--measures: {err}") from None
    try:
        UnitMeasureAccumulator(2, "si", sample_size=sample_size)
    except ValueError as err:
        raise ConfigError(f"--sample: {err}") from None


class _LayerState:
    def __init__(self, name: str, num_classes: int, measures, sample_size: int | None, seed: int, top_images: int):
        self.acc = UnitMeasureAccumulator(num_classes, measures, sample_size=sample_size, seed=seed, name=name)
        self.top = TopK(top_images)


@torch.no_grad()
def _stream(model, probe: Probe, batches, num_classes, measures, sample_size, seed, top_images, progress, total,
            gather: int = 0):
    """Every layer's measure state and top samples over the batches. ``gather``: feed the states
    at least that many samples at a time (small batches of long texts: each state update has a cost
    per call, such as a top-K over the held items and the new ones); the states are exact either way."""
    states: dict[str, _LayerState] = {}
    pending: list[tuple[dict, torch.Tensor]] = []
    offset = 0

    def feed() -> None:
        nonlocal offset
        y = torch.cat([labels for _, labels in pending])
        for name in probe.layers:
            units = torch.cat([unit_activations(acts[name], name) for acts, _ in pending])
            if name not in states:
                states[name] = _LayerState(name, num_classes, measures, sample_size, seed, top_images)
            state = states[name]
            state.acc.update(units, y.to(units.device))
            state.top.update(units, offset)
        offset += y.shape[0]
        pending.clear()

    seen = 0
    for x, y in tqdm(batches, total=total, desc="measuring", unit="batch", disable=not progress):
        output = model(x)
        if isinstance(output, torch.Tensor) and output.ndim == 2:  # logits: NaN or inf is an error, never a unit value
            check_finite_logits(model, x, output, f"inputs {seen}-{seen + y.shape[0] - 1}")
        seen += y.shape[0]
        pending.append((probe.collect(batch_size=y.shape[0]), y))
        if sum(labels.shape[0] for _, labels in pending) >= gather:
            feed()
    if pending:
        feed()
    return states


def _tables(states: dict[str, _LayerState]):
    import pandas as pd

    frame = pd.concat([s.acc.to_frame(name) for name, s in states.items()], ignore_index=True)
    return frame, measure_agreement(frame)


def _write_tables(out: Path, frame, agreement) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    names = RunPaths(out)
    paths = {"unit_measures": names.unit_measures, "measure_agreement": names.measure_agreement}
    atomic_write(paths["unit_measures"], lambda tmp: frame.to_csv(tmp, index=False))
    atomic_write(paths["measure_agreement"], lambda tmp: agreement.to_csv(tmp, index=False))
    return {k: str(v) for k, v in paths.items()}


def si_summary(states: dict[str, _LayerState]) -> dict:
    """The summary the run form of ``selectivity measure`` prints: mean SI per layer and over the
    layers, the fraction of dead units and the mean SI of the live units (as :class:`SelectivityResult`)."""
    per_unit = {name: selectivity_index(s.acc.class_means(), s.acc.eps) for name, s in states.items()}
    dead = {name: s.acc.dead_units() for name, s in states.items()}
    summary = dead_unit_summary(per_unit, dead)
    per_layer = {name: float(si.mean()) for name, si in per_unit.items()}
    live = summary["live_mean"]
    return {"mean_si": sum(per_layer.values()) / len(per_layer), "dead_fraction": summary["dead_fraction"],
            "mean_si_live": None if math.isnan(live) else live, "per_layer": per_layer,
            "dead_units": sum(int(d.sum()) for d in dead.values()), "units": sum(d.numel() for d in dead.values())}


def sampling_summary(states: dict[str, _LayerState]) -> dict | None:
    """None when every measure used every image; else how many images the sampled measures kept
    and, per layer and measure, the root mean square over live units of the standard error."""
    first = next(iter(states.values())).acc
    if first.exact:
        return None
    errors = {}
    for name, state in states.items():
        live = ~state.acc.dead_units()
        errors[name] = {m: float(se[live].pow(2).mean().sqrt()) if bool(live.any()) else 0.0
                        for m, se in state.acc.sampling_errors().items()}
    return {"kept": first.kept, "images": first.total, "standard_error": errors}


def _dead_units(frame) -> dict[str, list[int]]:
    dead = frame[frame["dead"]]
    return {layer: dead.unit[dead.layer == layer].tolist() for layer in frame.layer.unique()}


def default_min_active(images: int, classes: int, slots: int) -> int:
    """Images a unit must respond to (above 0) to be ranked on the page: a tenth of an average
    class, and at least the exemplar slots (so that every slot shows an image the unit answers),
    at most every image. 100 of CIFAR-10's 10,000 test images; 10 of the demo's 1,000; 8 of
    ImageNet's 50,000 (50 per class)."""
    return max(1, min(images, max(slots, math.ceil(0.1 * images / max(1, classes)))))


def _active_counts(frame, states):
    """(rows of frame,) images each unit responds to (above 0), from the accumulators' counts."""
    import numpy as np

    counts = {name: s.acc.positive.cpu().numpy() for name, s in states.items()}
    return np.array([counts[layer][unit] for layer, unit in zip(frame.layer, frame.unit)], dtype=np.int64)


def _exemplar_sections(frame, states, images: ImageSet, size: int, crop_fraction: float, units_per_measure: int,
                       min_active: int):
    """The page's sections, and the live units left out for responding to fewer than ``min_active`` images."""
    measures = ranked_measures(frame.columns)
    frame = frame.assign(active=_active_counts(frame, states))
    rare = frame[~frame["dead"] & (frame.active < min_active)]
    ranked = frame[frame.active >= min_active]  # never a dead unit (active 0): min_active >= 1
    sections = []
    for measure in measures:
        units = []
        for row in most_selective(ranked, measure, units_per_measure).itertuples():
            state = states[row.layer]
            pairs = [(int(i), float(v)) for i, v in zip(state.top.indices[:, row.unit].tolist(),
                                                          state.top.values[:, row.unit].tolist()) if v > 0]
            pictures = images.batch([i for i, _ in pairs], size, crop_fraction) if pairs else []
            means = state.acc.class_means()[:, row.unit].numpy()
            units.append({
                "layer": row.layer, "unit": int(row.unit), "preferred": images.classes[int(row.preferred_class)],
                "active": int(row.active), "values": {m: float(getattr(row, m)) for m in measures},
                "images": [(png_data_uri(p), images.classes[int(images.labels[i])], v)
                           for p, (i, v) in zip(pictures, pairs)],
                "svg": class_histogram_svg(means, images.classes, int(row.preferred_class)),
            })
        sections.append({"measure": measure, "description": MEASURES[measure].description, "units": units})
    rare_units = {layer: list(zip(rare.unit[rare.layer == layer].tolist(), rare.active[rare.layer == layer].tolist()))
                  for layer in frame.layer.unique()}
    return sections, rare_units


def measure_model(
    model: nn.Module,
    data: str | Path | ImageSet,
    out: str | Path,
    layers=None,
    measures="all",
    mean=None,
    std=None,
    size: int | None = None,
    crop_fraction: float = 1.0,
    split: str | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    sample_size: int | None = None,
    seed: int = 0,
    top_images: int = 8,
    units_per_measure: int = 4,
    progress: bool = True,
    tokens: str | None = None,
    positive_part: bool | None = None,
    min_active: int | None = None,
    model_name: str | None = None,
    weights: str | Path | None = None,
    data_name: str | None = None,
) -> dict:
    """Measure every unit of ``model``'s layers on ``data``; write the CSVs and ``exemplars.html`` to ``out``.

    Args:
        model: the network, weights loaded (see :func:`build_measured_model`); put in eval mode here.
        data: a folder or zip of labelled images (:func:`~selectivity.data.imageset.open_image_set`).
        layers: module names or glob patterns; None for the model's default layers.
        mean, std: per-channel normalization applied to the [0, 1] images; None: none.
        size: the square input side; None: ``model.input_size``, else the images' own (square) size.
        crop_fraction: shorter side resized to ``size / crop_fraction`` before the centre crop.
        sample_size, seed: None (default) ranks every image for AUROC, informedness and MI (exact;
            memory images x units x 4 bytes); an int keeps a seeded uniform sample of that many
            images (see :class:`~selectivity.analysis.measures.UnitMeasureAccumulator`).
        top_images, units_per_measure: exemplars per unit, units per measure on the page.
        tokens, positive_part: how a transformer's token layers become units (see
            :class:`~selectivity.core.probe.Probe`); None: all tokens, each token's positive part.
        min_active: the page ranks only units that respond (above 0) to at least this many
            images, and lists the others apart; None: :func:`default_min_active`.
        model_name, weights, data_name: what the page's title names (default: the model's class,
            no weights file, the data's file name).

    Returns:
        dict: the number of images and classes, the layers, :func:`si_summary` (mean SI, dead
        fraction, mean SI of the live units, per layer), :func:`sampling_summary` and the
        paths of the files written (also in ``measure.json``).
    """
    _check_measures(measures, sample_size)
    if not 0 < crop_fraction <= 1:
        raise ConfigError(f"crop fraction must lie in (0, 1], got {crop_fraction}")
    images = data if isinstance(data, ImageSet) else open_image_set(data, split)
    out = Path(out)
    mean_t, std_t = _channel_stats(mean, "mean"), _channel_stats(std, "std")
    model = model.eval().to(device)
    size = _input_size(model, images, size)
    n = len(images)
    if min_active is None:
        min_active = default_min_active(n, int(images.labels.unique().numel()), top_images)
    elif isinstance(min_active, bool) or not isinstance(min_active, int) or not 1 <= min_active <= n:
        raise ConfigError(f"--min-active must be a number of images from 1 to the {n} measured, got {min_active!r}")

    def batches():
        for start in range(0, n, batch_size):
            idx = range(start, min(n, start + batch_size))
            x = images.batch(idx, size, crop_fraction).to(device).float() / 255
            if mean_t is not None:
                x = x - mean_t.to(device)
            if std_t is not None:
                x = x / std_t.to(device)
            yield x, images.labels[start : start + len(idx)]

    try:
        with Probe(model, layers, detach=True, tokens=tokens, positive_part=positive_part) as probe:
            states = _stream(model, probe, batches(), len(images.classes), measures, sample_size, seed, top_images,
                             progress, -(-n // batch_size))
        frame, agreement = _tables(states)
        paths = _write_tables(out, frame, agreement)
        sections, rare = _exemplar_sections(frame, states, images, size, crop_fraction, units_per_measure,
                                            min_active)
        model_name = model_name or type(model).__name__
        data_name = data_name or images.path.name
        title = (f"Selective units of {model_name}" + (f" ({Path(weights).name})" if weights else "")
                 + f" on {data_name}: {n:,} images")
        source = (f"Model {model_name}" + (f", weights {Path(weights).resolve()}" if weights else "")
                  + f"; data {images.path} ({n:,} images, {len(images.classes)} classes, {size} px); "
                  + f"layers {', '.join(states)}.")
        page = exemplar_page(title, sections, _dead_units(frame), len(frame), rare=rare, min_active=min_active,
                             source=source, slots=top_images)
        paths["exemplars"] = str(out / "exemplars.html")
        write_text(out / "exemplars.html", page)
    finally:
        images.close()
    summary = {"model": model_name, "weights": None if weights is None else str(weights), "data": str(images.path),
               "images": n, "classes": len(images.classes), "input_size": size, "layers": list(states),
               **si_summary(states), "sampling": sampling_summary(states), "min_active": min_active,
               "rarely_active_units": sum(len(u) for u in rare.values()), "files": paths}
    write_text(out / "measure.json", json.dumps(summary, indent=2))
    return summary


def measure_any(model: str, weights: str | Path, data: str | Path, out: str | Path | None = None,
                kwargs: dict | None = None, split: str | None = None, device: str | None = None, **options) -> dict:
    """:func:`measure_model` of a model given by name (or ``package.module:factory``) and safetensors weights.

    ``out`` defaults to ``runs/measure/<weights file stem>``; ``device`` to cuda when available;
    ``num_classes`` (in ``kwargs``) to the number of class folders. ``options`` go to :func:`measure_model`.
    """
    device = resolve_device(device or "auto", "--device")  # before any work: a device this machine lacks
    images = open_image_set(data, split)
    try:
        net = build_measured_model(model, weights, len(images.classes), kwargs)
    except BaseException:
        images.close()
        raise
    out = Path(out) if out else Path("runs") / "measure" / Path(weights).stem
    data_name = str(data) + (f" ({split} split)" if split else "")
    return measure_model(net, images, out, device=device, model_name=model, weights=weights, data_name=data_name,
                         **options)


def measure_run_units(run_dir: str | Path, data: str | None = None, split: str = "test", measures="all",
                      progress: bool = True, sample_size: int | None = None, seed: int = 0,
                      tokens: str | None = None) -> dict:
    """Every measure of a run's selectivity layers on its test split (or ``data``); CSVs in the run directory.

    ``tokens``: read a transformer's units on other tokens than its training rule (``cls``: the class
    token alone), into ``unit_measures-tokens-<tokens>.csv`` (results columns ``mean_<measure>_<tokens>``);
    None: the run's own rule, into unit_measures.csv.

    Returns:
        dict: ``files`` (name -> path) and ``sampling`` (:func:`sampling_summary`: None when exact).
    """
    from ..data.text import make_loader
    from ..runs import open_run

    _check_measures(measures, sample_size)
    run = open_run(run_dir, data=data, split=split, progress=progress)
    loader = make_loader(run.data, 512, run.device, shuffle=False)  # images, or texts by length
    with Probe(run.model, run.config.regularizer.layers, detach=True, tokens=tokens) as probe:
        if tokens is not None and "tokens" not in probe.layouts.values():
            raise ConfigError(f"--tokens {tokens}: {run.paths.root} has no token layer among its layers "
                              f"({', '.join(probe.layers)}); --tokens reads a transformer's units")
        states = _stream(run.model, probe, loader, run.data.num_classes, measures, sample_size, seed, 1, progress,
                         None)
    frame, agreement = _tables(states)
    if tokens is None:
        return {"files": _write_tables(run.paths.root, frame, agreement), "sampling": sampling_summary(states)}
    paths = {"unit_measures": run.paths.unit_measures_read_on(tokens),
             "measure_agreement": run.paths.measure_agreement_read_on(tokens)}
    atomic_write(paths["unit_measures"], lambda tmp: frame.to_csv(tmp, index=False))
    atomic_write(paths["measure_agreement"], lambda tmp: agreement.to_csv(tmp, index=False))
    return {"files": {k: str(v) for k, v in paths.items()}, "sampling": sampling_summary(states)}


def measure_sweep(path: str | Path, measures="all", sample_size: int | None = None, force: bool = False,
                  progress: bool = True, report=print, tokens: str | None = None) -> dict:
    """``unit_measures.csv`` of every completed run of a sweep, then the sweep's results table again.

    Resumable: a run that has its unit_measures.csv is kept unless ``force``. Returns a dict with
    ``measured``, ``kept`` (run directories) and ``results`` (the rewritten results.csv, or None).
    """
    from ..runs import completed
    from .evaluate import _rewrite_results, find_runs

    _check_measures(measures, sample_size)  # bad names fail before any run is touched
    target = find_runs(path)
    runs = [r for r in target.runs if completed(r) is not None]
    measured, kept = [], []
    for run in tqdm(runs, desc="measures", unit="run", disable=not progress):
        target_file = RunPaths(run).unit_measures if tokens is None else RunPaths(run).unit_measures_read_on(tokens)
        if target_file.is_file() and not force:
            kept.append(run)
            continue
        measure_run_units(run, measures=measures, progress=False, sample_size=sample_size, tokens=tokens)
        measured.append(run)
        report(f"{run.name}: {target_file}")
    return {"measured": measured, "kept": kept, "results": _rewrite_results(target)}
