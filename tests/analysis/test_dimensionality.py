"""Tests of selectivity.analysis.representations.dimensionality against NumPy and data with known spectra.

Data with an exactly known covariance spectrum: Q has orthonormal, centred columns, so
A = Q diag(s) R (R orthogonal) has covariance eigenvalues s^2 / (N - 1), whatever N.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from torch import nn

from selectivity.analysis.representations import dimensionality
from selectivity.analysis.representations.dimensionality import (
    collect_activations,
    compare_dimensionality,
    covariance_spectrum,
    layer_dimensionality,
    n_components_for_variance,
    participation_ratio,
)


def _known_spectrum(scales, n: int = 40, seed: int = 0) -> torch.Tensor:
    """(n, U) float64 data whose covariance eigenvalues are exactly scales**2 / (n - 1)."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.as_tensor(scales, dtype=torch.float64)
    u = scales.numel()
    raw = torch.randn(n, u, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(raw - raw.mean(0))
    rotation, _ = torch.linalg.qr(torch.randn(u, u, generator=g, dtype=torch.float64))
    return q @ torch.diag(scales) @ rotation + 5.0  # an offset, which centring must remove


def _reference_pc(eigs: np.ndarray, threshold: float) -> int:
    """Slow loop: add components until their share reaches the threshold."""
    eigs = np.sort(eigs)[::-1]
    total, running = eigs.sum(), 0.0
    for k, value in enumerate(eigs, start=1):
        running += value
        if running >= threshold * total - 1e-12 * total:
            return k
    return len(eigs)


def test_doctests():
    failed, _ = doctest.testmod(dimensionality, extraglobs={"torch": torch})
    assert failed == 0


@pytest.mark.parametrize("n, u", [(60, 8), (5, 8)])
def test_spectrum_matches_numpy(n, u):
    acts = torch.randn(n, u, generator=torch.Generator().manual_seed(n))
    ours = covariance_spectrum(acts).numpy()
    theirs = np.sort(np.linalg.eigvalsh(np.cov(acts.double().numpy(), rowvar=False)))[::-1]
    assert ours.dtype == np.float64 and ours.shape == (min(n, u),)
    np.testing.assert_allclose(ours, theirs[: min(n, u)], rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(theirs[min(n, u) :], 0, atol=1e-10)
    pr = theirs.sum() ** 2 / (theirs**2).sum()
    assert participation_ratio(acts) == pytest.approx(pr, rel=1e-6)
    for t in (0.5, 0.8, 0.95, 0.99):
        assert n_components_for_variance(acts, t) == _reference_pc(theirs, t)


def test_isotropic_data_has_full_participation():
    u = 10
    acts = _known_spectrum(torch.ones(u))
    assert participation_ratio(acts) == pytest.approx(u, rel=1e-10)
    assert n_components_for_variance(acts, 0.95) == 10  # ceil(0.95 * 10)
    assert n_components_for_variance(acts, 0.9) == 9  # exactly 90% at 9: the boundary counts


def test_rank_one_data():
    acts = _known_spectrum([3.0, 0, 0, 0, 0, 0])
    assert participation_ratio(acts) == pytest.approx(1.0, rel=1e-10)
    assert n_components_for_variance(acts) == 1
    assert n_components_for_variance(acts, threshold=1.0) == 1


def test_known_uneven_spectrum():
    acts = _known_spectrum(torch.tensor([4.0, 3.0, 2.0, 1.0], dtype=torch.float64).sqrt())  # variances 4:3:2:1
    assert participation_ratio(acts) == pytest.approx(100 / 30, rel=1e-10)
    # Cumulative shares 0.4, 0.7, 0.9, 1.0, each hit exactly at the boundary.
    assert [n_components_for_variance(acts, t) for t in (0.4, 0.41, 0.7, 0.9, 0.95, 1.0)] == [1, 2, 2, 3, 4, 4]


def test_data_in_a_k_dimensional_subspace():
    g = torch.Generator().manual_seed(1)
    k, u = 4, 20
    acts = torch.randn(200, k, generator=g, dtype=torch.float64) @ torch.randn(k, u, generator=g, dtype=torch.float64)
    acts = acts + torch.randn(u, generator=g, dtype=torch.float64)
    assert n_components_for_variance(acts) <= k
    assert n_components_for_variance(acts, threshold=1.0) == k
    assert 1.0 <= participation_ratio(acts) <= k


def test_constant_data_has_no_dimensions():
    acts = torch.ones(10, 4)
    assert n_components_for_variance(acts) == 0
    assert participation_ratio(acts) == 0.0


@pytest.mark.parametrize(
    "acts, kwargs, message",
    [
        (torch.ones(5), {}, r"\(N, U\)"),
        (torch.ones(1, 5), {}, "at least 2 samples"),
        (torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), {}, "NaN"),
        (torch.randn(5, 3), {"threshold": 0.0}, "threshold"),
        (torch.randn(5, 3), {"threshold": 1.5}, "threshold"),
    ],
)
def test_bad_inputs(acts, kwargs, message):
    with pytest.raises(ValueError, match=message):
        n_components_for_variance(acts, **kwargs)


# -- on a model -----------------------------------------------------------------------------
def _linear_net(d: int = 6, u: int = 5) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(d, u), nn.Dropout(0.5), nn.Identity())
    return net


def test_layer_dimensionality_matches_direct_computation():
    net = _linear_net().train()
    x = torch.rand(50, 1, 6, generator=torch.Generator().manual_seed(0))
    result = layer_dimensionality(net, x, layers=["1", "3"], n_samples=40, threshold=0.9)
    with torch.no_grad():
        direct = net[1](x[:40].flatten(1))
    assert list(result) == ["1", "3"]
    for name in ("1", "3"):  # eval mode: dropout is off, so both layers see the same activations
        assert result[name] == {
            "pc90": n_components_for_variance(direct, 0.9),
            "participation_ratio": pytest.approx(participation_ratio(direct), rel=1e-6),
        }
    assert net.training and all(m.training for m in net.modules())
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in net.modules()) == 0
    with pytest.raises(ValueError, match="n_samples"):
        layer_dimensionality(net, x, layers="1", n_samples=51)


def test_collect_activations_batches_and_averages_channels():
    net = nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU())
    x = torch.rand(7, 2, 4, 4)
    acts = collect_activations(net, x, layers="1", batch_size=3)["1"]
    with torch.no_grad():
        torch.testing.assert_close(acts, net(x).mean(dim=(2, 3)))


def test_compare_dimensionality_of_a_known_change():
    net = nn.Sequential(nn.Flatten(), nn.Identity())
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(30, 8, generator=g, dtype=torch.float64)
    direction = torch.randn(8, generator=g, dtype=torch.float64)
    rank_one = clean + torch.randn(30, 1, generator=g, dtype=torch.float64) * direction  # a change of rank 1
    out = compare_dimensionality(net, clean, {"same": clean.clone(), "rank_one": rank_one}, layers="1", n_samples=25)
    assert list(out) == ["clean", "same", "rank_one"]
    assert out["same"]["1"]["delta_pc95"] == 0 and out["same"]["1"]["change_pc95"] == 0
    assert out["same"]["1"]["change_participation_ratio"] == 0.0
    r = out["rank_one"]["1"]
    assert r["change_pc95"] == 1 and r["change_participation_ratio"] == pytest.approx(1.0)
    assert r["pc95"] == n_components_for_variance(rank_one[:25])
    assert r["delta_pc95"] == r["pc95"] - out["clean"]["1"]["pc95"]
    assert r["delta_participation_ratio"] == pytest.approx(
        participation_ratio(rank_one[:25]) - participation_ratio(clean[:25])
    )
    with pytest.raises(ValueError, match="row for row"):
        compare_dimensionality(net, clean, {"bad": clean[:, :4]}, layers="1")
    with pytest.raises(ValueError, match="reserved"):
        compare_dimensionality(net, clean, {"clean": clean}, layers="1")
