"""Image corruptions of CIFAR-10-C and Tiny-ImageNet-C (Hendrycks & Dietterich, 2019), in torch.

``corrupt(x, name, severity, preset)`` applies one of the 15 benchmark corruptions
(:data:`CORRUPTIONS`) or the 4 extras (:data:`EXTRA_CORRUPTIONS`) to a float batch in
[0, 1] with the constants of either benchmark (:data:`PRESETS`), vectorised over the batch
and on ``x``'s device. The modules hold one family each: ``noise``, ``blur``, ``weather``,
``digital``, ``spatter``; ``ops`` holds the shared filters and resamplers, each
reproducing the convention of the library call it replaces.

How this relates to the original generator scripts:

- Same formulas and constants, same border rules and resampling grids: the tests check
  them against scipy, PIL and slow loops written from the originals; the deterministic
  corruptions agree with the original scripts (run with OpenCV and scikit-image) to
  1e-4 of an 8-bit level, pixelate to 1 level (PIL rounds its 8-bit intermediate).
- Random numbers come from torch, so outputs match the originals in distribution, not
  pixel for pixel; evaluate on the released files
  (:mod:`selectivity.analysis.corruptions.data`) for numbers comparable with published ones.
- ``motion_blur`` and ``snow`` reimplement ImageMagick's MotionBlurImage kernel (no
  ImageMagick needed); ``glass_blur``'s sequential pixel loop is reproduced exactly in
  parallel (:func:`blur.local_shuffle`); ``frost`` reads the frost photos of the optional
  ``imagecorruptions`` package.
- Intermediate 8-bit steps written in the scripts are kept (glass blur's uint8 image,
  snow's 8-bit layer, spatter's OpenCV steps); the final output stays float (the
  released files truncated it to uint8), and ImageMagick's own 8-bit PNG output is not
  imitated.
"""

from .api import corrupt
from .presets import CORRUPTIONS, EXTRA_CORRUPTIONS, PRESETS, corruption_names

__all__ = ["CORRUPTIONS", "EXTRA_CORRUPTIONS", "PRESETS", "corrupt", "corruption_names"]
