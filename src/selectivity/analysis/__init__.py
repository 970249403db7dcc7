"""Evaluations of trained networks: corruptions, and (to come) attacks and representations."""

from .corruption_data import load_cifar10c, load_tinyimagenet_c
from .corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS, PRESETS, corrupt, corruption_names

__all__ = [
    "CORRUPTIONS",
    "EXTRA_CORRUPTIONS",
    "PRESETS",
    "corrupt",
    "corruption_names",
    "load_cifar10c",
    "load_tinyimagenet_c",
]
