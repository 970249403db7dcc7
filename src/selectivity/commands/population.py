"""Class information in each layer as a whole, written as ``population.csv``.

    selectivity analyze RUN_DIR|SWEEP_DIR --population      -> population.csv in each run directory
    selectivity measure --model NAME --weights W.safetensors --data DIR --population
                                                            -> population.csv in --out

For every layer (a run's regularized layers, ``config.regularizer.layers``, or the model's
default layers when that is None; ``--layers`` for a model), in forward order, the responses
of its units (:class:`selectivity.core.Probe`: a channel's spatial mean) to two splits' images:

- a linear probe (:func:`selectivity.analysis.population.linear_probe`) fitted on the
  responses to the **train** images (without augmentation; its L2 strength chosen on a held-out
  20% of them) and scored on the responses to the **test** images;
- the axis gap (:func:`selectivity.analysis.population.axis_gap`) on the responses to the
  **test** images, where the units' SI is measured too.

A run's images are its own: the train split after ``data.train_per_class``, the test split
after ``data.test_limit`` (what training used and evaluated). ``limit=N`` (``--limit N``)
takes at most N images of *each* split: the first N of a seeded permutation of the run's train
images, and of its test images (the same N test images that ``robustness`` and ``analyze``
take with ``--limit N``). A model that is not a run is fitted on the ``train`` split of its
data and scored on the split ``split`` names (default: ``val``, else ``test``).

``population.csv``, one row per layer:

====================  ==========================================================================
``layer``             the module's name
``units``             D, the layer's units; ``live_units``: those not constant over the test images
``n_train``           images the probe was fitted on (held-out part included); ``n_test``: scored on
``probe_acc``         test accuracy of the probe (a fraction)
``probe_loss``        its mean test cross-entropy (nats)
``probe_strength``    the L2 strength chosen on the held-out part
``probe_converged``   the final fit reached L-BFGS's gradient tolerance
``axis_units``        mean one-class preference of the live units (SI of class means shifted to 0)
``axis_random``       the same for the directions of ``rotations`` Haar-random bases of their span
``axis_gap``          ``axis_units - axis_random``
``axis_gap_low``      the 95% Student-t interval of the gap over the rotations (Monte Carlo
``axis_gap_high``     error of ``axis_random``; the data held fixed)
``rotations``         K; ``seed``: of the bases and the held-out draw; ``limit``: the images asked for
====================  ==========================================================================

In a sweep, the results table gains ``probe_acc/<layer>``, ``probe_loss/<layer>``,
``axis_gap/<layer>``, ``mean_probe_acc`` and ``mean_axis_gap`` (read back by
:func:`selectivity.runs.summary.population_summary`). A run that already has a population.csv
with the same ``rotations``, ``seed`` and ``limit`` is kept unless ``force``. Errors (too few
images for a layer's units, a single class, NaN responses, rotations < 1) are raised before
anything is written, and population.csv is written whole or not at all, under the run's lock.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import torch

from ..analysis.eval_mode import eval_mode
from ..analysis.population import DEFAULT_ROTATIONS, axis_gap, linear_probe
from ..core.probe import Probe
from ..runs import RunPaths, atomic_write, completed, exclusive
from .evaluate import EvaluationError, _rewrite_results, find_runs

__all__ = ["POPULATION_COLUMNS", "layer_responses", "population", "population_model", "population_run",
           "population_table", "validate_population"]

POPULATION_COLUMNS = ["layer", "units", "live_units", "n_train", "n_test", "probe_acc", "probe_loss", "probe_strength",
                      "probe_converged", "axis_units", "axis_random", "axis_gap", "axis_gap_low", "axis_gap_high",
                      "rotations", "seed", "limit"]
#: The seed of the image subsets (``limit``): the one robustness and analyze use.
SUBSET_SEED = 0
BATCH_SIZE = 512


def validate_population(rotations=DEFAULT_ROTATIONS, limit=None, seed=0) -> tuple[int, int | None, int]:
    """Checked (rotations, limit, seed); EvaluationError on a bad one, before any work."""
    if isinstance(rotations, bool) or not isinstance(rotations, int) or rotations < 1:
        raise EvaluationError(f"--rotations must be a whole number >= 1 (random bases per layer), got {rotations!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 2):
        raise EvaluationError(f"--limit must be 2 or more images, got {limit!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise EvaluationError(f"seed must be a whole number >= 0, got {seed!r}")
    return rotations, limit, seed


def _first(n: int, limit: int | None) -> torch.Tensor | None:
    """Indices of the first ``limit`` of a seeded permutation of n images, in order; None for all."""
    if limit is None or limit >= n:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(SUBSET_SEED))[:limit].sort().values


def _subset(split, limit: int | None):
    keep = _first(len(split.labels), limit)
    if keep is None:
        return split
    return dataclasses.replace(split, images=split.images[keep].contiguous(), labels=split.labels[keep])


@torch.no_grad()
def layer_responses(model: torch.nn.Module, batches: Iterable, layers=None,
                    **probe_options) -> tuple[dict, torch.Tensor]:
    """({layer: (N, U) float32 responses on the model's device}, (N,) labels) over ``batches`` of (x, y),
    in eval mode, in the order of ``layers`` (None: the model's default layers)."""
    chunks: dict[str, list[torch.Tensor]] = {}
    labels = []
    with eval_mode(model), Probe(model, layers, detach=True, **probe_options) as probe:
        for x, y in batches:
            for name, acts in probe(x).items():
                chunks.setdefault(name, []).append(acts.float())
            labels.append(y.cpu())
    if not labels:
        raise EvaluationError("no images to take responses from")
    return {name: torch.cat(parts) for name, parts in chunks.items()}, torch.cat(labels)


def _check_layers(units: dict[str, int], n_train: int, train_y: torch.Tensor, test_y: torch.Tensor,
                  where: str) -> None:
    """The errors that need no responses: too few train images for a layer, a single class."""
    short = {name: u for name, u in units.items() if n_train < u}
    if short:
        name, u = max(short.items(), key=lambda item: item[1])
        raise EvaluationError(
            f"{where}: the probe of layer {name} needs at least as many training images as its {u} units, but has "
            f"{n_train}; raise --limit to {u} or more (or drop it)")
    for split, labels in (("train", train_y), ("test", test_y)):
        classes = torch.unique(labels)
        if classes.numel() < 2:
            raise EvaluationError(f"{where}: the {split} images hold a single class ({int(classes[0])}): there is "
                                  "nothing to decode or contrast; give images of at least two classes")


def population_table(train: dict[str, torch.Tensor], train_y: torch.Tensor, test: dict[str, torch.Tensor],
                     test_y: torch.Tensor, num_classes: int, rotations: int = DEFAULT_ROTATIONS, seed: int = 0,
                     limit: int | None = None, where: str = "population") -> pd.DataFrame:
    """population.csv's rows from each layer's responses to the train and test images (module docstring)."""
    _check_layers({name: acts.shape[1] for name, acts in train.items()}, len(train_y), train_y, test_y, where)
    rows = []
    for name, train_x in train.items():
        test_x = test[name]
        try:
            probe = linear_probe(train_x, train_y.to(train_x.device), test_x, test_y.to(test_x.device), seed=seed)
            gap = axis_gap(test_x, test_y.to(test_x.device), num_classes, rotations=rotations, seed=seed)
        except ValueError as err:
            raise EvaluationError(f"{where}, layer {name}: {err}") from None
        rows.append({"layer": name, "units": gap.num_units, "live_units": gap.live_units, "n_train": probe.num_train,
                     "n_test": probe.num_test, "probe_acc": probe.accuracy, "probe_loss": probe.loss,
                     "probe_strength": probe.strength, "probe_converged": probe.converged, "axis_units": gap.units,
                     "axis_random": gap.random, "axis_gap": gap.gap, "axis_gap_low": gap.low,
                     "axis_gap_high": gap.high, "rotations": rotations, "seed": seed, "limit": limit})
    return pd.DataFrame(rows, columns=POPULATION_COLUMNS)


def _write(path: Path, table: pd.DataFrame) -> Path:
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
    return path


# --------------------------------------------------------------------------- runs


def _kept(path: Path, rotations: int, seed: int, limit: int | None) -> bool:
    """population.csv exists, is whole, and was computed with these settings."""
    if not path.is_file():
        return False
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError):
        return False
    if table.empty or not set(POPULATION_COLUMNS) <= set(table.columns):
        return False
    stored_limit = {None if pd.isna(v) else int(v) for v in table["limit"]}
    return set(table["rotations"]) == {rotations} and set(table["seed"]) == {seed} and stored_limit == {limit}


def population_run(run_dir: str | Path, *, rotations: int = DEFAULT_ROTATIONS, limit: int | None = None,
                   seed: int = 0, force: bool = False, progress: bool = True) -> Path:
    """Write ``population.csv`` in one run directory (module docstring); returns its path.

    Kept as it is when it exists with the same settings, unless ``force``. The run's lock is
    held throughout: a run being trained, or evaluated by another process, is refused with
    :class:`~selectivity.runs.RunBusy`.
    """
    rotations, limit, seed = validate_population(rotations, limit, seed)
    paths = RunPaths(Path(run_dir))
    if not force and _kept(paths.population, rotations, seed, limit):
        return paths.population
    with exclusive(paths.lock, f"{paths.root} is busy: another process (training or an evaluation) holds its lock; "
                               "run again when it has finished"):
        return _population_run(paths, rotations, limit, seed, progress)


def _population_run(paths: RunPaths, rotations: int, limit: int | None, seed: int, progress: bool) -> Path:
    from ..data import DeviceLoader, load_split, take_per_class
    from ..runs import open_run

    run = open_run(paths.root, progress=progress)  # the model and the run's own test images
    config = run.config
    train = load_split(config.data.source, "train", cache_dir=config.data.cache_dir, progress=progress)
    if config.data.train_per_class:
        train = take_per_class(train, config.data.train_per_class)  # the images training saw
    train, test = _subset(train, limit), _subset(run.test, limit)
    dtype = next(run.model.parameters()).dtype
    where = str(paths.root)
    # A first batch of two images says how many units each layer has: too few images is refused before the pass.
    probe_batch = [(train.images[:2].to(run.device, dtype) / 255, train.labels[:2])]
    first, _ = layer_responses(run.model, probe_batch, config.regularizer.layers)
    _check_layers({name: acts.shape[1] for name, acts in first.items()}, len(train.labels), train.labels, test.labels,
                  where)
    responses = {}
    for name, split in (("train", train), ("test", test)):
        batches = DeviceLoader(split, BATCH_SIZE, run.device, shuffle=False, dtype=dtype)
        responses[name] = layer_responses(run.model, batches, config.regularizer.layers)
    table = population_table(*responses["train"], *responses["test"], num_classes=run.test.num_classes,
                             rotations=rotations, seed=seed, limit=limit, where=where)
    return _write(paths.population, table)


def population(path: str | Path, *, rotations: int = DEFAULT_ROTATIONS, limit: int | None = None, seed: int = 0,
               force: bool = False, progress: bool = True, report=None) -> dict:
    """:func:`population_run` on a run directory, or on every completed run of a sweep directory,
    then the sweep's results table again (with ``probe_acc/<layer>``, ``axis_gap/<layer>``, ...).

    Returns {"runs": [population.csv paths written], "kept": [run dirs whose population.csv was
    kept], "skipped": [run dirs not completed], "results": results.csv or None}.
    """
    rotations, limit, seed = validate_population(rotations, limit, seed)
    target = find_runs(path)
    done, kept, skipped = [], [], []
    for run_dir in target.runs:
        if target.sweep is not None and completed(run_dir) is None:
            skipped.append(run_dir)
            continue
        if not force and _kept(RunPaths(run_dir).population, rotations, seed, limit):
            kept.append(run_dir)
            continue
        done.append(population_run(run_dir, rotations=rotations, limit=limit, seed=seed, force=True,
                                   progress=progress))
        if report is not None:
            report(done[-1])
    return {"runs": done, "kept": kept, "skipped": skipped, "results": _rewrite_results(target)}


# --------------------------------------------------------------------------- any model


def _image_batches(images, limit: int | None, size: int, crop_fraction: float, mean, std, device, dtype):
    """(x, y) batches of an ImageSet: resized, centre-cropped, in [0, 1], then normalized when asked."""
    keep = _first(len(images), limit)
    order = list(range(len(images))) if keep is None else keep.tolist()
    for start in range(0, len(order), BATCH_SIZE):
        idx = order[start:start + BATCH_SIZE]
        x = images.batch(idx, size, crop_fraction).to(device=device, dtype=dtype) / 255
        if mean is not None:
            x = x - mean.to(device=device, dtype=dtype)
        if std is not None:
            x = x / std.to(device=device, dtype=dtype)
        yield x, images.labels[idx]


def population_model(model: torch.nn.Module, data: str | Path, out: str | Path, *, split: str | None = None,
                     layers=None, mean=None, std=None, size: int | None = None, crop_fraction: float = 1.0,
                     device: str = "cpu", rotations: int = DEFAULT_ROTATIONS, limit: int | None = None,
                     seed: int = 0, tokens: str | None = None, positive_part: bool | None = None) -> Path:
    """``population.csv`` in ``out`` for a model that is not a run: fitted on the ``train`` split of
    ``data`` (:func:`~selectivity.data.imageset.open_image_set`) and scored on ``split`` (None:
    ``val``, else ``test``). ``limit``: at most that many images of each split (seeded). The
    other arguments are those of :func:`selectivity.commands.measure_any.measure_model`."""
    from ..data.imageset import open_image_set
    from .measure_any import _channel_stats, _input_size

    rotations, limit, seed = validate_population(rotations, limit, seed)
    if split == "train":
        raise EvaluationError("--population fits the probe on the train split and scores it on another: give "
                              "--split val or test (or none)")
    if not 0 < crop_fraction <= 1:
        raise EvaluationError(f"crop fraction must lie in (0, 1], got {crop_fraction}")
    mean_t, std_t = _channel_stats(mean, "mean"), _channel_stats(std, "std")
    train_images = open_image_set(data, "train")
    try:
        test_images = _scoring_split(data, split)
    except BaseException:
        train_images.close()
        raise
    try:
        if train_images.classes != test_images.classes:
            raise EvaluationError(f"the train and test splits of {data} name different classes: the probe needs the "
                                  "same classes in both")
        model = model.eval().to(device)
        dtype = next(model.parameters()).dtype
        side = _input_size(model, test_images, size)
        where = f"{data}"
        options = {"tokens": tokens, "positive_part": positive_part}
        train_y = train_images.labels if limit is None else train_images.labels[_first(len(train_images), limit)]
        test_y = test_images.labels if limit is None else test_images.labels[_first(len(test_images), limit)]
        first, _ = layer_responses(model, _image_batches(train_images, 2, side, crop_fraction, mean_t, std_t, device,
                                                         dtype), layers, **options)
        _check_layers({name: acts.shape[1] for name, acts in first.items()}, len(train_y), train_y, test_y, where)
        train = layer_responses(model, _image_batches(train_images, limit, side, crop_fraction, mean_t, std_t, device,
                                                      dtype), layers, **options)
        test = layer_responses(model, _image_batches(test_images, limit, side, crop_fraction, mean_t, std_t, device,
                                                     dtype), layers, **options)
    finally:
        train_images.close()
        test_images.close()
    table = population_table(*train, *test, num_classes=len(test_images.classes), rotations=rotations, seed=seed,
                             limit=limit, where=where)
    return _write(RunPaths(Path(out)).population, table)


def _scoring_split(data, split: str | None):
    """The split the probe is scored on: ``split``, else val, else test; never the train split."""
    from ..data import DatasetError
    from ..data.imageset import open_image_set

    for name in ([split] if split else ["val", "test"]):
        try:
            images = open_image_set(data, name)
        except DatasetError:
            if split:
                raise
            continue
        probe = open_image_set(data, "train")
        same = images.names == probe.names
        probe.close()
        if same:  # a folder without split folders gives the same images for every split
            images.close()
            break
        return images
    raise EvaluationError(f"{data} has no test split beside its train split: --population fits on train and scores "
                          "on val or test, so the data need (train|val|test)/<class>/<image> folders (or CIFAR-10 / "
                          "Tiny ImageNet)")


def summary_line(path: Path) -> str:
    """One line per layer for the console: probe accuracy and the axis gap with its interval."""
    table = pd.read_csv(path)
    parts = []
    for r in table.itertuples(index=False):
        interval = "" if math.isnan(r.axis_gap_low) else f" [{r.axis_gap_low:+.3f}, {r.axis_gap_high:+.3f}]"
        parts.append(f"  {r.layer:<22} probe acc {r.probe_acc:.3f} (loss {r.probe_loss:.3f}, L2 {r.probe_strength:g})"
                     f"  axis gap {r.axis_gap:+.3f}{interval} (units {r.axis_units:.3f}, random {r.axis_random:.3f},"
                     f" {r.live_units}/{r.units} live)")
    return "\n".join(parts)


def population_cli(args) -> int:
    """`selectivity analyze DIR --population [--limit N] [--rotations K] [--force]`."""
    rotations = DEFAULT_ROTATIONS if args.rotations is None else args.rotations
    validate_population(rotations, args.limit)  # before any run is opened
    outcome = population(args.dir, rotations=rotations, limit=args.limit, force=args.force,
                         progress=not args.no_progress)
    for path in outcome["runs"]:
        print(f"{path.parent.name}: {path}")
        print(summary_line(path))
    for run in outcome["kept"]:
        print(f"{run.name}: kept its population.csv (--force recomputes it)")
    for run in outcome["skipped"]:
        print(f"{run.name}: skipped (not completed)")
    if outcome["results"]:
        print(f"results: {outcome['results']} (probe_acc/<layer>, axis_gap/<layer>, mean_axis_gap added)")
    return 0
