"""Corruption names and the severity constants of CIFAR-10-C and Tiny-ImageNet-C.

Each preset maps a corruption name to its five parameter sets, severity 1 first, copied
from the benchmark scripts of Hendrycks & Dietterich (2019): ``make_cifar_c.py`` for
``"cifar10-c"`` (32 px images) and ``make_tinyimagenet_c.py`` for ``"tinyimagenet-c"``
(64 px). What each number means is documented by the corruption's function. Two
entries differ in form from the scripts, not in value:

- ``frost`` carries a third number, the factor by which the frost photo is shrunk before
  the crop (0.2 for CIFAR-10-C, 0.3 for Tiny-ImageNet-C), which the scripts hard-code.
- ``elastic_transform`` is given as fractions of the image side, as the scripts write it
  (``IMSIZE * 0.05``); the side of the images being corrupted multiplies them.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
"""The 15 benchmark corruptions, in the order of the papers' tables."""

EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
"""The 4 held-out ("validation") corruptions released next to the 15."""


def _zoom_steps(stop: float) -> tuple[float, ...]:
    """Zoom factors 1, 1.01, ... up to ``stop``, bit-identical to the scripts' ``np.arange(1, stop, 0.01)``.

    The exact float values matter. The steps accumulate rounding, so ``np.arange`` also
    yields ``stop`` itself for 1.06 and 1.11 (severities 1 and 2 have 7 and 12 factors, up
    to 1.06 and 1.11); and the originals' crop size ``ceil(n / zoom)`` and output size
    ``round(crop * zoom)`` flip on the last bit (``26 * 1.25`` vs ``26 * 1.2500000000000002``).
    """
    return tuple(np.arange(1, stop, 0.01).tolist())


_ZOOM = tuple(_zoom_steps(stop) for stop in (1.06, 1.11, 1.16, 1.21, 1.26))

_CIFAR10_C = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    "zoom_blur": _ZOOM,
    "snow": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
    "frost": ((1, 0.2, 0.2), (1, 0.3, 0.2), (0.9, 0.4, 0.2), (0.85, 0.4, 0.2), (0.75, 0.45, 0.2)),
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "elastic_transform": ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    "jpeg_compression": (80, 65, 58, 50, 40),
    "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1),
    "spatter": (
        (0.62, 0.1, 0.7, 0.7, 0.5, 0),
        (0.65, 0.1, 0.8, 0.7, 0.5, 0),
        (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1),
        (0.65, 0.1, 0.5, 0.68, 0.6, 1),
    ),
    "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
}

_TINYIMAGENET_C = {
    "gaussian_noise": (0.04, 0.08, 0.12, 0.15, 0.18),
    "shot_noise": (250, 100, 50, 30, 15),
    "impulse_noise": (0.01, 0.02, 0.05, 0.08, 0.14),
    "defocus_blur": ((0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)),
    "glass_blur": ((0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)),
    "motion_blur": ((10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)),
    "zoom_blur": _ZOOM,
    "snow": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.8),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.8),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6),
    ),
    "frost": ((1, 0.3, 0.3), (0.9, 0.4, 0.3), (0.8, 0.45, 0.3), (0.75, 0.5, 0.3), (0.7, 0.55, 0.3)),
    "fog": ((0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "elastic_transform": ((0, 0, 0.08), (0.05, 0.3, 0.06), (0.1, 0.08, 0.06), (0.1, 0.03, 0.03), (0.16, 0.03, 0.02)),
    "pixelate": (0.9, 0.8, 0.7, 0.6, 0.5),
    "jpeg_compression": (65, 58, 50, 40, 25),
    "speckle_noise": (0.15, 0.2, 0.25, 0.3, 0.35),
    "gaussian_blur": (0.5, 0.75, 1, 1.25, 1.5),
    "spatter": (
        (0.62, 0.1, 0.7, 0.7, 0.6, 0),
        (0.65, 0.1, 0.8, 0.7, 0.6, 0),
        (0.65, 0.3, 1, 0.69, 0.6, 0),
        (0.65, 0.1, 0.7, 0.68, 0.6, 1),
        (0.65, 0.1, 0.5, 0.67, 0.6, 1),
    ),
    "saturate": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (30, 0.2)),
}

PRESETS = MappingProxyType(
    {
        "cifar10-c": MappingProxyType(_CIFAR10_C),
        "tinyimagenet-c": MappingProxyType(_TINYIMAGENET_C),
    }
)
"""Preset name -> corruption name -> five parameter sets (severity 1..5), read-only."""


def corruption_names(kind: str = "benchmark") -> tuple[str, ...]:
    """Names of the corruptions of one kind.

    Args:
        kind (str): ``"benchmark"`` (the 15 of :data:`CORRUPTIONS`), ``"extra"`` (the 4 of
            :data:`EXTRA_CORRUPTIONS`) or ``"all"`` (the 19, benchmark first).
            Default: ``"benchmark"``.

    Example::

        >>> corruption_names("extra")
        ('speckle_noise', 'gaussian_blur', 'spatter', 'saturate')
        >>> len(corruption_names("all"))
        19
    """
    kinds = {"benchmark": CORRUPTIONS, "extra": EXTRA_CORRUPTIONS, "all": CORRUPTIONS + EXTRA_CORRUPTIONS}
    if kind not in kinds:
        raise ValueError(f"kind must be one of {sorted(kinds)}, got {kind!r}")
    return kinds[kind]
