"""Selectivity over training (Ranadive et al. 2023): per-unit SI recorded as a run trains.

At initialization (epoch 0), after each of the first ``record.first_epochs`` epochs, then every
``record.every`` epochs and at the end, and ``record.per_epoch`` times within each recorded
epoch, the regularized layers are measured on a fixed, class-balanced subset of the test split
(``record.per_class`` images per class, the same for every run of the same data). Each
recording adds one row per unit to ``si_over_training.csv``: ``epoch`` (completed epochs,
fractional inside an epoch), ``step``, ``alpha`` (the alpha of the last step trained before the
recording, so after epoch e the alpha epoch e trained with; at initialization the first step's;
alpha < 0 discourages selectivity), ``layer``, ``stage`` (the layer's first name segment, e.g. ``layer2``), ``unit``,
``si`` and ``live`` (False for a unit silent on every image of the subset).
"""

from __future__ import annotations


import pandas as pd
import torch

from ..core import SelectivityMeter
from ..core.distributed import rank_and_world
from ..data import DatasetSplit, shard_split
from ..data.subsets import take
from ..data.text import make_loader
from ..runs import RunPaths, atomic_write, read_text

__all__ = ["SelectivityRecorder", "balanced_subset"]

COLUMNS = ["epoch", "step", "alpha", "layer", "stage", "unit", "si", "live"]


def balanced_subset(split: DatasetSplit, per_class: int, seed: int = 0) -> DatasetSplit:
    """``per_class`` images of every class (fewer where a class has fewer), drawn once with ``seed``."""
    order = torch.randperm(len(split.labels), generator=torch.Generator().manual_seed(seed))
    labels = split.labels[order]
    ranked = torch.argsort(labels, stable=True)  # within a class, the random order is kept
    sorted_labels = labels[ranked]
    rank = torch.arange(len(labels)) - torch.searchsorted(sorted_labels, sorted_labels)
    keep = order[ranked[rank < per_class]].sort().values
    return take(split, keep)


class SelectivityRecorder:
    """Decides when to record and writes the rows; ``record(model, epoch, step, alpha)`` measures."""

    def __init__(self, config, test_split: DatasetSplit, layers, epochs: int, steps_per_epoch: int,
                 device: torch.device, paths: RunPaths, dtype: torch.dtype = torch.float32) -> None:
        self.settings = config.record
        self.enabled = self.settings.enabled
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.layers, self.paths = layers, paths
        self.num_classes = test_split.num_classes
        if self.enabled:
            subset = balanced_subset(test_split, self.settings.per_class)
            # Several processes: each measures its share and the meter sums them; rank 0 writes.
            rank, world = rank_and_world()
            self.writes = rank == 0
            self.loader = make_loader(shard_split(subset, rank, world), 1024, device, shuffle=False, dtype=dtype)

    def recorded(self, completed: int) -> bool:
        """Whether the state after ``completed`` epochs is recorded."""
        s = self.settings
        return self.enabled and (completed <= s.first_epochs or completed % s.every == 0 or completed == self.epochs)

    def inside(self, epoch: int) -> set[int]:
        """Steps of (0-based) ``epoch`` after which to record, besides its end."""
        if not self.recorded(epoch + 1) or self.settings.per_epoch <= 1:
            return set()
        n = self.settings.per_epoch
        return {round(j * self.steps_per_epoch / n) - 1 for j in range(1, n)} - {self.steps_per_epoch - 1}

    def resume(self, completed: int) -> None:
        """Keep the rows of the ``completed`` epochs a checkpoint holds; drop any recorded after it
        (they are recorded again as the epoch is redone)."""
        path = self.paths.si_over_training
        if not self.enabled or not self.writes or not path.exists():
            return
        if completed == 0:
            path.unlink()
            return
        from io import StringIO

        rows = pd.read_csv(StringIO(read_text(path)))
        rows = rows[rows["epoch"] <= completed]
        atomic_write(path, lambda tmp: rows.to_csv(tmp, index=False))

    @torch.no_grad()
    def record(self, model: torch.nn.Module, epoch: float, step: int, alpha: float) -> None:
        was_training = model.training
        model.eval()
        with SelectivityMeter(model, self.num_classes, self.layers) as meter:
            for x, y in self.loader:
                model(x)
                meter.update_activations(meter.probe.collect(batch_size=y.shape[0]), y)
            result = meter.compute()
        model.train(was_training)
        if not self.writes:
            return
        frames = []
        for name, si in result.per_unit.items():
            live = ~result.dead[name].to(torch.bool)
            frames.append(pd.DataFrame({"epoch": epoch, "step": step, "alpha": alpha, "layer": name,
                                        "stage": name.split(".")[0], "unit": range(si.numel()),
                                        "si": si.numpy(), "live": live.numpy()}))
        new = pd.concat(frames, ignore_index=True)[COLUMNS]
        header = not self.paths.si_over_training.exists()
        with self.paths.si_over_training.open("a", encoding="utf-8") as f:  # one recording, appended whole
            new.to_csv(f, header=header, index=False)


def epoch_value(epoch: int, step_in_epoch: int, steps_per_epoch: int) -> float:
    """Completed epochs at the end of ``step_in_epoch`` (0-based) of ``epoch``, e.g. 2.5."""
    return epoch + (step_in_epoch + 1) / steps_per_epoch if steps_per_epoch else float(epoch)

