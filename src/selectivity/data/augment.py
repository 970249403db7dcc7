"""Batched random crop and horizontal flip on uint8 images, on whatever device they live.

For an image x (C, H, W), zero-padded by p pixels on each side to xp (C, H+2p, W+2p):

    crop:  out[c, i, j] = xp[c, oy + i, ox + j],        oy, ox ~ uniform{0, ..., 2p}
    flip:  out[c, i, j] = xp[c, oy + i, ox + W-1 - j]   (crop, then mirror left-right)

An image that is not cropped (probability 1 - crop_p) gets oy = ox = p, the identity.
Both are one gather over the whole batch (:func:`crop_flip`); the padding is done once
for the whole split (:func:`pad_images`), not per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F


class AugmentParams(NamedTuple):
    """Per-image draws: crop offsets ``oy``, ``ox`` int64 (B,) in [0, 2p] and ``flip`` bool (B,)."""

    oy: torch.Tensor
    ox: torch.Tensor
    flip: torch.Tensor


@dataclass(frozen=True)
class Augment:
    """Random crop with zero padding and random horizontal flip, drawn per image.

    Args:
        crop_padding (int): p, pixels of zero padding per side; 0 turns cropping off.
            CIFAR recipes use 4 for 32 px images. Default: 0
        crop_p (float): probability that an image is cropped at a random offset
            (otherwise it stays as it is). Default: 1.0
        flip (bool): whether to flip left-right at random. Default: False
        flip_p (float): probability of a flip when ``flip`` is on. Default: 0.5

    Example::

        Augment(crop_padding=4, flip=True)   # the standard CIFAR augmentation
    """

    crop_padding: int = 0
    crop_p: float = 1.0
    flip: bool = False
    flip_p: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            raise ValueError(f"crop_padding must be an int >= 0, got {self.crop_padding!r}")
        for name in ("crop_p", "flip_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)!r}")

    def sample(self, n: int, generator: torch.Generator, device: torch.device | str) -> AugmentParams:
        """Draw offsets and flips for ``n`` images from ``generator`` (on ``device``).

        The uniform draws are float32 whatever torch's default dtype: a float64 run (or a process
        that set the default to float64) sees the crops and flips of the float32 run of its seed.
        """
        p = self.crop_padding
        oy = torch.full((n,), p, dtype=torch.int64, device=device)
        ox = oy.clone()
        if p > 0:
            ry = torch.randint(0, 2 * p + 1, (n,), generator=generator, device=device)
            rx = torch.randint(0, 2 * p + 1, (n,), generator=generator, device=device)
            keep = torch.rand(n, generator=generator, device=device, dtype=torch.float32) < self.crop_p
            oy, ox = torch.where(keep, ry, oy), torch.where(keep, rx, ox)
        if self.flip:
            flip = torch.rand(n, generator=generator, device=device, dtype=torch.float32) < self.flip_p
        else:
            flip = torch.zeros(n, dtype=torch.bool, device=device)
        return AugmentParams(oy, ox, flip)


def pad_images(images: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad images (N, C, H, W) to (N, C, H+2p, W+2p); returns ``images`` itself for p=0."""
    return F.pad(images, (padding,) * 4) if padding else images


def crop_flip(padded: torch.Tensor, index: torch.Tensor, params: AugmentParams, size: tuple[int, int]) -> torch.Tensor:
    """Gather crops of the images ``padded[index]``, flipped where ``params.flip``.

    out[b, c, i, j] = padded[index[b], c, oy[b] + i, ox[b] + (W-1-j if flip[b] else j)]

    Args:
        padded (Tensor): (N, C, H+2p, W+2p), any dtype.
        index (Tensor): int64 (B,), which images.
        params (AugmentParams): oy, ox (B,) in [0, 2p], flip (B,).
        size (tuple[int, int]): (H, W) of the output.

    Returns:
        Tensor: (B, C, H, W), same dtype and device as ``padded``.
    """
    h, w = size
    device = padded.device
    rows = params.oy[:, None] + torch.arange(h, device=device)  # (B, H)
    j = torch.arange(w, device=device)
    cols = params.ox[:, None] + torch.where(params.flip[:, None], w - 1 - j, j)  # (B, W)
    channels = torch.arange(padded.shape[1], device=device)
    # one advanced-indexing gather; the four index tensors broadcast to (B, C, H, W)
    return padded[index[:, None, None, None], channels[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]
