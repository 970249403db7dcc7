"""Blur corruptions: defocus, glass, motion, zoom and gaussian blur.

Each function takes a float batch ``x`` (N, 3, H, W) in [0, 1], the parameters of one
severity and a ``torch.Generator`` (or ``None``) on ``x``'s device, and returns the
corrupted batch before the final clip to [0, 1].
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from torch import Tensor

from . import ops


@cache
def defocus_kernel(radius: float, alias_blur: float) -> Tensor:
    """The originals' ``disk``: a normalised disk of ``radius`` px, softened by a Gaussian.

    The disk ``x^2 + y^2 <= radius^2`` lives on a 17x17 grid (radius <= 8; else
    ``2 * radius + 1``), is normalised to sum 1, then blurred by OpenCV's ``GaussianBlur``
    with a 3x3 (radius <= 8; else 5x5) kernel of standard deviation ``alias_blur``.
    Returns the float64 kernel, cut to the square that holds its entries above 1e-12 of
    its peak (the rest of the grid adds nothing but work).
    """
    half, ksize = (8, 3) if radius <= 8 else (radius, 5)
    t = np.arange(-half, half + 1)
    disk = (t[:, None] ** 2 + t[None, :] ** 2 <= radius**2).astype(np.float64)
    disk = torch.from_numpy(disk / disk.sum()).view(1, 1, *disk.shape)
    g = torch.from_numpy(ops.opencv_gaussian_kernel(ksize, alias_blur))
    kernel = ops.separable(disk, g, g, "reflect101")[0, 0]
    centre = kernel.shape[0] // 2
    reach = (kernel > 1e-12 * kernel.max()).nonzero().sub(centre).abs().max().item()
    return kernel[centre - reach : centre + reach + 1, centre - reach : centre + reach + 1]


def defocus_blur(x: Tensor, p: tuple[float, float], generator: torch.Generator | None) -> Tensor:
    """Out-of-focus blur: correlate each channel with :func:`defocus_kernel` ``(radius, alias_blur)``.

    As the originals' ``cv2.filter2D`` (reflect-101 border). Deterministic.
    """
    return ops.correlate(x, defocus_kernel(*p).to(x.device), "reflect101")


def gaussian_blur(x: Tensor, sigma: float, generator: torch.Generator | None) -> Tensor:
    """Gaussian blur of standard deviation ``sigma`` px (scikit-image's ``gaussian``). Deterministic."""
    return ops.gaussian_filter(x, sigma)


def local_shuffle(x: Tensor, shifts: Tensor, max_delta: int) -> Tensor:
    """One sweep of the originals' glass-blur pixel loop, vectorised.

    The original visits rows ``h = H - d, ..., d + 1`` (descending) and, inside each, columns
    ``w = W - d, ..., d + 1`` (descending), ``d = max_delta``, and runs
    ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` with ``(h', w') = (h + dy, w + dx)``. With
    numpy views this is not a swap: it copies pixel ``(h', w')`` onto ``(h, w)`` and leaves
    ``(h', w')`` as it was. Because the loop runs in order, the copied value is the
    source's value at that moment: its original value if the source has not been visited
    yet, else the value the source itself received. This function computes the same result
    in parallel: each visited pixel points to its source when the source was visited
    earlier, the chains are followed to their end by pointer doubling, and the end's
    source supplies the value. With ``max_delta == 1`` (all of CIFAR-10-C) the shifts are
    -1 or 0 and no source is ever visited before its target, so the loop is a plain gather.

    Args:
        x: (N, C, H, W) images.
        shifts: (N, H - 2d, W - 2d, 2) int64 ``(dx, dy)`` per visited pixel, in
            ``[-d, d - 1]`` as ``np.random.randint(-d, d)`` draws them, indexed by row
            ``h - d - 1`` and column ``w - d - 1``.
        max_delta: ``d``.

    Returns:
        (N, C, H, W): ``x`` after the sweep.
    """
    n, c, h, w = x.shape
    d = max_delta
    nw = w - 2 * d
    dev = x.device
    ys = torch.arange(d + 1, h - d + 1, device=dev)
    xs = torch.arange(d + 1, w - d + 1, device=dev)
    target = (ys[:, None] * w + xs[None, :]).flatten()  # flat index of each visited pixel
    rank = torch.full((h * w,), h * w, dtype=torch.long, device=dev)
    rank[target] = ((h - d - ys)[:, None] * nw + (w - d - xs)[None, :]).flatten()
    src = ((ys[None, :, None] + shifts[..., 1]) * w + xs[None, None, :] + shifts[..., 0]).reshape(n, -1)
    chained = rank[src] < rank[target]
    pointer = torch.arange(h * w, device=dev).repeat(n, 1)
    base = pointer.clone()
    pointer[:, target] = torch.where(chained, src, target)
    base[:, target] = src
    while True:  # pointer doubling: chains are short, and absent when max_delta == 1
        nxt = pointer.gather(1, pointer)
        if torch.equal(nxt, pointer):
            break
        pointer = nxt
    index = base.gather(1, pointer)
    return x.flatten(2).gather(2, index.unsqueeze(1).expand(n, c, -1)).view(n, c, h, w)


def glass_blur(x: Tensor, p: tuple[float, int, int], generator: torch.Generator | None) -> Tensor:
    """Frosted-glass blur ``(sigma, max_delta, iterations)``: blur, shuffle locally, blur.

    Gaussian blur of ``sigma`` px; truncation to 8 bits (the original keeps this
    intermediate image as uint8); ``iterations`` sweeps of :func:`local_shuffle`, where
    each visited pixel takes the value of a random neighbour at offsets in
    ``[-max_delta, max_delta - 1]``; a second Gaussian blur. Random: the shifts.
    """
    sigma, d, iterations = p
    n, _, h, w = x.shape
    x = torch.floor(ops.gaussian_filter(x, sigma) * 255) / 255
    for _ in range(iterations):
        shape = (n, h - 2 * d, w - 2 * d, 2)
        shifts = torch.randint(-d, d, shape, generator=generator, device=x.device)
        x = local_shuffle(x, shifts, d)
    return ops.gaussian_filter(x, sigma)


def motion_blur(x: Tensor, p: tuple[float, float], generator: torch.Generator | None) -> Tensor:
    """ImageMagick's motion blur ``(radius, sigma)`` at a random angle in [-45, 45] degrees.

    See :func:`ops.motion_blur_taps`: a one-sided line of ``2 * ceil(radius) + 1`` taps with
    Gaussian weights of ``sigma`` px. Random: one angle per image.
    """
    angle = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=torch.float64) * 90 - 45
    return ops.motion_blur(x, p[0], p[1], angle)


def zoom_blur(x: Tensor, zooms: tuple[float, ...], generator: torch.Generator | None) -> Tensor:
    """Mean of the image and its central zooms by each factor in ``zooms`` (>= 1).

    Each zoom is the originals' ``clipped_zoom`` (:func:`ops.clipped_zoom_matrix`), applied
    to rows and columns as two small matrices. Deterministic.
    """
    h, w = x.shape[-2:]
    out = x.clone()
    for z in zooms:
        out += ops.apply_axes(x, ops.clipped_zoom_matrix(h, z), ops.clipped_zoom_matrix(w, z))
    return out / (len(zooms) + 1)
