"""The science: pure tensor functions and the three objects built on them."""

from .functional import DEFAULT_EPS, class_means, selectivity_index
from .meter import SelectivityMeter, SelectivityResult, dead_unit_summary
from .probe import LayerSelectionError, Probe, default_layers, resolve_layers, unit_activations
from .monoloss import MonoLossRegularizer
from .monoscore import MonoScoreSums, monoscore
from .regularizer import SelectivityRegularizer
from .schedule import EpochWindow, LinearWarmup, PerEpochAlpha, constant

__all__ = [
    "DEFAULT_EPS",
    "EpochWindow",
    "LayerSelectionError",
    "LinearWarmup",
    "MonoLossRegularizer",
    "MonoScoreSums",
    "PerEpochAlpha",
    "Probe",
    "SelectivityMeter",
    "SelectivityRegularizer",
    "SelectivityResult",
    "class_means",
    "constant",
    "dead_unit_summary",
    "default_layers",
    "monoscore",
    "resolve_layers",
    "selectivity_index",
    "unit_activations",
]
