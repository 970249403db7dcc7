"""The whole split on the device, shuffled and augmented there, batch by batch (airbench style).

No DataLoader and no worker processes: the uint8 images are uploaded once; each epoch is
a seeded ``torch.randperm`` on the device; each batch is one gather (plus crop/flip), then
a conversion to float in [0, 1]. Normalization is *not* done here: it lives in the model's
first layer, so attacks and corruptions can work in [0, 1] pixel space.
"""

from __future__ import annotations

from collections.abc import Iterator

import dataclasses

import numpy as np
import torch

from .augment import Augment, crop_flip, pad_images


class DeviceLoader:
    """Batches (x, y) of a split: x float (B, 3, H, W) in [0, 1], y int64 (B,), on ``device``;
    (x, y, e) with ``embeddings``: e (B, D), the rows of the batch's images.

    Each ``iter(loader)`` is one epoch; epochs count up from 0, and ``set_epoch(e)`` sets
    the next one. The shuffle and the augmentation of epoch e depend only on (seed, e),
    so a run resumed at epoch e sees the same batches as the original run did.

    Args:
        split: a :class:`~selectivity.data.DatasetSplit` (anything with ``images`` uint8
            (N, 3, H, W) and ``labels`` int64 (N,)).
        batch_size (int): samples per batch.
        device (str | torch.device): where the data lives and batches appear. Default: "cpu"
        shuffle (bool): a new random order each epoch; else the split's order. Default: True
        drop_last (bool): drop the last, smaller batch. Default: False
        augment (Augment | None): random crop / flip per sample, or None. Default: None
        seed (int): seed (>= 0) of shuffle and augmentation. Default: 0
        dtype (torch.dtype): floating dtype of x. Default: torch.float32
        channels_last (bool): x in ``torch.channels_last`` memory format. Default: False
        rank (int), world_size (int): data parallelism. ``batch_size`` is the *global* batch;
            every rank draws the same permutation and the same augmentation parameters for
            the whole global batch and keeps its slice ``[rank * B/W, (rank+1) * B/W)``, so
            step k of a W-process run sees the images (and crops, flips) of step k of a
            one-process run with the same seed. batch_size must divide by world_size.
            Default: 0, 1
        embeddings (Tensor | None): float (N, D), one row per image of the split: each batch then
            also yields its images' rows (the same gather; on each rank its share; augmentation
            leaves an image's row as it is), in ``dtype``. Default: None (batches are (x, y))

    Example::

        loader = DeviceLoader(train, 512, device="cuda", augment=Augment(crop_padding=4, flip=True))
        for epoch in range(start, epochs):
            loader.set_epoch(epoch)
            for x, y in loader:   # x: (512, 3, 32, 32) float32 in [0, 1]
                ...
    """

    def __init__(
        self,
        split,
        batch_size: int,
        device: str | torch.device = "cpu",
        shuffle: bool = True,
        drop_last: bool = False,
        augment: Augment | None = None,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        embeddings: torch.Tensor | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, world_size), got rank {rank} of world_size {world_size}")
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} must divide by the {world_size} processes")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating dtype, got {dtype}")
        images, labels = split.images, split.labels
        if images.dtype != torch.uint8 or images.ndim != 4 or labels.shape != images.shape[:1]:
            raise ValueError(f"expected uint8 images (N, C, H, W) and labels (N,), got {images.dtype} "
                             f"{tuple(images.shape)} and {tuple(labels.shape)}")
        if embeddings is not None and (embeddings.ndim != 2 or embeddings.shape[0] != labels.shape[0]):
            raise ValueError(f"embeddings must be (N, D) with one row per image ({labels.shape[0]}), "
                             f"got {tuple(embeddings.shape)}")
        self.device = torch.device(device)
        self.embeddings = None if embeddings is None else embeddings.to(self.device, dtype)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.augment = augment
        self.seed = seed
        self.dtype = dtype
        self.channels_last = channels_last
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self._padded = pad_images(self.images, augment.crop_padding if augment else 0)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (its shuffle and augmentation)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = epoch

    def generator(self, epoch: int) -> torch.Generator:
        """The device generator of epoch ``epoch``, seeded from SeedSequence([seed, epoch])."""
        state = np.random.SeedSequence([self.seed, epoch]).generate_state(2, np.uint32)
        g = torch.Generator(device=self.device)
        g.manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)
        return g

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return self._epoch(epoch)

    def _epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
        g = self.generator(epoch)
        n, size = len(self.labels), tuple(self.images.shape[2:])
        if self.shuffle:
            order = torch.randperm(n, generator=g, device=self.device)
        else:
            order = torch.arange(n, device=self.device)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        for b in range(len(self)):
            index = order[b * self.batch_size : (b + 1) * self.batch_size]
            # The whole global batch's draws, on every rank, so the generator stays in step.
            params = self.augment.sample(len(index), g, self.device) if self.augment is not None else None
            if self.world_size > 1:
                parts = index.tensor_split(self.world_size)
                start = sum(len(part) for part in parts[: self.rank])
                index = parts[self.rank]
                if params is not None:
                    params = type(params)(*(p[start : start + len(index)] for p in params))
            if params is not None:
                x = crop_flip(self._padded, index, params, size)
            else:
                x = self.images[index]
            x = x.to(dtype=self.dtype, memory_format=fmt).div_(255)
            if self.embeddings is None:
                yield x, self.labels[index]
            else:
                yield x, self.labels[index], self.embeddings[index]


def shard_split(split, rank: int, world_size: int):
    """Rank ``rank``'s contiguous share of ``split`` for evaluation: no padding, no repeats.

    The shares of all ranks cover the split exactly once (``tensor_split``: sizes differ by at
    most one; a rank may get none when there are fewer samples than ranks), so sums over
    ranks equal sums over the split.
    """
    if world_size == 1:
        return split
    keep = torch.arange(len(split.labels)).tensor_split(world_size)[rank]
    if hasattr(split, "subset"):  # a TextSplit
        return split.subset(keep)
    embeddings = getattr(split, "embeddings", None)
    return dataclasses.replace(split, images=split.images[keep], labels=split.labels[keep],
                               **({} if embeddings is None else {"embeddings": embeddings[keep]}))
