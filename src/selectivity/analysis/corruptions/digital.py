"""Digital corruptions: brightness, contrast, saturate, pixelate, JPEG and the elastic transform.

Each function takes a float batch ``x`` (N, 3, H, W) in [0, 1], the parameters of one
severity and a ``torch.Generator`` (or ``None``) on ``x``'s device, and returns the
corrupted batch before the final clip to [0, 1].
"""

from __future__ import annotations

from io import BytesIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from . import ops


def brightness(x: Tensor, c: float, generator: torch.Generator | None) -> Tensor:
    """Add ``c`` to the value (V) channel in HSV, clipped to [0, 1]. Deterministic."""
    hsv = ops.rgb_to_hsv(x)
    hsv[:, 2] = (hsv[:, 2] + c).clamp(0, 1)
    return ops.hsv_to_rgb(hsv)


def saturate(x: Tensor, p: tuple[float, float], generator: torch.Generator | None) -> Tensor:
    """Saturation S -> clip(S * a + b, 0, 1) in HSV for ``p = (a, b)``. Deterministic."""
    a, b = p
    hsv = ops.rgb_to_hsv(x)
    hsv[:, 1] = (hsv[:, 1] * a + b).clamp(0, 1)
    return ops.hsv_to_rgb(hsv)


def contrast(x: Tensor, c: float, generator: torch.Generator | None) -> Tensor:
    """(x - mean) * c + mean, ``mean`` per image and channel: ``c < 1`` flattens. Deterministic."""
    mean = x.mean((2, 3), keepdim=True)
    return (x - mean) * c + mean


def pixelate(x: Tensor, c: float, generator: torch.Generator | None) -> Tensor:
    """Shrink to ``int(side * c)`` px with PIL's BOX filter, enlarge back with BOX. Deterministic.

    Both resizes are linear along each axis, so each axis is one (side, side) matrix, the
    product of the two PIL resampling matrices (:func:`ops.pil_box_matrix`).
    """
    h, w = x.shape[-2:]
    sh, sw = int(h * c), int(w * c)
    rows = ops.pil_box_matrix(sh, h) @ ops.pil_box_matrix(h, sh)
    cols = ops.pil_box_matrix(sw, w) @ ops.pil_box_matrix(w, sw)
    return ops.apply_axes(x, rows, cols)


def jpeg_compression(x: Tensor, quality: int, generator: torch.Generator | None) -> Tensor:
    """Encode each image as JPEG of ``quality`` with PIL and decode it. Deterministic.

    A codec, so this one runs image by image on the CPU: pixels are rounded to 8 bits
    (the originals start from 8-bit images), saved with PIL's defaults (4:2:0 chroma
    subsampling) and decoded back to [0, 1].
    """
    arr = (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    decoded = []
    for img in arr:
        buf = BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
        with Image.open(buf) as im:
            decoded.append(np.asarray(im.convert("RGB")))
    return torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255


def _affine_from_points(src: Tensor, dst: Tensor) -> Tensor:
    """(N, 2, 3) affine maps taking the 3 points ``src`` (N, 3, 2) to ``dst`` (N, 3, 2), as (x, y)."""
    ones = torch.ones(*src.shape[:-1], 1, dtype=src.dtype, device=src.device)
    return torch.linalg.solve(torch.cat((src, ones), -1), dst).transpose(1, 2)


def _sample(x: Tensor, px: Tensor, py: Tensor, align_corners: bool) -> Tensor:
    """Bilinear samples of ``x`` at pixel coordinates ``(px, py)`` (N, H, W), mirrored borders.

    ``align_corners=True`` mirrors about the border pixels (OpenCV's reflect-101);
    ``False`` mirrors about the image edge (scipy's ``mode='reflect'``).
    """
    h, w = x.shape[-2:]
    if align_corners:
        gx, gy = 2 * px / (w - 1) - 1, 2 * py / (h - 1) - 1
    else:
        gx, gy = (2 * px + 1) / w - 1, (2 * py + 1) / h - 1
    grid = torch.stack((gx, gy), -1).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=align_corners)


def elastic_warp(x: Tensor, points: Tensor, moved: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
    """The deterministic part of the elastic transform.

    First the affine map taking ``points`` (3, 2) to ``moved`` (N, 3, 2), as OpenCV's
    ``warpAffine`` (bilinear, reflect-101 border) applies it; then each pixel ``(r, c)`` takes
    the bilinear value at ``(r + dy, c + dx)`` (N, H, W), as scipy's
    ``map_coordinates(order=1, mode='reflect')``.
    """
    n, _, h, w = x.shape
    inverse = _affine_from_points(moved, points.expand_as(moved))
    r, c = torch.meshgrid(
        torch.arange(h, dtype=inverse.dtype, device=x.device),
        torch.arange(w, dtype=inverse.dtype, device=x.device),
        indexing="ij",
    )
    src = inverse[:, :, :2] @ torch.stack((c.flatten(), r.flatten())) + inverse[:, :, 2:]
    x = _sample(x, src[:, 0].view(n, h, w), src[:, 1].view(n, h, w), align_corners=True)
    return _sample(x, c + dx, r + dy, align_corners=False)


def elastic_transform(x: Tensor, p: tuple[float, float, float], generator: torch.Generator | None) -> Tensor:
    """Elastic transform ``(alpha, sigma, jitter)``, each a fraction of the image side ``s``.

    A random affine map moves three points around the centre (``(cx+d, cy+d)``,
    ``(cx+d, cy-d)``, ``(cx-d, cy-d)``, ``d = s // 3``) by uniform offsets in
    ``[-jitter * s, jitter * s]``; then every pixel is displaced by a field of uniform noise
    in [-1, 1], smoothed by a Gaussian of ``sigma * s`` px (scipy ``reflect`` border,
    truncated at 3 sigma) and scaled by ``alpha * s`` px, one field per axis
    (:func:`elastic_warp`). Random: the three offsets and the two fields, per image. In
    the published constants the warping grows with severity while the affine jitter
    shrinks, so the image gets closer to the clean one as severity rises.
    """
    n, _, h, w = x.shape
    side = min(h, w)
    alpha, sigma, jitter = (v * side for v in p)
    dev = x.device
    cx, cy, d = w // 2, h // 2, side // 3
    points = torch.tensor([[cx + d, cy + d], [cx + d, cy - d], [cx - d, cy - d]], dtype=torch.float64, device=dev)
    offsets = torch.rand((n, 3, 2), generator=generator, device=dev, dtype=torch.float64)
    moved = points + (2 * offsets - 1) * jitter
    noise = 2 * torch.rand((n, 2, h, w), generator=generator, device=dev, dtype=x.dtype) - 1
    field = ops.gaussian_filter(noise, sigma, border="symmetric", truncate=3.0) * alpha
    return elastic_warp(x, points, moved, field[:, 0], field[:, 1])
