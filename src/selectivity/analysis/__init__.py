"""Pure functions on models and tensors: corruptions, attacks, dimensionality, similarity,
ablation, input-unit gradients and the statistics of the report. Nothing here reads or writes
a run directory: the commands that do (:mod:`selectivity.commands`) call these."""

from .ablation import DEFAULT_FRACTIONS, AblationCurve, ablate_units, ablated_accuracy, ablation_curves
from .attacks import DEFAULT_EPSILONS, adversarial_accuracy, adversarial_examples, fgsm, pgd
from .corruption_data import load_cifar10c, load_tinyimagenet_c
from .corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS, PRESETS, corrupt, corruption_names
from .dimensionality import (
    collect_activations,
    compare_dimensionality,
    covariance_spectrum,
    layer_dimensionality,
    n_components_for_variance,
    participation_ratio,
)
from .gradients import GradientVariability, gradient_variability, input_unit_gradients, variability_from_gradients
from .similarity import cca, layer_similarity, linear_cka, mean_cca, pwcca, svcca

__all__ = [
    "CORRUPTIONS",
    "DEFAULT_EPSILONS",
    "DEFAULT_FRACTIONS",
    "EXTRA_CORRUPTIONS",
    "PRESETS",
    "AblationCurve",
    "GradientVariability",
    "ablate_units",
    "ablated_accuracy",
    "ablation_curves",
    "adversarial_accuracy",
    "adversarial_examples",
    "cca",
    "collect_activations",
    "compare_dimensionality",
    "corrupt",
    "corruption_names",
    "covariance_spectrum",
    "fgsm",
    "gradient_variability",
    "input_unit_gradients",
    "layer_dimensionality",
    "layer_similarity",
    "linear_cka",
    "load_cifar10c",
    "load_tinyimagenet_c",
    "mean_cca",
    "svcca",
    "n_components_for_variance",
    "participation_ratio",
    "pgd",
    "pwcca",
    "variability_from_gradients",
]
