"""Spatter: water drops or mud on the lens, with the OpenCV steps of the original in torch.

The water branch of the original runs OpenCV's Canny edge detector, chamfer distance
transform, histogram equalisation and box/emboss filters on 8-bit images; each is
reproduced here on integer-valued tensors, one image per batch row.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import ops

_TAN_22_5 = 13573  # OpenCV Canny: round(tan(22.5 deg) * 2^15)
_CHAMFER = (  # OpenCV distanceTransform(DIST_L2, 5): (dy, dx, cost) of the 5x5 mask
    [(dy, dx, 1.0) for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0))]
    + [(dy, dx, 1.4) for dy in (1, -1) for dx in (1, -1)]
    + [(dy, dx, 2.1969) for dy, dx in ((1, 2), (2, 1), (1, -2), (2, -1), (-1, 2), (-2, 1), (-1, -2), (-2, -1))]
)
_EMBOSS = torch.tensor([[-2.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])
_WATER = (175 / 255, 238 / 255, 238 / 255)  # pale turquoise, RGB
_MUD = (63 / 255, 42 / 255, 20 / 255)  # brown, RGB


def _neighbours(x: Tensor, fill: float) -> Tensor:
    """(N, 1, H, W) -> (N, 3, 3, H, W): the 3x3 neighbourhood of each pixel, ``fill`` outside."""
    h, w = x.shape[-2:]
    xp = torch.nn.functional.pad(x, (1, 1, 1, 1), value=fill)[:, 0]
    return torch.stack([torch.stack([xp[:, i : i + h, j : j + w] for j in range(3)], 1) for i in range(3)], 1)


def canny(img: Tensor, low: int, high: int) -> Tensor:
    """OpenCV ``Canny(img, low, high)`` (3x3 Sobel, L1 gradient) of 8-bit values, as a bool mask.

    Sobel gradients with replicated borders; magnitude ``|gx| + |gy|``; a pixel survives
    non-maximum suppression when its magnitude exceeds ``low`` and beats its two neighbours
    across the edge direction (horizontal, vertical or diagonal, chosen with OpenCV's
    integer tangent test and its strict / non-strict comparisons); survivors above
    ``high`` are edges, and survivors 8-connected to an edge become edges (hysteresis).

    Args:
        img: (N, 1, H, W) with integer values in 0..255.
    """
    sobel = torch.tensor([1.0, 2.0, 1.0], dtype=img.dtype, device=img.device)
    diff = torch.tensor([-1.0, 0.0, 1.0], dtype=img.dtype, device=img.device)
    gx = ops.separable(img, sobel, diff, "edge").long()
    gy = ops.separable(img, diff, sobel, "edge").long()
    mag = gx.abs() + gy.abs()
    nb = _neighbours(mag.double(), 0.0).long()  # nb[:, dy + 1, dx + 1] = mag at offset (dy, dx)
    m = mag[:, 0]
    ax, ay = gx.abs()[:, 0], gy.abs()[:, 0] << 15
    tg22 = ax * _TAN_22_5
    tg67 = tg22 + (ax << 16)
    horizontal = (m > nb[:, 1, 0]) & (m >= nb[:, 1, 2])
    vertical = (m > nb[:, 0, 1]) & (m >= nb[:, 2, 1])
    same_sign = (gx[:, 0] ^ gy[:, 0]) >= 0
    diag_same = (m > nb[:, 0, 0]) & (m > nb[:, 2, 2])
    diag_opposite = (m > nb[:, 0, 2]) & (m > nb[:, 2, 0])
    diagonal = torch.where(same_sign, diag_same, diag_opposite)
    peak = torch.where(ay < tg22, horizontal, torch.where(ay > tg67, vertical, diagonal))
    candidate = (peak & (m > low)).unsqueeze(1)
    edge = candidate & (mag > high)
    while True:
        grown = candidate & (torch.nn.functional.max_pool2d(edge.float(), 3, 1, 1) > 0)
        if torch.equal(grown, edge):
            return edge
        edge = grown


def chamfer_distance(zero: Tensor, cap: float) -> Tensor:
    """OpenCV ``distanceTransform(DIST_L2, 5)`` from the ``zero`` pixels, correct up to ``cap``.

    The distance is the cheapest path to a zero pixel in steps of the 5x5 chamfer mask
    (cost 1 straight, 1.4 diagonal, 2.1969 knight's move), outside the image unreachable.
    A path of cost <= ``cap`` has at most ``cap`` steps, so ``ceil(cap)`` parallel relaxations
    find every distance up to ``cap``; larger ones come out larger than ``cap``.

    Args:
        zero: (N, 1, H, W) bool.
    """
    h, w = zero.shape[-2:]
    inf = float(h * w * 3)
    d = torch.where(zero, 0.0, inf).float()
    for _ in range(int(cap) + 1):
        dp = torch.nn.functional.pad(d, (2, 2, 2, 2), value=inf)
        best = d
        for dy, dx, cost in _CHAMFER:
            best = torch.minimum(best, dp[..., 2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w] + cost)
        if torch.equal(best, d):
            break
        d = best
    return d


def equalize_hist(img: Tensor) -> Tensor:
    """OpenCV ``equalizeHist`` of each 8-bit image (N, 1, H, W), integer values 0..255.

    With ``hist`` the image's histogram and ``i0`` its darkest level, level ``i`` maps to
    ``round(255 * (cdf(i) - hist(i0)) / (pixels - hist(i0)))``; a one-level image keeps its level.
    """
    n = img.shape[0]
    levels = img.flatten(1).long()
    offset = torch.arange(n, device=img.device)[:, None] * 256
    hist = torch.bincount((levels + offset).flatten(), minlength=n * 256).view(n, 256)
    first = levels.amin(1, keepdim=True)
    first_count = hist.gather(1, first)
    total = levels.shape[1]
    scale = 255.0 / (total - first_count).clamp(min=1).float()
    lut = torch.round((hist.cumsum(1) - first_count).float() * scale).clamp(0, 255)
    lut = torch.where(torch.arange(256, device=img.device) <= first, torch.zeros_like(lut), lut)
    lut = torch.where(first_count == total, first.float().expand(-1, 256), lut)
    return lut.gather(1, levels).view(img.shape).to(img.dtype)


def _water(x: Tensor, liquid: Tensor, intensity: float) -> Tensor:
    """The water branch: turquoise drops whose strength follows the drops' embossed edges."""
    layer = torch.floor(liquid.clamp(0, 1) * 255)
    dist = chamfer_distance(canny(layer, 50, 150), 20).clamp(max=20)
    dist = torch.floor(ops.box_blur3(dist))
    dist = equalize_hist(dist)
    dist = ops.correlate(dist, _EMBOSS.to(dist.device), "reflect101").clamp(0, 255)
    dist = torch.round(ops.box_blur3(dist))
    m = layer * dist
    m = m / m.amax((1, 2, 3), keepdim=True).clamp(min=1e-12) * intensity
    color = torch.tensor(_WATER, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x + m.to(x.dtype) * color


def _mud(x: Tensor, liquid: Tensor, threshold: float, sigma: float) -> Tensor:
    """The mud branch: brown blots where the blurred drop mask is at least 0.8."""
    m = ops.gaussian_filter((liquid > threshold).to(x.dtype), sigma)
    m = torch.where(m < 0.8, torch.zeros_like(m), m)
    color = torch.tensor(_MUD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x * (1 - m) + color * m


def spatter(x: Tensor, p: tuple, generator: torch.Generator | None) -> Tensor:
    """Spatter ``(loc, scale, sigma, threshold, intensity, mode)``: water (mode 0) or mud (1).

    A liquid layer of N(loc, scale^2) noise is Gaussian-blurred (``sigma`` px) and set to 0
    below ``threshold``. Water: the layer, as 8 bits, times an embossed, equalised map of
    the distance to the layer's Canny edges, scaled to peak at ``intensity``, adds pale
    turquoise. Mud: the mask ``layer > threshold`` blurred with ``intensity`` as sigma,
    kept where >= 0.8, blends the image toward brown. Random: the noise.
    """
    loc, scale, sigma, threshold, intensity, mode = p
    n, _, h, w = x.shape
    liquid = loc + scale * torch.randn((n, 1, h, w), generator=generator, device=x.device, dtype=torch.float32)
    liquid = ops.gaussian_filter(liquid, sigma)
    liquid = torch.where(liquid < threshold, torch.zeros_like(liquid), liquid)
    if mode == 0:
        return _water(x, liquid, intensity)
    return _mud(x, liquid, threshold, intensity)
