"""What the knob does to a network's representations, layer by layer.

:mod:`.dimensionality` (PCs for 95% variance, participation ratio), :mod:`.similarity` (linear
CKA, CCA, SVCCA, PWCCA), :mod:`.ablation` (accuracy as units are silenced, by SI or at random)
and :mod:`.gradients` (input-unit gradients and their variability).
"""

from .ablation import DEFAULT_FRACTIONS, AblationCurve, ablate_units, ablated_accuracy, ablation_curves
from .dimensionality import (collect_activations, compare_dimensionality, covariance_spectrum, layer_dimensionality,
                             n_components_for_variance, participation_ratio)
from .gradients import GradientVariability, gradient_variability, input_unit_gradients, variability_from_gradients
from .similarity import cca, layer_similarity, linear_cka, mean_cca, pwcca, svcca

__all__ = [
    "DEFAULT_FRACTIONS",
    "AblationCurve",
    "GradientVariability",
    "ablate_units",
    "ablated_accuracy",
    "ablation_curves",
    "cca",
    "collect_activations",
    "compare_dimensionality",
    "covariance_spectrum",
    "gradient_variability",
    "input_unit_gradients",
    "layer_dimensionality",
    "layer_similarity",
    "linear_cka",
    "mean_cca",
    "n_components_for_variance",
    "participation_ratio",
    "pwcca",
    "svcca",
    "variability_from_gradients",
]
