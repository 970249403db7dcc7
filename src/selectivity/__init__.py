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


def __getattr__(name: str):
    # The measures live in the analysis layer; import it on first use, not with the package.
    if name in ("unit_measures", "measure_agreement"):
        from .analysis import measures

        return getattr(measures, name)
    raise AttributeError(f"module 'selectivity' has no attribute {name!r}")

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
    "measure_agreement",
    "resolve_layers",
    "selectivity_index",
    "unit_measures",
]
