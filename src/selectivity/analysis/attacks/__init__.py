"""Adversarial attacks in [0, 1] pixel space and the checks for gradient masking.

Modules, one family each: :mod:`.api` (FGSM, PGD, and :func:`adversarial_accuracy` /
:func:`robust_images`, which run any attack by name), :mod:`.apgd_attack` (APGD-CE and APGD-T,
Croce & Hein 2020), :mod:`.square_attack` (the black-box Square Attack), :mod:`.masking` (the
gradient-masking checks) and :mod:`.base` (what every attack shares: checks, projection,
random starts).
"""

from .api import (ATTACKS, DEFAULT_EPSILONS, NORMS, adversarial_accuracy, adversarial_examples, fgsm, pgd,
                  robust_images)
from .apgd_attack import apgd, apgd_ce, apgd_checkpoints, apgd_t, targeted_dlr_loss
from .masking import CHECKS, MaskingFlag, dead_gradients, masking_flags
from .square_attack import margin_loss, square, square_fraction

__all__ = [
    "ATTACKS",
    "CHECKS",
    "DEFAULT_EPSILONS",
    "NORMS",
    "MaskingFlag",
    "adversarial_accuracy",
    "adversarial_examples",
    "apgd",
    "apgd_ce",
    "apgd_checkpoints",
    "apgd_t",
    "dead_gradients",
    "fgsm",
    "margin_loss",
    "masking_flags",
    "pgd",
    "robust_images",
    "square",
    "square_fraction",
    "targeted_dlr_loss",
]
