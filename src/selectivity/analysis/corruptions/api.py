"""``corrupt``: one corruption at one severity on a batch of images, with input checks."""

from __future__ import annotations

import numbers

import torch
from torch import Tensor

from . import blur, digital, noise, spatter, weather
from .presets import PRESETS, corruption_names

_FUNCTIONS = {
    "gaussian_noise": noise.gaussian_noise,
    "shot_noise": noise.shot_noise,
    "impulse_noise": noise.impulse_noise,
    "defocus_blur": blur.defocus_blur,
    "glass_blur": blur.glass_blur,
    "motion_blur": blur.motion_blur,
    "zoom_blur": blur.zoom_blur,
    "snow": weather.snow,
    "frost": weather.frost,
    "fog": weather.fog,
    "brightness": digital.brightness,
    "contrast": digital.contrast,
    "elastic_transform": digital.elastic_transform,
    "pixelate": digital.pixelate,
    "jpeg_compression": digital.jpeg_compression,
    "speckle_noise": noise.speckle_noise,
    "gaussian_blur": blur.gaussian_blur,
    "spatter": spatter.spatter,
    "saturate": digital.saturate,
}

RANGE_TOLERANCE = 1e-3
"""How far outside [0, 1] an input value may stray (rounding of a normalisation) before it is an error."""

MIN_SIDE = 8
"""Smallest image side accepted."""


def _check_images(x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape (N, 3, H, W), got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"x must have shape (N, 3, H, W) (RGB, channels first), got {tuple(x.shape)}")
    if min(x.shape[2:]) < MIN_SIDE:
        raise ValueError(f"x: images must be at least {MIN_SIDE}x{MIN_SIDE} px, got {tuple(x.shape[2:])}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a float tensor with values in [0, 1], got dtype {x.dtype}")
    if x.numel() == 0:
        return
    lo, hi = x.min().item(), x.max().item()
    if not (lo >= -RANGE_TOLERANCE and hi <= 1 + RANGE_TOLERANCE):
        raise ValueError(f"x must hold finite values in [0, 1], got min {lo} and max {hi}")


def _check_choice(name: str, preset: str, severity: int) -> tuple:
    names = corruption_names("all")
    if name not in names:
        raise ValueError(f"name must be one of {list(names)}, got {name!r}")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {list(PRESETS)}, got {preset!r}")
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an integer from 1 to 5, got {severity!r}")
    return PRESETS[preset][name][int(severity) - 1]


def _as_generator(generator, device: torch.device) -> torch.Generator | None:
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        return torch.Generator(device=device).manual_seed(int(generator))
    raise TypeError(f"generator must be None, an int seed or a torch.Generator, got {type(generator).__name__}")


def corrupt(
    x: Tensor,
    name: str,
    severity: int,
    preset: str = "cifar10-c",
    generator: torch.Generator | int | None = None,
) -> Tensor:
    """Apply one corruption of CIFAR-10-C / Tiny-ImageNet-C at one severity to a batch.

    The corruptions of Hendrycks & Dietterich (2019) with the constants of the chosen
    benchmark's generator script (:data:`PRESETS`), computed on the batch with torch on
    ``x``'s device, except ``jpeg_compression`` (a PIL round trip per image on the CPU).

    Random corruptions draw from ``generator``: gaussian_noise, shot_noise, impulse_noise,
    speckle_noise, glass_blur, motion_blur, snow, frost, fog, elastic_transform and
    spatter. The others (defocus_blur, zoom_blur, gaussian_blur, brightness, contrast,
    saturate, pixelate, jpeg_compression) ignore it. A given seed gives the same output
    on the same device and torch version; the numbers differ from the originals', which
    drew from numpy's global generator image by image.

    The output is float, like the input. The released CIFAR-10-C files were cast to
    uint8 by truncation (``np.uint8``); apply ``(out * 255).floor()`` to imitate that.

    Args:
        x (Tensor): (N, 3, H, W) RGB images, float, values in [0, 1] (1e-3 tolerance;
            values are clipped to [0, 1] first). Each side at least 8 px. The presets'
            constants are meant for 32 px ("cifar10-c") and 64 px ("tinyimagenet-c")
            images and are applied unchanged to other sizes (elastic_transform's are
            fractions of the image side).
        name (str): one of :func:`corruption_names` ``("all")``.
        severity (int): 1 (mildest) to 5.
        preset (str): ``"cifar10-c"`` or ``"tinyimagenet-c"``. Default: ``"cifar10-c"``.
        generator (torch.Generator | int | None): a generator on ``x``'s device, a seed
            (a fresh generator on ``x``'s device), or ``None`` for torch's global
            generator. Default: ``None``.

    Returns:
        Tensor: (N, 3, H, W), same dtype and device as ``x``, values in [0, 1].

    Raises:
        ValueError: unknown ``name`` or ``preset``, ``severity`` not in 1..5, ``x`` of the
            wrong shape or dtype or outside [0, 1].
        ImportError: ``name == "frost"`` without the ``imagecorruptions`` package, whose
            frost photos it uses (``pip install imagecorruptions``).

    Example::

        >>> x = torch.full((2, 3, 32, 32), 0.5)
        >>> corrupt(x, "contrast", 5)[0, 0, 0, :3]
        tensor([0.5000, 0.5000, 0.5000])
        >>> corrupt(x, "brightness", 3)[0, 0, 0, :3]
        tensor([0.6500, 0.6500, 0.6500])
        >>> corrupt(x, "gaussian_noise", 1, generator=0).shape
        torch.Size([2, 3, 32, 32])
    """
    params = _check_choice(name, preset, severity)
    _check_images(x)
    generator = _as_generator(generator, x.device)
    if x.shape[0] == 0:
        return x.clone()
    work = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32).clamp(0, 1)
    out = _FUNCTIONS[name](work, params, generator)
    return out.clamp(0, 1).to(x.dtype)
