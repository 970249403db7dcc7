"""Noise corruptions: gaussian, shot, impulse and speckle noise, drawn independently per element.

Each function takes a float batch ``x`` (N, 3, H, W) in [0, 1], the parameter of one
severity and a ``torch.Generator`` (or ``None`` for the global one) on ``x``'s device, and
returns the corrupted batch before the final clip to [0, 1].
"""

from __future__ import annotations

import torch
from torch import Tensor


def gaussian_noise(x: Tensor, c: float, generator: torch.Generator | None) -> Tensor:
    """x + N(0, c^2): additive white noise of standard deviation ``c`` (image units)."""
    return x + c * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def shot_noise(x: Tensor, c: float, generator: torch.Generator | None) -> Tensor:
    """Poisson(c * x) / c: photon noise with ``c`` photons for a white pixel (larger = milder)."""
    return torch.poisson(x * c, generator=generator) / c


def impulse_noise(x: Tensor, c: float, generator: torch.Generator | None) -> Tensor:
    """Salt and pepper: each element, with probability ``c``, becomes 1 or 0 (even odds).

    As ``skimage.util.random_noise(mode='s&p', amount=c)``, channels drawn independently;
    one uniform draw ``u`` per element decides both: salt if ``u < c / 2``, pepper if
    ``c / 2 <= u < c``.
    """
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.where(u < c, (u < c / 2).to(x.dtype), x)


def speckle_noise(x: Tensor, c: float, generator: torch.Generator | None) -> Tensor:
    """x + x * N(0, c^2): multiplicative noise, of standard deviation ``c`` times the pixel."""
    return x + x * c * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
