"""Tests of selectivity.analysis.representations.gradients on models whose input-unit gradients are known.

- Linear layer a = W x + b: g_iu = W_u for every sample.
- Linear + ReLU: g_iu = W_u 1[W_u x_i + b_u > 0], so a unit active on a share p of the
  samples has gradient-norm CV sqrt((1 - p) / p) across samples.
- 1x1 convolution, spatially averaged over H x W: g_iu[c, h, w] = W[u, c] / (H W).
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch
from torch import nn

from selectivity.analysis.representations import gradients
from selectivity.analysis.representations.gradients import (
    GradientVariability,
    gradient_variability,
    input_unit_gradients,
    variability_from_gradients,
)


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_doctests():
    failed, _ = doctest.testmod(gradients, extraglobs={"torch": torch, "nn": nn})
    assert failed == 0


def _linear(d: int = 6, u: int = 4, relu: bool = False, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Flatten(), nn.Linear(d, u)] + ([nn.ReLU()] if relu else [])
    return nn.Sequential(*layers).double()


@pytest.mark.parametrize("vectorize", [True, False])
def test_linear_gradients_are_the_weights(vectorize):
    net = _linear()
    x = torch.rand(5, 1, 6, dtype=torch.float64)
    grads = input_unit_gradients(net, x, "1", unit_chunk=3, vectorize=vectorize)
    w = net[1].weight.detach()
    assert grads.shape == (5, 4, 1, 6)
    torch.testing.assert_close(grads, w.view(1, 4, 1, 6).expand(5, 4, 1, 6), rtol=0, atol=1e-14)
    torch.testing.assert_close(input_unit_gradients(net, x, "1", units=[2, 0], vectorize=vectorize), grads[:, [2, 0]])

    stats = variability_from_gradients(grads)
    norms = w.norm(dim=1)
    directions = w / norms.unsqueeze(1)
    torch.testing.assert_close(stats.norms, norms.expand(5, 4))
    torch.testing.assert_close(stats.cv_across_samples, torch.zeros(4, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        stats.direction_var_across_samples, torch.zeros(4, dtype=torch.float64), rtol=0, atol=1e-12
    )
    cv_units = float(norms.std(correction=0) / norms.mean())
    var_units = float(1 - directions.mean(0).square().sum())
    torch.testing.assert_close(stats.cv_across_units, torch.full((5,), cv_units, dtype=torch.float64))
    torch.testing.assert_close(stats.direction_var_across_units, torch.full((5,), var_units, dtype=torch.float64))
    assert stats.summary()["cv_across_units"] == pytest.approx(cv_units)
    assert stats.summary()["zero_gradient_share"] == 0.0


def test_relu_units_that_answer_few_samples_vary_more():
    net = _linear(u=3, relu=True)
    with torch.no_grad():
        net[1].bias[2] = -100.0  # unit 2 never fires
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 6, generator=g, dtype=torch.float64) * 2 - 1
    stats = gradient_variability(net, x, layers="2", batch_size=7)["2"]
    assert isinstance(stats, GradientVariability)
    with torch.no_grad():
        active = (net[1](x.flatten(1)) > 0).double()  # (N, U)
    w = net[1].weight.detach()
    p = active.mean(0)
    assert 0 < p[0] < 1 and 0 < p[1] < 1 and p[2] == 0
    expected_cv = torch.sqrt((1 - p[:2]) / p[:2])
    torch.testing.assert_close(stats.cv_across_samples[:2], expected_cv)
    assert math.isnan(stats.cv_across_samples[2])
    torch.testing.assert_close(
        stats.direction_var_across_samples[:2], torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-12
    )
    norms = active * w.norm(dim=1)
    torch.testing.assert_close(stats.norms, norms)
    mean = norms.mean(1)
    expected_units = torch.where(mean > 0, norms.std(1, correction=0) / mean, torch.nan)
    torch.testing.assert_close(stats.cv_across_units, expected_units, equal_nan=True)
    # Across units: only samples with two active units have a direction variance.
    unit_dirs = w / w.norm(dim=1, keepdim=True)
    both = active[:, 0] * active[:, 1] > 0
    var_both = float(1 - ((unit_dirs[0] + unit_dirs[1]) / 2).square().sum())
    assert torch.allclose(stats.direction_var_across_units[both], torch.tensor(var_both, dtype=torch.float64))
    assert bool(stats.direction_var_across_units[~both].isnan().all())
    summary = stats.summary()
    assert summary["zero_gradient_share"] == pytest.approx(1 - float(active.mean()))
    assert summary["cv_across_samples"] == pytest.approx(float(expected_cv.mean()))  # the dead unit is ignored


def test_spatially_averaged_conv_channel():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 1)
    net = nn.Sequential(conv, nn.Identity())
    x = torch.rand(4, 3, 6, 2)
    grads = input_unit_gradients(net, x, "1")
    expected = (conv.weight.detach().view(1, 5, 3, 1, 1) / 12).expand(4, 5, 3, 6, 2)
    torch.testing.assert_close(grads, expected)


def test_vectorized_equals_loop_and_streaming_equals_one_pass_on_a_resnet():
    from selectivity.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet_demo", num_classes=3)
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    fast = input_unit_gradients(model, x, "layer2.0", unit_chunk=12)
    slow = input_unit_gradients(model, x, "layer2.0", vectorize=False)
    assert fast.shape == (5, 32, 3, 32, 32)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-7)
    # Per-sample gradients: one sample alone gives the same gradients (eval mode, no batch coupling).
    torch.testing.assert_close(input_unit_gradients(model, x[2:3], "layer2.0")[0], fast[2], rtol=1e-5, atol=1e-7)

    streamed = gradient_variability(model, x, layers=["layer2.0"], batch_size=2, unit_chunk=7)["layer2.0"]
    whole = variability_from_gradients(fast)
    for name in (
        "norms",
        "cv_across_samples",
        "cv_across_units",
        "direction_var_across_samples",
        "direction_var_across_units",
    ):
        torch.testing.assert_close(getattr(streamed, name), getattr(whole, name), rtol=1e-4, atol=1e-7, equal_nan=True)


def test_model_left_as_it_was():
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.BatchNorm1d(4), nn.ReLU()).train()
    x = torch.rand(8, 1, 6)
    running = net[2].running_mean.clone()
    with torch.no_grad():
        gradient_variability(net, x, layers="3")
        grads = input_unit_gradients(net, x, "3")
    assert grads.abs().sum() > 0
    with torch.inference_mode():
        torch.testing.assert_close(input_unit_gradients(net, x.clone(), "3"), grads)
    assert net.training and net[2].training
    assert torch.equal(net[2].running_mean, running)  # eval mode: running stats untouched
    assert all(p.grad is None for p in net.parameters())
    assert hook_count(net) == 0


def test_errors():
    net = _linear()
    x = torch.rand(3, 1, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="exactly one"):
        input_unit_gradients(net, x, "*")
    with pytest.raises(ValueError, match="4 units"):
        input_unit_gradients(net, x, "1", units=[4])
    with pytest.raises(ValueError, match="float"):
        input_unit_gradients(net, torch.ones(3, 1, 6, dtype=torch.long), "1")
    with pytest.raises(ValueError, match="unit_chunk"):
        gradient_variability(net, x, layers="1", unit_chunk=0)
    with pytest.raises(ValueError, match=r"\(N, U, \*input\)"):
        variability_from_gradients(torch.ones(3, 4))
    assert hook_count(net) == 0


def test_numpy_reference_for_random_gradients():
    """The statistics against a direct NumPy transcription of the module docstring's formulas."""
    g = np.random.default_rng(0).normal(size=(6, 5, 7))
    g[0, 1] = 0.0  # a silent unit on one sample
    stats = variability_from_gradients(torch.tensor(g).unsqueeze(2))
    n = np.linalg.norm(g, axis=2)
    np.testing.assert_allclose(stats.cv_across_samples.numpy(), n.std(0) / n.mean(0))
    np.testing.assert_allclose(stats.cv_across_units.numpy(), n.std(1) / n.mean(1))
    unit = np.where(n[..., None] > 0, g / np.where(n > 0, n, 1)[..., None], 0.0)
    per_unit = [1 - np.sum(unit[n[:, u] > 0, u].mean(0) ** 2) for u in range(5)]
    per_sample = [1 - np.sum(unit[i, n[i] > 0].mean(0) ** 2) for i in range(6)]
    np.testing.assert_allclose(stats.direction_var_across_samples.numpy(), per_unit)
    np.testing.assert_allclose(stats.direction_var_across_units.numpy(), per_sample)
