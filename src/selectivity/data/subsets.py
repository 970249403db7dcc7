"""Fixed subsets of a split: the first images of each class, and a run's test images.

Both are deterministic functions of the split alone, so training, the evaluation commands and
anyone opening a run take the same images.
"""

from __future__ import annotations

import dataclasses

import torch

from .cache import DatasetSplit

__all__ = ["limit_test", "take_per_class"]


def take_per_class(split: DatasetSplit, per_class: int) -> DatasetSplit:
    """The first ``per_class`` samples of each class, in the split's order (vectorized)."""
    labels = split.labels
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order]
    first = torch.searchsorted(sorted_labels, sorted_labels, right=False)
    rank = torch.arange(labels.numel()) - first
    keep = order[rank < per_class].sort().values
    embeddings = getattr(split, "embeddings", None)  # each kept image keeps its own row
    return dataclasses.replace(split, images=split.images[keep].contiguous(), labels=labels[keep],
                               **({} if embeddings is None else {"embeddings": embeddings[keep]}))


def limit_test(test: DatasetSplit, limit: int | None) -> DatasetSplit:
    """The run's test images: ``data.test_limit`` of them, a fixed random subset in the split's order
    (test splits are often sorted by class), or the whole split. Every command that evaluates a
    run on its own test split takes this subset, so its numbers are final.json's."""
    if not limit:
        return test
    keep = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(0))
    keep = keep[:limit].sort().values
    return dataclasses.replace(test, images=test.images[keep].contiguous(), labels=test.labels[keep])
