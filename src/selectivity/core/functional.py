"""The selectivity math, as pure tensor functions: the one place each formula lives.

For a unit u and the classes c present in the data:

    m_c(u)     = mean activation of u over the samples of class c
    mu_max(u)  = max_c m_c(u)
    mu_-max(u) = mean of m_c(u) over the other present classes
    SI(u)      = (mu_max - mu_-max) / (mu_max + mu_-max + eps)

SI lies in [0, 1] for non-negative activations: 0 for a unit that answers every class alike
(and for a dead unit), close to 1 for a unit that answers one class only.

Classes with no sample take no part: they are excluded from mu_max and from mu_-max, and the
mean over "the other classes" divides by (number of present classes - 1). With fewer than two
present classes there is nothing to contrast and SI is 0.

The meter, the regularizer and the reports all call the private pair
``_class_sums`` (update: sums and counts) and ``_selectivity_from_sums`` (compute).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

__all__ = ["DEFAULT_EPS", "class_means", "selectivity_index"]

#: Guard against 0/0 for dead units. Public re-implementations use 1e-6 and 1e-7; the papers
#: leave it open. 1e-7 is the default everywhere in this package.
DEFAULT_EPS = 1e-7

#: Said once when SI is computed from fewer than two classes: it is then 0, not a finding.
NO_CONTRAST_WARNING = (
    "{where} holds {n} class(es): class selectivity needs at least two to contrast, so SI is 0 for every unit"
)


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other float (float32, bfloat16, float16) sums in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_inputs(acts: Tensor, labels: Tensor, num_classes: int) -> bool:
    """Clear errors for the mistakes that would otherwise give a silently wrong number.

    Returns whether the labels hold at least two classes (no extra host sync).
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if acts.ndim != 2:
        raise ValueError(f"acts must have shape (N, U), got shape {tuple(acts.shape)}")
    if not acts.is_floating_point():
        raise ValueError(f"acts must be a floating-point tensor, got dtype {acts.dtype}")
    if labels.ndim != 1 or labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(
            f"labels must be a 1-D integer tensor, got dtype {labels.dtype} and shape {tuple(labels.shape)}"
        )
    if labels.shape[0] != acts.shape[0]:
        raise ValueError(
            f"acts and labels have different batch sizes: {acts.shape[0]} activations, {labels.shape[0]} labels"
        )
    if labels.numel() == 0:
        return False
    # One host sync for all checks.
    lo, hi, finite = torch.stack(
        [labels.min().double(), labels.max().double(), torch.isfinite(acts).all().double()]
    ).tolist()
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got values from {int(lo)} to {int(hi)}")
    if not finite:
        raise ValueError("acts contain NaN or infinite values: selectivity is undefined for them")
    return lo != hi


def _class_sums(acts: Tensor, labels: Tensor, num_classes: int, dtype: torch.dtype | None = None):
    """Per-class sums of activations and per-class sample counts (no checks; callers check).

    acts: (N, U); labels: (N,) int in [0, num_classes).
    Returns (sums (C, U), counts (C,)), both in ``dtype`` (default: float32, or float64 for
    float64 input). Differentiable with respect to ``acts``.
    """
    dtype = dtype or _accumulation_dtype(acts.dtype)
    sums = torch.zeros(num_classes, acts.shape[1], dtype=dtype, device=acts.device)
    sums = sums.index_add(0, labels, acts.to(dtype))
    counts = torch.bincount(labels, minlength=num_classes).to(dtype)
    return sums, counts


def _selectivity_from_means(means: Tensor, present: Tensor, eps: float) -> Tensor:
    """SI per unit from class means (C, U) and a mask of present classes (C,). No host sync."""
    num_present = present.sum().to(means.dtype)
    absent = ~present.unsqueeze(1)
    mu_max = means.masked_fill(absent, float("-inf")).amax(dim=0)
    total = means.masked_fill(absent, 0.0).sum(dim=0)
    mu_rest = (total - mu_max) / (num_present - 1).clamp(min=1)
    si = (mu_max - mu_rest) / (mu_max + mu_rest + eps)
    # With fewer than two classes there is no contrast (and mu_max would be -inf).
    return torch.where(num_present >= 2, si, torch.zeros_like(si))


def _selectivity_from_sums(sums: Tensor, counts: Tensor, eps: float = DEFAULT_EPS) -> Tensor:
    """SI per unit (U,) from per-class sums (C, U) and counts (C,): the compute step."""
    present = counts > 0
    means = sums / counts.clamp(min=1).unsqueeze(1)
    return _selectivity_from_means(means, present, eps)


def _means_from_sums(sums: Tensor, counts: Tensor) -> Tensor:
    """Class means (C, U) from sums and counts, with NaN rows for absent classes."""
    means = sums / counts.clamp(min=1).unsqueeze(1)
    return torch.where((counts > 0).unsqueeze(1), means, torch.full_like(means, float("nan")))


def class_means(acts: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    r"""Class-conditional mean activation of every unit.

    .. math:: m_c(u) = \frac{1}{|\{i: y_i = c\}|} \sum_{i: y_i = c} a_i(u)

    Args:
        acts (Tensor): (N, U) one number per unit per sample (a conv channel's spatial mean).
            float32, bfloat16 or float16 inputs are accumulated in float32; float64 in float64.
        labels (Tensor): (N,) integer class labels in [0, num_classes).
        num_classes (int): C, the number of classes.

    Returns:
        Tensor: (C, U) means. A class with no sample has no mean: its row is NaN, and
        :func:`selectivity_index` excludes NaN rows. Differentiable with respect to ``acts``.

    Example::

        >>> acts = torch.tensor([[1.0, 2.0], [3.0, 2.0], [0.0, 2.0]])
        >>> class_means(acts, torch.tensor([0, 0, 1]), num_classes=3)
        tensor([[2., 2.],
                [0., 2.],
                [nan, nan]])
    """
    _check_inputs(acts, labels, num_classes)
    return _means_from_sums(*_class_sums(acts, labels, num_classes))


def selectivity_index(means: Tensor, eps: float = DEFAULT_EPS) -> Tensor:
    r"""Class selectivity index of every unit, from its class means.

    .. math:: SI = \frac{\mu_{max} - \mu_{-max}}{\mu_{max} + \mu_{-max} + \epsilon}

    mu_max is the largest class mean, mu_-max the mean of the other present classes' means.

    Args:
        means (Tensor): (C, U) class means, as returned by :func:`class_means`. Rows that are
            all NaN are absent classes and are excluded. With fewer than two present classes
            SI is 0.
        eps (float): guard against division by zero; a dead unit gets SI = 0.
            Default: 1e-7.

    Returns:
        Tensor: (U,) SI per unit, in [0, 1] when the means are non-negative. Differentiable.

    Example::

        >>> means = torch.tensor([[4.0, 1.0, 0.0], [0.0, 1.0, 0.0], [float("nan")] * 3])
        >>> selectivity_index(means)
        tensor([1., 0., 0.])
    """
    if means.ndim != 2:
        raise ValueError(f"means must have shape (C, U), got shape {tuple(means.shape)}")
    if not means.is_floating_point():
        raise ValueError(f"means must be a floating-point tensor, got dtype {means.dtype}")
    nan = torch.isnan(means)
    absent = nan.all(dim=1)
    partly_nan, infinite, present = torch.stack(
        [(nan.any(dim=1) & ~absent).any(), torch.isinf(means).any(), (~absent).sum()]
    ).tolist()  # one host sync for all checks
    if partly_nan:
        raise ValueError("means has rows that are partly NaN: a class is either absent (all NaN) or present")
    if infinite:
        raise ValueError("means contain infinite values: selectivity is undefined for them")
    if present < 2:
        warnings.warn(NO_CONTRAST_WARNING.format(where="means", n=int(present)), RuntimeWarning, stacklevel=2)
    means = means.to(_accumulation_dtype(means.dtype))
    return _selectivity_from_means(means, ~absent, eps)
