"""Tensor building blocks shared by the corruptions: padding, filters, resampling, colour.

Every function works on a batch ``x`` of shape (N, C, H, W) on any device. Where a
corruption of the original generator calls a library routine (scipy, scikit-image,
OpenCV, PIL, ImageMagick), the routine's exact convention is reproduced here and named
in the docstring, because those conventions (border rule, kernel radius, resampling
grid) decide the pixels.

Border rules, by the names of the libraries that the originals call:

- ``"edge"``: repeat the border pixel (scipy ``nearest``, the default of
  ``skimage.filters.gaussian``; ImageMagick's virtual pixels).
- ``"reflect101"``: mirror about the border pixel, ``c b | a b c`` (OpenCV's default
  ``BORDER_REFLECT_101``, scipy ``mirror``).
- ``"symmetric"``: mirror including the border pixel, ``b a | a b c`` (scipy ``reflect``).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

_BORDERS = ("edge", "reflect101", "symmetric")


def _border_index(n: int, before: int, after: int, border: str, device) -> Tensor:
    """Source index of each of the ``before + n + after`` positions of a padded axis."""
    i = torch.arange(-before, n + after, device=device)
    if border == "edge" or n == 1:
        return i.clamp(0, n - 1)
    if border == "reflect101":
        period = 2 * (n - 1)
        i = i.remainder(period)
        return torch.where(i >= n, period - i, i)
    if border == "symmetric":
        period = 2 * n
        i = i.remainder(period)
        return torch.where(i >= n, period - 1 - i, i)
    raise ValueError(f"border must be one of {_BORDERS}, got {border!r}")


def pad(x: Tensor, top: int, bottom: int, left: int, right: int, border: str) -> Tensor:
    """Pad the last two axes of ``x`` (N, C, H, W) by the given widths with a border rule (any width)."""
    h, w = x.shape[-2:]
    if border == "edge":
        return F.pad(x, (left, right, top, bottom), mode="replicate")
    if border == "reflect101" and max(top, bottom) < h and max(left, right) < w:
        return F.pad(x, (left, right, top, bottom), mode="reflect")
    rows = _border_index(h, top, bottom, border, x.device)
    cols = _border_index(w, left, right, border, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def correlate(x: Tensor, kernel: Tensor, border: str) -> Tensor:
    """2-D correlation of every channel of ``x`` (N, C, H, W) with ``kernel`` (kh, kw), same size.

    The kernel's centre is at ``(kh // 2, kw // 2)``, as in OpenCV's ``filter2D`` (which
    correlates, it does not flip the kernel); borders follow ``border``.
    """
    c = x.shape[1]
    kh, kw = kernel.shape
    xp = pad(x, kh // 2, kh - 1 - kh // 2, kw // 2, kw - 1 - kw // 2, border)
    return F.conv2d(xp, kernel.to(x).expand(c, 1, kh, kw), groups=c)


def separable(x: Tensor, kernel_rows: Tensor, kernel_cols: Tensor, border: str) -> Tensor:
    """Correlate ``x`` with ``kernel_rows`` along H, then with ``kernel_cols`` along W."""
    x = correlate(x, kernel_rows.reshape(-1, 1), border)
    return correlate(x, kernel_cols.reshape(1, -1), border)


def scipy_gaussian_kernel(sigma: float, truncate: float) -> Tensor:
    """1-D Gaussian of ``scipy.ndimage.gaussian_filter``: radius ``int(truncate*sigma+0.5)``.

    Weights ``exp(-x^2 / (2 sigma^2))`` normalised to sum 1, in float64.
    """
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_filter(x: Tensor, sigma: float, border: str = "edge", truncate: float = 4.0) -> Tensor:
    """Gaussian blur of each channel, as ``skimage.filters.gaussian(..., channel_axis=-1)``.

    That is scipy's ``gaussian_filter`` with standard deviation ``sigma`` (pixels) on both
    image axes, kernel radius ``int(truncate * sigma + 0.5)``; ``sigma == 0`` leaves ``x``
    unchanged, as in scipy. Defaults are scikit-image's (``mode='nearest'``, truncate 4).
    """
    if sigma <= 0:
        return x
    k = scipy_gaussian_kernel(sigma, truncate).to(x.device)
    return separable(x, k, k, border)


def opencv_gaussian_kernel(ksize: int, sigma: float) -> np.ndarray:
    """OpenCV's ``getGaussianKernel(ksize, sigma)`` for ``sigma > 0``, as float64."""
    t = np.arange(ksize) - (ksize - 1) / 2
    k = np.exp(-(t**2) / (2 * sigma**2))
    return k / k.sum()


def box_blur3(x: Tensor) -> Tensor:
    """OpenCV ``blur(x, (3, 3))``: mean over each 3x3 window, reflect-101 border."""
    k = torch.full((3,), 1 / 3, dtype=x.dtype, device=x.device)
    return separable(x, k, k, "reflect101")


@cache
def scipy_zoom_matrix(n_in: int, zoom: float) -> Tensor:
    """(round(n_in*zoom), n_in) matrix of ``scipy.ndimage.zoom(..., order=1)`` along one axis.

    scipy maps output index ``o`` to input coordinate ``o * (n_in - 1) / (n_out - 1)``
    (corners aligned) and interpolates linearly; ``n_out = round(n_in * zoom)`` with
    Python's rounding, as scipy computes it.
    """
    n_out = int(round(n_in * zoom))
    step = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    pos = np.arange(n_out) * step
    lo = np.minimum(np.floor(pos).astype(np.int64), n_in - 1)
    frac = pos - lo
    hi = np.minimum(lo + 1, n_in - 1)
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), lo), 1 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return torch.from_numpy(m)


@cache
def clipped_zoom_matrix(n: int, zoom: float) -> Tensor:
    """(n, n) matrix of the originals' ``clipped_zoom`` along one axis of length ``n``.

    Crop the central ``ceil(n / zoom)`` pixels (start ``(n - crop) // 2``), enlarge them
    with ``scipy.ndimage.zoom(order=1)`` by ``zoom``, and keep the central ``n`` of the
    result (start ``(len - n) // 2``): a central zoom-in that keeps the size.
    """
    crop = int(np.ceil(n / zoom))
    top = (n - crop) // 2
    z = scipy_zoom_matrix(crop, zoom)
    trim = (z.shape[0] - n) // 2
    m = torch.zeros(n, n, dtype=torch.float64)
    m[:, top : top + crop] = z[trim : trim + n]
    return m


def apply_axes(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """``rows @ x @ cols.T`` over the last two axes: a separable linear resampling."""
    return rows.to(x) @ x @ cols.to(x).T


@cache
def pil_box_matrix(n_in: int, n_out: int) -> Tensor:
    """(n_out, n_in) matrix of PIL's ``resize(..., Image.BOX)`` along one axis.

    PIL centres output pixel ``o`` at input coordinate ``(o + 0.5) * n_in / n_out``,
    widens the box filter by the scale when shrinking (support ``0.5 * max(scale, 1)``),
    weights each input pixel by the box ``-0.5 < t <= 0.5`` evaluated at its centre, and
    normalises each row (Pillow's ``precompute_coeffs``). Shrinking averages each output's
    footprint; enlarging copies the nearest input pixel.
    """
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        center = (o + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        t = (np.arange(lo, hi) - center + 0.5) / filterscale
        w = ((t > -0.5) & (t <= 0.5)).astype(np.float64)
        if w.sum() > 0:
            m[o, lo:hi] = w / w.sum()
    return torch.from_numpy(m)


@cache
def opencv_linear_matrix(n_in: int, scale: float) -> Tensor:
    """(n_out, n_in) matrix of OpenCV ``resize(fx=scale, interpolation=INTER_LINEAR)``.

    ``n_out = round(n_in * scale)``; output pixel ``o`` samples input coordinate
    ``(o + 0.5) / scale - 0.5`` with linear interpolation, clamped at the borders, and no
    anti-aliasing when shrinking (OpenCV's ``resize`` without ``INTER_AREA``).
    """
    n_out = int(np.rint(n_in * scale))
    pos = (np.arange(n_out) + 0.5) / scale - 0.5
    lo = np.floor(pos).astype(np.int64)
    frac = pos - lo
    frac[lo < 0] = 0.0
    lo = np.clip(lo, 0, n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), lo), 1 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return torch.from_numpy(m)


def rgb_to_hsv(x: Tensor) -> Tensor:
    """RGB (N, 3, H, W) in [0, 1] -> HSV in [0, 1], as ``skimage.color.rgb2hsv``.

    V is the largest channel, S = (max - min) / V (0 where max == min), H the hexcone
    hue / 6 (0 for greys).
    """
    r, g, b = x.unbind(1)
    v, _ = x.max(1)
    delta = v - x.min(1).values
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    h = torch.where(v == r, (g - b) / safe, torch.zeros_like(v))
    h = torch.where(v == g, 2 + (b - r) / safe, h)
    h = torch.where(v == b, 4 + (r - g) / safe, h)
    h = torch.where(delta > 0, (h / 6).remainder(1.0), torch.zeros_like(h))
    s = torch.where(delta > 0, delta / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    return torch.stack((h, s, v), 1)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """HSV (N, 3, H, W) -> RGB, the inverse of :func:`rgb_to_hsv` (``skimage.color.hsv2rgb``).

    Closed form of the hexcone: channel ``n`` (5 for R, 3 for G, 1 for B) is
    ``V * (1 - S * clip(min(k, 4 - k), 0, 1))`` with ``k = (n + 6 H) mod 6``.
    """
    n = torch.tensor([5.0, 3.0, 1.0], dtype=hsv.dtype, device=hsv.device).view(1, 3, 1, 1)
    k = (n + 6 * hsv[:, :1]).remainder(6)
    return hsv[:, 2:] * (1 - hsv[:, 1:2] * torch.minimum(k, 4 - k).clamp(0, 1))


def rgb_to_gray(x: Tensor) -> Tensor:
    """OpenCV ``COLOR_RGB2GRAY``: 0.299 R + 0.587 G + 0.114 B, shape (N, 1, H, W)."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device)
    return (x * w.view(1, 3, 1, 1)).sum(1, keepdim=True)


def motion_blur_taps(radius: float, sigma: float, angle: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The taps of ImageMagick's ``MotionBlurImage(radius, sigma, angle)``, per image.

    ImageMagick blurs along one side of a line: output(y, x) = sum_i k_i * input(y + dy_i,
    x + dx_i) for i = 0 .. width-1, with width = 2 * ceil(radius) + 1 taps, Gaussian weights
    k_i = exp(-i^2 / (2 sigma^2)) normalised to sum 1 (tap 0 is the pixel itself), and
    offsets dx_i = ceil(i cos(angle) - 0.5), dy_i = ceil(i sin(angle) - 0.5) (angle in
    degrees, y pointing down). Pixels outside the image repeat the border (ImageMagick's
    default "edge" virtual pixels).

    Args:
        angle: (N,) angles in degrees, one per image.

    Returns:
        ``(weights (width,), dx (N, width), dy (N, width))``, offsets as int64.
    """
    width = 2 * math.ceil(radius) + 1
    i = torch.arange(width, dtype=torch.float64, device=angle.device)
    k = torch.exp(-(i**2) / (2 * sigma**2))
    rad = torch.deg2rad(angle.to(torch.float64)).unsqueeze(1)
    dx = torch.ceil(i * torch.cos(rad) - 0.5).long()
    dy = torch.ceil(i * torch.sin(rad) - 0.5).long()
    return k / k.sum(), dx, dy


def motion_blur(x: Tensor, radius: float, sigma: float, angle: Tensor) -> Tensor:
    """ImageMagick's motion blur of each image of ``x`` along its own ``angle`` (degrees).

    The taps of :func:`motion_blur_taps` are laid into one dense kernel per image, over
    the bounding box of all the batch's offsets, and applied as a grouped convolution on
    the edge-padded batch.
    """
    k, dx, dy = motion_blur_taps(radius, sigma, angle)
    x0, x1 = int(dx.min()), int(dx.max())
    y0, y1 = int(dy.min()), int(dy.max())
    rows = torch.arange(y0, y1 + 1, device=x.device)
    cols = torch.arange(x0, x1 + 1, device=x.device)
    hit_rows = (dy.unsqueeze(-1) == rows).to(x.dtype)  # (N, width, kh)
    hit_cols = (dx.unsqueeze(-1) == cols).to(x.dtype)  # (N, width, kw)
    kernel = torch.einsum("t,ntr,ntc->nrc", k.to(x.dtype), hit_rows, hit_cols)
    xp = pad(x, -y0, y1, -x0, x1, "edge")
    n, c = x.shape[:2]
    weight = kernel.repeat_interleave(c, dim=0).unsqueeze(1)
    out = F.conv2d(xp.reshape(1, n * c, *xp.shape[-2:]), weight, groups=n * c)
    return out.reshape(x.shape)
