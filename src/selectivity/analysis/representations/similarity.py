r"""Representational similarity: unbiased linear CKA, CCA and projection-weighted CCA.

Inputs are activation matrices X (N, p) and Y (N, q) of the same N samples (rows) in two
layers or two networks; units need not match. Both measures are invariant to orthogonal
transforms and isotropic scaling of either view; CCA is invariant to any invertible linear
transform. Everything is computed in float64 on centred data.

- Linear CKA (Kornblith et al. 2019) with the unbiased HSIC estimator of Song et al. 2012,
  as Nguyen, Raghu & Kornblith 2021 use it: the plain (biased) estimator gives independent
  random matrices a CKA well above 0 when N is not much larger than p and q; the unbiased
  one is centred on 0.
- PWCCA (Morcos, Raghu & Bengio 2018): the canonical correlations of the two views (every
  direction of non-zero variance, no SVD reduction, as the authors' ``compute_pwcca`` in
  google/svcca), averaged with weights for how much of the weighting view's neurons' activity
  each canonical direction accounts for. Leavitt & Morcos compare regularized networks with
  the baseline by PWCCA, per layer. Reducing each view by SVD first (to 99% of its variance)
  is SVCCA's step (Raghu et al. 2017): :func:`svcca`, or ``variance_threshold=0.99`` here.

Where this follows the paper's formula rather than google/svcca's arithmetic (``compute_pwcca``
as of 2018): the reference projects the neurons on ``u^T (X - mean) + mean``, directions of
the whitened space without the whitening ``Sigma_xx^{-1/2}`` and with the means added back,
and sums |.| over uncentred activations; its ``else`` branch (weighting by the second view)
reads ``acts1``. Here the weights use the canonical variates h_i = (X - mean) Sigma_xx^{-1/2} u_i
and the centred neurons (alpha_i = sum_j |<h_i, x_j>|, the paper's Eq.), and the weighting
view's canonical directions with no partner in the other view count with correlation 0, as
the reference's zero coefficients do.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from ...core.probe import LayerSpec, resolve_layers
from .dimensionality import _n_components, collect_activations

__all__ = ["cca", "layer_similarity", "linear_cka", "mean_cca", "pwcca", "svcca"]


def _pair(x: Tensor, y: Tensor, min_samples: int) -> tuple[Tensor, Tensor]:
    """Check two (N, *) views of the same samples; return them centred, in float64."""
    for name, a in (("x", x), ("y", y)):
        if not isinstance(a, Tensor) or a.ndim != 2:
            shape = tuple(a.shape) if isinstance(a, Tensor) else type(a).__name__
            raise ValueError(f"{name} must be a (N, units) tensor, got {shape}")
        if not bool(torch.isfinite(a).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must hold the same samples (rows): got {x.shape[0]} and {y.shape[0]} rows")
    if x.shape[0] < min_samples:
        raise ValueError(f"need at least {min_samples} samples, got {x.shape[0]}")
    x, y = x.double(), y.to(x.device).double()
    return x - x.mean(dim=0, keepdim=True), y - y.mean(dim=0, keepdim=True)


# -- CKA ------------------------------------------------------------------------------------
def _hsic_terms(a: Tensor, b: Tensor, debiased: bool) -> Tensor:
    """n (n - 3) HSIC_u (debiased) or tr(K L) (biased) of centred features a, b (no Gram matrix).

    With K = a a^T, L = b b^T and tilde = zero diagonal, Song et al. 2012:
    HSIC_u = [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n (n - 3)).
    For centred features K 1 = 0, so tr(K~L~) = ||a'b||_F^2 - sum_i K_ii L_ii,
    1'K~1 = -tr K and 1'K~L~1 = sum_i K_ii L_ii.
    """
    cross = (a.T @ b).square().sum()
    if not debiased:
        return cross
    n = a.shape[0]
    ka, kb = a.square().sum(dim=1), b.square().sum(dim=1)  # diagonals of K and L
    return cross - n / (n - 2) * (ka @ kb) + ka.sum() * kb.sum() / ((n - 1) * (n - 2))


def linear_cka(x: Tensor, y: Tensor, debiased: bool = True) -> float:
    r"""Linear centred kernel alignment of two representations of the same samples.

    .. math::
        \mathrm{CKA}(X, Y) = \frac{\mathrm{HSIC}(K, L)}{\sqrt{\mathrm{HSIC}(K, K)\,\mathrm{HSIC}(L, L)}},
        \qquad K = X X^\top,\; L = Y Y^\top

    with the unbiased estimator (Song et al. 2012), for centred X, Y and n samples,

    .. math::
        \mathrm{HSIC}_u(K, L) \propto \|X^\top Y\|_F^2 - \frac{n}{n-2} \sum_i K_{ii} L_{ii}
        + \frac{\mathrm{tr}K\,\mathrm{tr}L}{(n-1)(n-2)}

    (the factor 1 / (n (n - 3)) cancels), or the biased :math:`\|X^\top Y\|_F^2` when
    ``debiased=False`` (Kornblith et al. 2019). Cost O(n p q), no n x n matrix.

    Args:
        x (Tensor): (N, p) activations.
        y (Tensor): (N, q) activations of the same samples.
        debiased (bool): the unbiased estimator (near 0 for independent data; may be
            slightly negative). Default: True.

    Returns:
        float: CKA, 1 for representations equal up to rotation and scale.

    Example::

        >>> x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
        >>> round(linear_cka(x, 3 * x @ torch.linalg.qr(torch.randn(8, 8)).Q), 6)
        1.0
    """
    a, b = _pair(x, y, min_samples=4)
    xy = _hsic_terms(a, b, debiased)
    xx = _hsic_terms(a, a, debiased)
    yy = _hsic_terms(b, b, debiased)
    if xx <= 0 or yy <= 0:
        raise ValueError("CKA is undefined: one representation has no (estimated) variance")
    return float(xy / torch.sqrt(xx * yy))


# -- CCA ------------------------------------------------------------------------------------
def _basis(a: Tensor, threshold: float | None) -> Tensor:
    """Orthonormal basis (N, k) of the column space of centred ``a`` (its directions above
    numerical rank), or of its top principal components holding ``threshold`` of the variance."""
    u, s, _ = torch.linalg.svd(a, full_matrices=False)
    rank = int((s > s.max() * max(a.shape) * torch.finfo(s.dtype).eps).sum())
    if rank == 0:
        raise ValueError("a view has no variance (all rows equal): CCA is undefined")
    k = rank if threshold is None else _n_components(s[:rank].square(), threshold)
    return u[:, :k]


def _cca(x: Tensor, y: Tensor, threshold: float | None):
    """Canonical correlations (m,), the full orthonormal canonical bases of x and y (N, k_x),
    (N, k_y), and the centred views. Bases beyond the m correlated pairs span the rest of each
    view (correlation 0 with the other)."""
    if threshold is not None and not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"variance_threshold is a share of variance in (0, 1] or None, got {threshold!r}")
    a, b = _pair(x, y, min_samples=2)
    qa, qb = _basis(a, threshold), _basis(b, threshold)
    n, ka, kb = a.shape[0], qa.shape[1], qb.shape[1]
    if ka + kb > n - 1:  # two subspaces of the (N - 1)-dim centred sample space must intersect
        warnings.warn(
            f"CCA of {ka} and {kb} dimensions on only {n} samples: with {ka} + {kb} > N - 1 some canonical "
            "correlations are 1 whatever the data; use many more samples than dimensions",
            RuntimeWarning,
            stacklevel=3,
        )
    # Columns of qa, qb span the data; the SVD of their cross-product is the CCA (principal angles).
    left, rho, right_t = torch.linalg.svd(qa.T @ qb, full_matrices=True)
    rho = rho.clamp(0.0, 1.0)
    return rho, qa @ left, qb @ right_t.T, a, b


def cca(x: Tensor, y: Tensor, variance_threshold: float | None = None) -> Tensor:
    r"""Canonical correlations between two representations.

    With orthonormal bases :math:`Q_X, Q_Y` of the centred views (every direction of non-zero
    variance) the canonical correlations are the singular values

    .. math:: \rho_1 \ge \dots \ge \rho_m = \sigma(Q_X^\top Q_Y), \qquad m = \min(k_X, k_Y),

    i.e. the cosines of the principal angles between the two column spaces.

    Args:
        x (Tensor): (N, p) activations.
        y (Tensor): (N, q) activations of the same samples.
        variance_threshold (float | None): None (default) keeps every direction; a share in
            (0, 1] first reduces each view to its top principal components holding that share
            of its variance (SVCCA's step, see :func:`svcca`).

    Returns:
        Tensor: (m,) float64 correlations in [0, 1], largest first. Warns when
        k_X + k_Y > N - 1 (some correlations are then 1 by construction).

    Example::

        >>> x = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
        >>> y = x @ torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 3.0]])
        >>> cca(x, y).round(decimals=6)
        tensor([1., 1., 1.], dtype=torch.float64)
        >>> cca(x, y, variance_threshold=0.99).round(decimals=6)  # y's third PC holds under 1%
        tensor([1., 1.], dtype=torch.float64)
    """
    rho, *_ = _cca(x, y, variance_threshold)
    return rho


def mean_cca(x: Tensor, y: Tensor, variance_threshold: float | None = None) -> float:
    r"""Mean canonical correlation, :math:`\bar\rho = \frac{1}{m} \sum_i \rho_i` (no reduction by default)."""
    return float(cca(x, y, variance_threshold).mean())


def svcca(x: Tensor, y: Tensor, variance_threshold: float = 0.99) -> float:
    r"""SVCCA (Raghu et al. 2017): reduce each view by SVD to the top principal components that
    hold ``variance_threshold`` of its variance, then the mean canonical correlation."""
    if variance_threshold is None:
        raise ValueError("svcca needs a variance_threshold in (0, 1]; for CCA without reduction use mean_cca")
    return mean_cca(x, y, variance_threshold)


def pwcca(x: Tensor, y: Tensor, variance_threshold: float | None = None, weight_by: str = "smaller") -> float:
    r"""Projection-weighted CCA (Morcos, Raghu & Bengio 2018), as google/svcca's ``compute_pwcca``.

    .. math::
        \mathrm{PWCCA} = \sum_i \alpha_i \rho_i, \qquad
        \alpha_i = \frac{\tilde\alpha_i}{\sum_j \tilde\alpha_j}, \qquad
        \tilde\alpha_i = \sum_{j=1}^{p} |\langle h_i, x_j \rangle|

    with :math:`\rho_i` the canonical correlations of the full views (no SVD reduction),
    :math:`h_i` the unit-norm canonical variates (N,) of the weighting view (one per direction
    of its column space; those beyond the other view's rank have :math:`\rho_i = 0`) and
    :math:`x_j` its centred neurons (N,). Directions that account for much of the neurons'
    activity count more than in :func:`mean_cca`. See the module notes for where google/svcca's
    code differs from this formula.

    Args:
        x (Tensor): (N, p) activations.
        y (Tensor): (N, q) activations of the same samples.
        variance_threshold (float | None): None (default, as the reference) uses every
            direction; a share in (0, 1] first reduces each view by SVD (an explicit option).
        weight_by (str): the view whose neurons give the weights: "x", "y", or "smaller",
            the view with fewer neurons (x on ties), as in the reference code. PWCCA is not
            symmetric. Default: "smaller".

    Returns:
        float: PWCCA in [0, 1]; 1 when one view is an invertible linear map of the other.

    Example::

        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(200, 4, generator=g)
        >>> round(pwcca(x, x @ torch.randn(4, 4, generator=g)), 6)
        1.0
    """
    if weight_by not in ("x", "y", "smaller"):
        raise ValueError(f"weight_by must be 'x', 'y' or 'smaller', got {weight_by!r}")
    rho, hx, hy, a, b = _cca(x, y, variance_threshold)
    use_x = weight_by == "x" or (weight_by == "smaller" and a.shape[1] <= b.shape[1])
    h, neurons = (hx, a) if use_x else (hy, b)
    rho = torch.cat([rho, rho.new_zeros(h.shape[1] - rho.shape[0])])  # uncorrelated directions: rho = 0
    weights = (h.T @ neurons).abs().sum(dim=1)
    return float((weights * rho).sum() / weights.sum())


# -- networks -------------------------------------------------------------------------------
MEASURES = {"pwcca": pwcca, "mean_cca": mean_cca, "svcca": svcca, "cka": linear_cka}


def layer_similarity(
    model_a: nn.Module,
    model_b: nn.Module,
    x: Tensor,
    layers: LayerSpec = None,
    layers_b: LayerSpec = None,
    measure: str = "pwcca",
    batch_size: int = 256,
    **kwargs,
) -> dict[str, float]:
    """Similarity per layer between two networks on the same inputs (e.g. regularized vs baseline).

    Args:
        model_a, model_b (nn.Module): the networks (run in eval mode, modes restored).
        x (Tensor): (N, ...) inputs; N should be well above the layers' widths for CCA.
        layers: layers of model_a; None for its default selectivity layers. Default: None.
        layers_b: the matching layers of model_b, as many; None for the same names as
            model_a's. Default: None.
        measure (str): "pwcca", "mean_cca", "svcca" or "cka". Default: "pwcca".
        batch_size (int): forward batch size. Default: 256.
        **kwargs: passed to the measure (``variance_threshold``, ``weight_by``, ``debiased``).
            PWCCA weights by model_a's neurons when ``weight_by="x"``.

    Returns:
        dict: model_a's layer name -> similarity, in layer order.
    """
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}: use one of {sorted(MEASURES)}")
    names_a = resolve_layers(model_a, layers)
    names_b = resolve_layers(model_b, names_a if layers_b is None else layers_b)
    if len(names_a) != len(names_b):
        raise ValueError(f"{len(names_a)} layers of model_a but {len(names_b)} of model_b: pair them one to one")
    acts_a = collect_activations(model_a, x, names_a, batch_size)
    acts_b = collect_activations(model_b, x, names_b, batch_size)
    fn = MEASURES[measure]
    return {na: fn(acts_a[na], acts_b[nb], **kwargs) for na, nb in zip(names_a, names_b, strict=True)}
