"""Fixed subsets of a split: the first images of each class, and a run's test images.

Both are deterministic functions of the split alone, so training, the evaluation commands and
anyone opening a run take the same images.
"""

from __future__ import annotations

import dataclasses

import torch

from .cache import DatasetSplit

__all__ = ["limit_test", "take", "take_per_class"]


def take(split, keep: torch.Tensor):
    """The samples at ``keep`` (sorted indices) of an image or text split, with their embedding rows."""
    if hasattr(split, "subset"):  # a TextSplit
        return split.subset(keep)
    embeddings = getattr(split, "embeddings", None)
    return dataclasses.replace(split, images=split.images[keep].contiguous(), labels=split.labels[keep],
                               **({} if embeddings is None else {"embeddings": embeddings[keep]}))


def take_per_class(split: DatasetSplit, per_class: int) -> DatasetSplit:
    """The first ``per_class`` samples of each class, in the split's order (vectorized)."""
    labels = split.labels
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order]
    first = torch.searchsorted(sorted_labels, sorted_labels, right=False)
    rank = torch.arange(labels.numel()) - first
    keep = order[rank < per_class].sort().values
    return take(split, keep)  # each kept image keeps its own embedding row


def limit_test(test: DatasetSplit, limit: int | None) -> DatasetSplit:
    """The run's test images: ``data.test_limit`` of them, a fixed random subset in the split's order
    (test splits are often sorted by class), or the whole split. Every command that evaluates a
    run on its own test split takes this subset, so its numbers are final.json's."""
    if not limit:
        return test
    keep = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(0))
    keep = keep[:limit].sort().values
    return take(test, keep)
