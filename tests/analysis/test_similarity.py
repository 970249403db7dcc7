"""Tests of selectivity.analysis.representations.similarity against independent NumPy/SciPy references.

- CKA: the unbiased HSIC of Song et al. 2012 written out on n x n Gram matrices, on
  uncentred data (the estimator is translation invariant), and the biased
  tr(KHLH) form.
- CCA: canonical correlations are the cosines of the principal angles between the column
  spaces of the centred (reduced) data (scipy.linalg.subspace_angles).
- PWCCA: a slow version that computes CCA by whitening the covariance matrices (not by QR
  or SVD of orthonormal bases) and the weights as in Morcos et al. 2018.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from torch import nn

from selectivity.analysis.representations import similarity
from selectivity.analysis.representations.similarity import cca, layer_similarity, linear_cka, mean_cca, pwcca, svcca

scipy_linalg = pytest.importorskip("scipy.linalg", reason="the CCA reference uses scipy.linalg.subspace_angles")


# -- references -----------------------------------------------------------------------------
def _hsic_unbiased(k: np.ndarray, m: np.ndarray) -> float:
    n = k.shape[0]
    kt, lt = k - np.diag(np.diag(k)), m - np.diag(np.diag(m))
    one = np.ones(n)
    return (
        np.trace(kt @ lt)
        + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
        - 2 / (n - 2) * (one @ kt @ lt @ one)
    ) / (n * (n - 3))


def _hsic_biased(k: np.ndarray, m: np.ndarray) -> float:
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(k @ h @ m @ h) / (n - 1) ** 2


def _cka_reference(x: np.ndarray, y: np.ndarray, hsic) -> float:
    k, m = x @ x.T, y @ y.T  # the Gram matrices K and L
    return hsic(k, m) / np.sqrt(hsic(k, k) * hsic(m, m))


def _reduce(a: np.ndarray, threshold: float) -> np.ndarray:
    """Centred data projected on its top PCs holding `threshold` of the variance."""
    a = a - a.mean(0)
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    s = s[s > s[0] * 1e-10]
    share = np.cumsum(s**2) / np.sum(s**2)
    k = int(np.searchsorted(share, threshold - 1e-12) + 1)
    return u[:, :k] * s[:k]


def _inv_sqrt_psd(m: np.ndarray) -> np.ndarray:
    """Pseudo-inverse square root of a covariance matrix (its null space maps to 0)."""
    w, v = np.linalg.eigh(m)
    keep = w > w.max() * 1e-10
    return (v[:, keep] / np.sqrt(w[keep])) @ v[:, keep].T


def _pwcca_reference(x: np.ndarray, y: np.ndarray, weight_x: bool, threshold: float | None = None) -> float:
    """PWCCA written from Morcos et al. 2018 and google/svcca's compute_pwcca, on covariances.

    CCA as the reference computes it: Sigma_xx^{-1/2} Sigma_xy Sigma_yy^{-1/2} = U S V^T (full
    SVD, pseudo-inverses for rank-deficient views); canonical variates h_i = X_c Sigma_xx^{-1/2} u_i
    for every u_i (the uncorrelated ones with rho_i = 0); alpha_i = sum_j |<h_i/|h_i|, x_j>| over
    the centred neurons; variates of zero norm (the null space of a rank-deficient view) drop out.
    """
    neurons_x, neurons_y = x - x.mean(0), y - y.mean(0)  # weights come from the original neurons
    if threshold is not None:
        x, y = _reduce(x, threshold), _reduce(y, threshold)
    xc, yc = x - x.mean(0), y - y.mean(0)
    n = x.shape[0]
    sxx, syy, sxy = xc.T @ xc / (n - 1), yc.T @ yc / (n - 1), xc.T @ yc / (n - 1)
    wx, wy = _inv_sqrt_psd(sxx), _inv_sqrt_psd(syy)
    u, rho, vt = np.linalg.svd(wx @ sxy @ wy, full_matrices=True)
    if weight_x:
        h, neurons, k = xc @ wx @ u, neurons_x, x.shape[1]
    else:
        h, neurons, k = yc @ wy @ vt.T, neurons_y, y.shape[1]
    rho = np.concatenate([rho, np.zeros(k - rho.size)])
    norms = np.linalg.norm(h, axis=0)
    keep = norms > norms.max() * 1e-8
    h, rho = h[:, keep] / norms[keep], rho[keep]
    alpha = np.abs(h.T @ neurons).sum(axis=1)
    return float((alpha / alpha.sum() * rho).sum())


def _rank_deficient(a: np.ndarray, rank: int, seed: int) -> np.ndarray:
    """``a`` mapped through a rank-``rank`` linear map of its columns (same width), plus an offset."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(a.shape[1], rank)) @ rng.normal(size=(rank, a.shape[1]))
    return a @ w + 3.0


def _data(n=200, p=12, q=9, seed=0, shared=4):
    """Two views sharing `shared` latent dimensions, plus private noise, with offsets."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, shared))
    x = z @ rng.normal(size=(shared, p)) + 0.5 * rng.normal(size=(n, p)) + 2.0
    y = z @ rng.normal(size=(shared, q)) + 0.5 * rng.normal(size=(n, q)) - 1.0
    return x, y


def test_doctests():
    failed, _ = doctest.testmod(similarity, extraglobs={"torch": torch})
    assert failed == 0


# -- CKA ------------------------------------------------------------------------------------
@pytest.mark.parametrize("debiased", [True, False])
def test_cka_matches_gram_matrix_reference(debiased):
    x, y = _data(n=60)
    ref = _cka_reference(x, y, _hsic_unbiased if debiased else _hsic_biased)
    assert linear_cka(torch.tensor(x), torch.tensor(y), debiased=debiased) == pytest.approx(ref, rel=1e-9)
    assert linear_cka(torch.tensor(x, dtype=torch.float32), torch.tensor(y), debiased=debiased) == pytest.approx(
        ref, rel=1e-5
    )


@pytest.mark.parametrize("debiased", [True, False])
def test_cka_identity_and_invariances(debiased):
    x, y = (torch.tensor(a) for a in _data())
    assert linear_cka(x, x, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
    q, _ = torch.linalg.qr(
        torch.randn(x.shape[1], x.shape[1], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    )
    base = linear_cka(x, y, debiased=debiased)
    assert linear_cka(7.5 * x @ q, y, debiased=debiased) == pytest.approx(base, rel=1e-10)
    assert linear_cka(x, 0.1 * y + 3.0, debiased=debiased) == pytest.approx(base, rel=1e-10)
    assert linear_cka(y, x, debiased=debiased) == pytest.approx(base, rel=1e-12)  # symmetric
    assert 0.3 < base < 1


def test_unbiased_cka_of_independent_data_is_near_zero():
    g = torch.Generator().manual_seed(0)
    values = [
        (linear_cka(x, y), linear_cka(x, y, debiased=False))
        for x, y in ((torch.randn(100, 50, generator=g), torch.randn(100, 50, generator=g)) for _ in range(5))
    ]
    unbiased, biased = np.array(values).T
    assert np.abs(unbiased).max() < 0.05, unbiased
    assert biased.min() > 0.3, biased  # why the unbiased estimator is needed at these sizes


def test_cka_errors():
    with pytest.raises(ValueError, match="same samples"):
        linear_cka(torch.randn(10, 3), torch.randn(11, 3))
    with pytest.raises(ValueError, match="at least 4"):
        linear_cka(torch.randn(3, 3), torch.randn(3, 3))
    with pytest.raises(ValueError, match=r"\(N, units\)"):
        linear_cka(torch.randn(10), torch.randn(10, 3))
    with pytest.raises(ValueError, match="variance"):
        linear_cka(torch.ones(10, 3), torch.randn(10, 3))


# -- CCA ------------------------------------------------------------------------------------
def test_cca_is_the_cosine_of_principal_angles():
    x, y = _data()
    angles = scipy_linalg.subspace_angles(x - x.mean(0), y - y.mean(0))
    expected = np.sort(np.cos(angles))[::-1]
    ours = cca(torch.tensor(x), torch.tensor(y), variance_threshold=1.0).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-10)
    assert mean_cca(torch.tensor(x), torch.tensor(y), variance_threshold=1.0) == pytest.approx(expected.mean())


def test_cca_after_svd_reduction_matches_reference():
    x, y = _data(p=30, q=25, shared=3)
    xr, yr = _reduce(x, 0.99), _reduce(y, 0.99)
    assert xr.shape[1] < 30 and yr.shape[1] < 25  # the reduction does something
    expected = np.sort(np.cos(scipy_linalg.subspace_angles(xr, yr)))[::-1]
    ours = cca(torch.tensor(x), torch.tensor(y), variance_threshold=0.99).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-10)
    assert svcca(torch.tensor(x), torch.tensor(y)) == pytest.approx(expected.mean(), rel=1e-10)
    # The default reduces nothing: every direction of both views.
    full = np.sort(np.cos(scipy_linalg.subspace_angles(x - x.mean(0), y - y.mean(0))))[::-1]
    np.testing.assert_allclose(cca(torch.tensor(x), torch.tensor(y)).numpy(), full, atol=1e-10)


@pytest.mark.parametrize("weight_by", ["x", "y"])
def test_pwcca_matches_reference(weight_by):
    # The weighting view is the narrower one: each of its directions has a partner (a wider one
    # would have several uncorrelated directions, whose split of the weight depends on a basis).
    x, y = _data(p=25, q=30, shared=3) if weight_by == "x" else _data(p=30, q=25, shared=3)
    ref = _pwcca_reference(x, y, weight_x=weight_by == "x")
    assert pwcca(torch.tensor(x), torch.tensor(y), weight_by=weight_by) == pytest.approx(ref, abs=1e-6)
    reduced = _pwcca_reference(x, y, weight_x=weight_by == "x", threshold=0.99)
    assert reduced != pytest.approx(ref, abs=1e-3)  # the SVD reduction changes the number ...
    # ... when asked for
    assert pwcca(torch.tensor(x), torch.tensor(y), 0.99, weight_by) == pytest.approx(reduced, abs=1e-6)


@pytest.mark.parametrize(("p", "q", "rank_x", "rank_y"), [
    (7, 12, None, 9),   # the wider view rank-deficient, still above the narrower view's width
    (7, 12, 5, None),   # the weighting (narrower) view rank-deficient
    (7, 12, None, 6),   # the wider view's rank below the narrower's width: one direction uncorrelated
    (12, 7, 6, None),   # weights from y (narrower), x's rank one below y's width
])
def test_pwcca_equals_independent_reference_unequal_widths_rank_deficient(p, q, rank_x, rank_y):
    x, y = _data(n=400, p=p, q=q, shared=3, seed=p + q)
    if rank_x:
        x = _rank_deficient(x, rank_x, 1)
    if rank_y:
        y = _rank_deficient(y, rank_y, 2)
    ref = _pwcca_reference(x, y, weight_x=p <= q)
    assert pwcca(torch.tensor(x), torch.tensor(y)) == pytest.approx(ref, abs=1e-6)


def test_pwcca_weights_by_the_smaller_view():
    x, y = (torch.tensor(a) for a in _data(p=12, q=9))
    assert pwcca(x, y) == pwcca(x, y, weight_by="y") != pytest.approx(pwcca(x, y, weight_by="x"))
    assert pwcca(y, x) == pwcca(y, x, weight_by="x")


def test_pwcca_of_an_invertible_map_is_one_and_of_independent_data_lower():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 10, generator=g, dtype=torch.float64)
    r = torch.randn(10, 10, generator=g, dtype=torch.float64) + 3 * torch.eye(10, dtype=torch.float64)
    assert pwcca(x, x @ r) == pytest.approx(1.0, abs=1e-10)
    assert pwcca(x, x @ r, weight_by="y") == pytest.approx(1.0, abs=1e-10)
    assert mean_cca(x, x @ r) == pytest.approx(1.0, abs=1e-10)
    assert svcca(x, x @ r, 1.0) == pytest.approx(1.0, abs=1e-10)
    independent = pwcca(x, torch.randn(500, 10, generator=g, dtype=torch.float64))
    related = pwcca(*(torch.tensor(a) for a in _data(n=500)))
    assert independent < 0.3 < related < 1


def test_cca_warns_with_too_few_samples_and_checks_inputs():
    g = torch.Generator().manual_seed(0)
    with pytest.warns(RuntimeWarning, match="samples"):
        rho = cca(torch.randn(10, 6, generator=g), torch.randn(10, 6, generator=g), variance_threshold=1.0)
    assert float(rho[0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="variance_threshold"):
        cca(torch.randn(10, 2), torch.randn(10, 2), variance_threshold=0)
    with pytest.raises(ValueError, match="variance_threshold"):
        svcca(torch.randn(10, 2), torch.randn(10, 2), variance_threshold=None)
    with pytest.raises(ValueError, match="no variance"):
        cca(torch.ones(10, 2), torch.randn(10, 2))
    with pytest.raises(ValueError, match="weight_by"):
        pwcca(torch.randn(10, 2), torch.randn(10, 2), weight_by="both")


# -- networks -------------------------------------------------------------------------------
def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4), nn.ReLU())


def test_layer_similarity_between_networks():
    x = torch.rand(300, 1, 8, generator=torch.Generator().manual_seed(0))
    a, b = _net(0), _net(1)
    layers = ["2", "4"]
    for measure in ("pwcca", "mean_cca", "svcca", "cka"):
        same = layer_similarity(a, a, x, layers=layers, measure=measure, batch_size=128)
        assert list(same) == layers
        assert all(v == pytest.approx(1.0, abs=1e-8) for v in same.values()), (measure, same)
        other = layer_similarity(a, b, x, layers=layers, measure=measure)
        assert all(v < 0.999 for v in other.values()), (measure, other)
    paired = layer_similarity(a, b, x, layers=["2"], layers_b=["4"], measure="cka")
    with torch.no_grad():
        direct = linear_cka(a[:3](x), b(x))
    assert paired == {"2": pytest.approx(direct, rel=1e-6)}
    with pytest.raises(ValueError, match="one to one"):
        layer_similarity(a, b, x, layers=layers, layers_b=["2"])
    with pytest.raises(ValueError, match="unknown measure"):
        layer_similarity(a, b, x, layers=layers, measure="pearson")
