"""Pure functions on models and tensors, grouped by family. Nothing here reads or writes a run
directory: the commands that do (:mod:`selectivity.commands`) call these.

- :mod:`.corruptions`: the 15 CIFAR-10-C / Tiny-ImageNet-C corruptions and the released files;
- :mod:`.attacks`: FGSM, PGD, APGD, Square and the gradient-masking checks;
- :mod:`.representations`: dimensionality, similarity, ablation, input-unit gradients;
- :mod:`.measures`: the selectivity measures of a unit beyond SI;
- :mod:`.population`: a layer as a whole: linear decodability and the unit axes against random directions;
- :mod:`.stats`: the statistics of the report's claims;
- :mod:`.evaluation`: accuracy and SI of a model over a loader; :mod:`.eval_mode`.
"""

from .attacks import DEFAULT_EPSILONS, adversarial_accuracy, adversarial_examples, fgsm, pgd
from .corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS, PRESETS, corrupt, corruption_names
from .corruptions.data import load_cifar10c, load_tinyimagenet_c
from .population import (AxisGap, LinearProbeResult, axis_gap, haar_bases, linear_probe, linear_probe_accuracy,
                         one_class_preference)
from .representations import (
    DEFAULT_FRACTIONS,
    AblationCurve,
    GradientVariability,
    ablate_units,
    ablated_accuracy,
    ablation_curves,
    cca,
    collect_activations,
    compare_dimensionality,
    covariance_spectrum,
    gradient_variability,
    input_unit_gradients,
    layer_dimensionality,
    layer_similarity,
    linear_cka,
    mean_cca,
    n_components_for_variance,
    participation_ratio,
    pwcca,
    svcca,
    variability_from_gradients,
)

__all__ = [
    "CORRUPTIONS",
    "DEFAULT_EPSILONS",
    "DEFAULT_FRACTIONS",
    "EXTRA_CORRUPTIONS",
    "PRESETS",
    "AblationCurve",
    "AxisGap",
    "GradientVariability",
    "LinearProbeResult",
    "ablate_units",
    "ablated_accuracy",
    "ablation_curves",
    "adversarial_accuracy",
    "adversarial_examples",
    "axis_gap",
    "cca",
    "collect_activations",
    "compare_dimensionality",
    "corrupt",
    "corruption_names",
    "covariance_spectrum",
    "fgsm",
    "gradient_variability",
    "haar_bases",
    "input_unit_gradients",
    "layer_dimensionality",
    "layer_similarity",
    "linear_cka",
    "linear_probe",
    "linear_probe_accuracy",
    "load_cifar10c",
    "load_tinyimagenet_c",
    "mean_cca",
    "svcca",
    "n_components_for_variance",
    "one_class_preference",
    "participation_ratio",
    "pgd",
    "pwcca",
    "variability_from_gradients",
]
