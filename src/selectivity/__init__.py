"""selectivity: measure, regularize and test the class selectivity of deep network units.

alpha < 0 discourages class selectivity, alpha > 0 encourages it, alpha = 0 is plain training.
"""

from .core import (
    DEFAULT_EPS,
    EpochWindow,
    LayerSelectionError,
    LinearWarmup,
    PerEpochAlpha,
    Probe,
    SelectivityMeter,
    SelectivityRegularizer,
    SelectivityResult,
    class_means,
    default_layers,
    resolve_layers,
    selectivity_index,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_EPS",
    "EpochWindow",
    "LayerSelectionError",
    "LinearWarmup",
    "PerEpochAlpha",
    "Probe",
    "SelectivityMeter",
    "SelectivityRegularizer",
    "SelectivityResult",
    "class_means",
    "default_layers",
    "resolve_layers",
    "selectivity_index",
]
