"""Weather corruptions: snow, frost and fog.

Each function takes a float batch ``x`` (N, 3, H, W) in [0, 1], the parameters of one
severity and a ``torch.Generator`` (or ``None``) on ``x``'s device, and returns the
corrupted batch before the final clip to [0, 1]. All three are random.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from . import ops

FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
"""The frost photos the originals draw from: ``randint(5)`` never picks the sixth, frost6.jpg."""


def snow(x: Tensor, p: tuple, generator: torch.Generator | None) -> Tensor:
    """Falling snow ``(loc, scale, zoom, threshold, radius, sigma, blend)``.

    A snow layer of N(loc, scale^2) noise, one value per pixel, is enlarged by the central
    zoom ``zoom`` (the originals' ``clipped_zoom``), set to 0 below ``threshold``, clipped to
    [0, 1] and truncated to 8 bits (the original hands ImageMagick an 8-bit PNG), then
    motion-blurred (ImageMagick, ``radius``, ``sigma``) at a random angle in [-135, -45]
    degrees. The image is whitened, ``blend * x + (1 - blend) * max(x, 1.5 * gray(x) + 0.5)``,
    and the layer is added twice: as it is and rotated by 180 degrees. Random: the noise
    and one angle per image.
    """
    loc, scale, zoom, threshold, radius, sigma, blend = p
    n, _, h, w = x.shape
    layer = loc + scale * torch.randn((n, 1, h, w), generator=generator, device=x.device, dtype=x.dtype)
    layer = ops.apply_axes(layer, ops.clipped_zoom_matrix(h, zoom), ops.clipped_zoom_matrix(w, zoom))
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer)
    layer = torch.floor(layer.clamp(0, 1) * 255) / 255
    angle = torch.rand(n, generator=generator, device=x.device, dtype=torch.float64) * 90 - 135
    layer = ops.motion_blur(layer, radius, sigma, angle)
    x = blend * x + (1 - blend) * torch.maximum(x, ops.rgb_to_gray(x) * 1.5 + 0.5)
    return x + layer + layer.flip(-2, -1)


def frost_folder() -> Path:
    """The folder of frost photos that the ``imagecorruptions`` package ships.

    Found without importing the package (whose import needs OpenCV and scikit-image):
    only its image files are used. Raises ``ImportError`` when it is not installed.
    """
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the frost corruption needs the frost photos shipped by the imagecorruptions package: "
            "pip install imagecorruptions (--no-deps is enough; only its image files are read)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "frost"
    missing = [name for name in FROST_FILES if not (folder / name).is_file()]
    if missing:
        raise ImportError(f"the imagecorruptions package at {folder.parent} lacks frost photos {missing}; reinstall it")
    return folder


@cache
def frost_photos(scale: float, device: torch.device) -> tuple[Tensor, ...]:
    """The five frost photos, RGB (3, h, w) float in 0..255, shrunk by ``scale``.

    Shrunk as the originals do, with OpenCV's ``resize(fx=scale, fy=scale)`` (bilinear, no
    anti-aliasing) and rounded to 8 bits (:func:`ops.opencv_linear_matrix`); OpenCV's
    fixed-point weights can put a pixel one level away (none at 0.2, an eighth at 0.3).
    """
    photos = []
    for name in FROST_FILES:
        with Image.open(frost_folder() / name) as im:
            rgb = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float64).transpose(2, 0, 1).copy())
        h, w = rgb.shape[1:]
        small = ops.apply_axes(rgb, ops.opencv_linear_matrix(h, scale), ops.opencv_linear_matrix(w, scale))
        photos.append(small.round().float().to(device))
    return tuple(photos)


def frost(x: Tensor, p: tuple[float, float, float], generator: torch.Generator | None) -> Tensor:
    """Frost on the lens ``(a, b, scale)``: ``a * x + b * crop`` of a frost photo.

    Each image takes a random one of :data:`FROST_FILES`, shrunk by ``scale``, and a
    random crop of its own size from it (top-left uniform over ``[0, h_photo - H)`` x
    ``[0, w_photo - W)``, as the originals draw it). Random: photo and crop per image.
    The photos are laid end to end in one buffer, so all crops are one gather.
    """
    a, b, scale = p
    n, _, h, w = x.shape
    photos = frost_photos(scale, x.device)
    too_small = [i for i, photo in enumerate(photos) if photo.shape[1] <= h or photo.shape[2] <= w]
    if too_small:
        sizes = [tuple(photos[i].shape[1:]) for i in too_small]
        raise ValueError(
            f"x: frost photos shrunk by {scale} are {sizes}, not larger than the {h}x{w} images; "
            "use the preset made for this image size"
        )
    choice = torch.randint(0, len(photos), (n,), generator=generator, device=x.device)
    u = torch.rand((n, 2), generator=generator, device=x.device, dtype=torch.float64)
    heights = torch.tensor([photo.shape[1] for photo in photos], device=x.device)
    widths = torch.tensor([photo.shape[2] for photo in photos], device=x.device)
    starts = torch.cumsum(heights * widths, 0) - heights * widths
    top = (u[:, 0] * (heights[choice] - h)).long()
    left = (u[:, 1] * (widths[choice] - w)).long()
    rows = top[:, None, None] + torch.arange(h, device=x.device)[None, :, None]
    cols = left[:, None, None] + torch.arange(w, device=x.device)[None, None, :]
    index = starts[choice, None, None] + rows * widths[choice, None, None] + cols  # (n, h, w)
    flat = torch.cat([photo.flatten(1) for photo in photos], 1)  # (3, sum of photo areas)
    crops = flat[:, index].transpose(0, 1).to(x.dtype)
    return a * x + b * crops / 255


def plasma_fractal(n: int, size: int, decay: float, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """``n`` diamond-square height maps (n, size, size) in [0, 1], float64; ``size`` a power of two.

    The originals' ``plasma_fractal``: starting from one corner at 0, each step of side
    ``s`` sets the square centres, then the diamond centres, to the mean of their four
    neighbours (wrapping around) plus uniform noise in ``[-wibble^2, wibble^2]``; ``wibble``
    starts at 100 and is divided by ``decay`` each step, so a larger ``decay`` gives a
    smoother map. Each map is then scaled to [0, 1].
    """
    m = torch.zeros((n, size, size), dtype=torch.float64, device=device)
    step, wibble = size, 100.0

    def wibbled_mean(total: Tensor) -> Tensor:
        noise = torch.rand(total.shape, generator=generator, device=device, dtype=torch.float64)
        return total / 4 + wibble * wibble * (2 * noise - 1)

    while step >= 2:
        half = step // 2
        corners = m[:, ::step, ::step]
        square = corners + corners.roll(-1, 1)
        m[:, half::step, half::step] = wibbled_mean(square + square.roll(-1, 2))
        centres, corners = m[:, half::step, half::step], m[:, ::step, ::step]
        m[:, ::step, half::step] = wibbled_mean(centres + centres.roll(1, 1) + corners + corners.roll(-1, 2))
        m[:, half::step, ::step] = wibbled_mean(centres + centres.roll(1, 2) + corners + corners.roll(-1, 1))
        step, wibble = half, wibble / decay
    m = m - m.amin((1, 2), keepdim=True)
    return m / m.amax((1, 2), keepdim=True)


def fog(x: Tensor, p: tuple[float, float], generator: torch.Generator | None) -> Tensor:
    """Fog ``(strength, decay)``: add ``strength`` times a plasma fractal, then rescale.

    ``(x + strength * haze) * peak / (peak + strength)``, with ``haze`` a
    :func:`plasma_fractal` (side: the power of two that covers the image, cropped; 32 for
    CIFAR, 64 for Tiny ImageNet, as in the originals) and ``peak`` the image's largest
    value. Random: one fractal per image.
    """
    strength, decay = p
    n, _, h, w = x.shape
    size = 1 << (max(h, w) - 1).bit_length()
    haze = plasma_fractal(n, size, decay, generator, x.device)[:, None, :h, :w].to(x.dtype)
    peak = x.amax((1, 2, 3), keepdim=True)
    return (x + strength * haze) * peak / (peak + strength)
