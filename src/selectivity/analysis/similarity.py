r"""Representational similarity: unbiased linear CKA, CCA and projection-weighted CCA.

Inputs are activation matrices X (N, p) and Y (N, q) of the same N samples (rows) in two
layers or two networks; units need not match. Both measures are invariant to orthogonal
transforms and isotropic scaling of either view; CCA is invariant to any invertible linear
transform. Everything is computed in float64 on centred data.

- Linear CKA (Kornblith et al. 2019) with the unbiased HSIC estimator of Song et al. 2012,
  as Nguyen, Raghu & Kornblith 2021 use it: the plain (biased) estimator gives independent
  random matrices a CKA well above 0 when N is not much larger than p and q; the unbiased
  one is centred on 0.
- PWCCA (Morcos, Raghu & Bengio 2018): reduce each view by SVD to the components that explain
  99% of its variance, compute the canonical correlations, and average them weighted by how
  much of the original neurons' activity each canonical direction accounts for. Leavitt &
  Morcos compare regularized networks with the baseline by PWCCA, per layer.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from ..core.probe import LayerSpec, resolve_layers
from .dimensionality import _n_components, collect_activations

__all__ = ["cca", "layer_similarity", "linear_cka", "mean_cca", "pwcca"]


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
def _reduced_basis(a: Tensor, threshold: float) -> Tensor:
    """Orthonormal basis (N, k) of the top principal components of centred ``a`` that hold
    ``threshold`` of its variance (components above numerical rank only)."""
    u, s, _ = torch.linalg.svd(a, full_matrices=False)
    rank = int((s > s.max() * max(a.shape) * torch.finfo(s.dtype).eps).sum())
    if rank == 0:
        raise ValueError("a view has no variance (all rows equal): CCA is undefined")
    return u[:, : _n_components(s[:rank].square(), threshold)]


def _cca(x: Tensor, y: Tensor, threshold: float):
    """Canonical correlations (m,), canonical variates of x and y (N, m) and the centred views."""
    if not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"variance_threshold is a share of variance in (0, 1], got {threshold!r}")
    a, b = _pair(x, y, min_samples=2)
    qa, qb = _reduced_basis(a, threshold), _reduced_basis(b, threshold)
    n, ka, kb = a.shape[0], qa.shape[1], qb.shape[1]
    if ka + kb > n - 1:  # two subspaces of the (N - 1)-dim centred sample space must intersect
        warnings.warn(
            f"CCA of {ka} and {kb} dimensions on only {n} samples: with {ka} + {kb} > N - 1 some canonical "
            "correlations are 1 whatever the data; use many more samples than dimensions",
            RuntimeWarning,
            stacklevel=3,
        )
    # Columns of qa, qb span the reduced data; their cross-product's SVD is the CCA.
    left, rho, right_t = torch.linalg.svd(qa.T @ qb, full_matrices=False)
    rho = rho.clamp(0.0, 1.0)
    return rho, qa @ left, qb @ right_t.T, a, b


def cca(x: Tensor, y: Tensor, variance_threshold: float = 0.99) -> Tensor:
    r"""Canonical correlations between two representations, after SVD reduction of each.

    Each centred view is replaced by its top principal components that explain
    ``variance_threshold`` of its variance (SVCCA's step); with orthonormal bases
    :math:`Q_X, Q_Y` of the reduced views the canonical correlations are the singular values

    .. math:: \rho_1 \ge \dots \ge \rho_m = \sigma(Q_X^\top Q_Y), \qquad m = \min(k_X, k_Y),

    i.e. the cosines of the principal angles between the two column spaces.

    Args:
        x (Tensor): (N, p) activations.
        y (Tensor): (N, q) activations of the same samples.
        variance_threshold (float): share of variance kept per view, in (0, 1]; 1 keeps
            every component of non-zero variance. Default: 0.99.

    Returns:
        Tensor: (m,) float64 correlations in [0, 1], largest first. Warns when
        k_X + k_Y > N - 1 (some correlations are then 1 by construction).

    Note:
        The reduction makes CCA depend on each view's variance, not only its column space:
        CCA(X, X R) = 1 for an invertible R only while neither view drops a direction the
        other keeps (always with ``variance_threshold=1``).

    Example::

        >>> x = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
        >>> y = x @ torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 3.0]])
        >>> cca(x, y, variance_threshold=1.0).round(decimals=6)
        tensor([1., 1., 1.], dtype=torch.float64)
        >>> cca(x, y).round(decimals=6)  # y's third component holds under 1% of its variance
        tensor([1., 1.], dtype=torch.float64)
    """
    return _cca(x, y, variance_threshold)[0]


def mean_cca(x: Tensor, y: Tensor, variance_threshold: float = 0.99) -> float:
    r"""Mean canonical correlation, :math:`\bar\rho = \frac{1}{m} \sum_i \rho_i` (SVCCA's similarity)."""
    return float(cca(x, y, variance_threshold).mean())


def pwcca(x: Tensor, y: Tensor, variance_threshold: float = 0.99, weight_by: str = "smaller") -> float:
    r"""Projection-weighted CCA (Morcos, Raghu & Bengio 2018).

    .. math::
        \mathrm{PWCCA} = \sum_i \alpha_i \rho_i, \qquad
        \alpha_i = \frac{\tilde\alpha_i}{\sum_j \tilde\alpha_j}, \qquad
        \tilde\alpha_i = \sum_{j=1}^{p} |\langle h_i, x_j \rangle|

    with :math:`\rho_i` the canonical correlations (:func:`cca`), :math:`h_i` the unit-norm
    canonical variates (N,) of the weighting view and :math:`x_j` its centred neurons (N,).
    Canonical directions that account for much of the neurons' activity count more, so
    directions of little variance (noise) count less than in :func:`mean_cca`.

    Args:
        x (Tensor): (N, p) activations.
        y (Tensor): (N, q) activations of the same samples.
        variance_threshold (float): share of variance kept per view. Default: 0.99.
        weight_by (str): the view whose neurons give the weights: "x", "y", or "smaller",
            the view with fewer neurons (x on ties), as in the authors' reference code.
            PWCCA is not symmetric. Default: "smaller".

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
    weights = (h.T @ neurons).abs().sum(dim=1)
    return float((weights * rho).sum() / weights.sum())


# -- networks -------------------------------------------------------------------------------
MEASURES = {"pwcca": pwcca, "mean_cca": mean_cca, "cka": linear_cka}


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
        measure (str): "pwcca", "mean_cca" or "cka". Default: "pwcca".
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
