"""Linear decodability and the axis gap (selectivity.analysis.population): known answers, references
written here, the ablation guarantee, the interval's coverage by seeded simulation, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from selectivity.analysis import axis_gap, haar_bases, linear_probe, linear_probe_accuracy, one_class_preference
from selectivity.core.functional import class_means, selectivity_index

C = 10


def _one_hot_code(n: int, per_class: int = 3, noise: float = 0.1, seed: int = 0):
    """Units that each answer one class: unit u fires (1 + noise) for class u % C, noise elsewhere."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % C
    y = y[torch.randperm(n, generator=g)]
    preferred = torch.arange(C * per_class) % C
    code = (y.unsqueeze(1) == preferred.unsqueeze(0)).double()
    return code + noise * torch.randn(n, C * per_class, generator=g, dtype=torch.float64), y


def _reference_rotation(dim: int, seed: int) -> torch.Tensor:
    """A random rotation drawn independently of the code under test (NumPy's QR)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return torch.from_numpy(q * np.sign(np.diag(r)))


def _reference_preference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SI of the class means shifted so the lowest is 0, by loops: (max - mean of rest) / (max + mean of rest)."""
    out = []
    for u in range(x.shape[1]):
        means = [x[y == c, u].mean() for c in sorted(set(y.tolist()))]
        floor = min(means)
        shifted = sorted(m - floor for m in means)
        top, rest = shifted[-1], sum(shifted[:-1]) / (len(shifted) - 1)
        out.append((top - rest) / (top + rest + 1e-7))
    return np.array(out)


# ----------------------------------------------------------------------------- known answers


def test_one_hot_code_on_the_unit_axes_decodes_with_a_large_gap():
    x, y = _one_hot_code(3000)
    probe = linear_probe(x[:2000], y[:2000], x[2000:], y[2000:])
    assert probe.accuracy >= 0.99 and probe.converged
    gap = axis_gap(x[2000:], y[2000:], C, rotations=10)
    # Each unit answers one class: its class means are ~(1, 0, ..., 0) up to noise, so P ~ 1.
    reference = _reference_preference(x[2000:].numpy(), y[2000:].numpy())
    assert gap.units == pytest.approx(reference.mean(), abs=1e-12) and gap.units > 0.95
    # A random direction mixes the classes: its 10 class means are spread, far from one-hot.
    assert gap.random < 0.6 and gap.gap > 0.4
    assert gap.low > 0.4 and gap.low <= gap.gap <= gap.high


def test_the_same_code_rotated_decodes_as_well_with_a_gap_of_about_zero():
    x, y = _one_hot_code(3000)
    rotated = x @ _reference_rotation(x.shape[1], seed=7)
    probe = linear_probe(rotated[:2000], y[:2000], rotated[2000:], y[2000:])
    assert probe.accuracy >= 0.99
    gap = axis_gap(rotated[2000:], y[2000:], C, rotations=20)
    # The rotated units are themselves random directions of the code's space.
    assert abs(gap.gap) < 0.05
    assert gap.units < 0.6


def test_shuffled_labels_decode_at_chance():
    x, y = _one_hot_code(4000)
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(3))]
    probe = linear_probe(x[:2000], shuffled[:2000], x[2000:], shuffled[2000:])
    # 2,000 test images, 10 balanced classes: chance is 0.1 with a standard deviation of 0.007.
    assert abs(probe.accuracy - 0.1) < 0.035
    assert probe.loss == pytest.approx(math.log(C), abs=0.05)  # the probe learnt no more than the class shares
    # the held-out part said so: the strongest penalty had the best held-out cross-entropy (or nearly)
    best = min(s[2] for s in probe.selection)
    assert probe.selection[0][2] == pytest.approx(best, abs=0.01)


# ----------------------------------------------------------------------------- ablation


def _informative_layer(n: int, seed: int = 0):
    """10 units carry a one-hot class code, 20 carry noise only."""
    x, y = _one_hot_code(n, per_class=1, noise=0.2, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    return torch.cat([x, torch.randn(n, 20, generator=g, dtype=torch.float64)], dim=1), y


def _ablate(x: torch.Tensor, units) -> torch.Tensor:
    out = x.clone()
    out[:, list(units)] = 0.0
    return out


def test_ablating_units_never_lowers_the_penalized_training_objective():
    """At a fixed strength the probe of an ablated layer is the probe of the whole layer with the
    ablated units' weights held at 0 (a constant feature standardizes to 0), so its optimum of
    f(W, b) can only be higher. This holds exactly, for any units; held-out test accuracy does
    not have to follow (a superset of features can lose by noise)."""
    x, y = _informative_layer(1500)
    order = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(5)).tolist()
    objectives = []
    for k in (0, 5, 10, 15, 20, 25, 29):
        layer = _ablate(x, order[:k])
        probe = linear_probe(layer[:1000], y[:1000], layer[1000:], y[1000:], strengths=[1e-2], tol=1e-9)
        assert probe.converged
        objectives.append(probe.objective)
    assert all(b >= a - 1e-10 for a, b in zip(objectives, objectives[1:])), objectives
    assert objectives[-1] > objectives[0] + 0.5  # the informative units were among those ablated


def test_ablating_the_informative_units_leaves_chance():
    x, y = _informative_layer(3000)
    whole = linear_probe_accuracy(x[:2000], y[:2000], x[2000:], y[2000:])
    noise_ablated = _ablate(x, range(10, 30))
    code_ablated = _ablate(x, range(10))
    assert whole >= 0.95
    assert linear_probe_accuracy(noise_ablated[:2000], y[:2000], noise_ablated[2000:], y[2000:]) >= 0.95
    assert abs(linear_probe_accuracy(code_ablated[:2000], y[:2000], code_ablated[2000:], y[2000:]) - 0.1) < 0.04


# ----------------------------------------------------------------------------- the probe


def test_the_probe_minimizes_the_penalized_objective():
    """Against an independent fit: autograd and torch's own L-BFGS on the objective written here."""
    x, y = _informative_layer(800, seed=2)
    strength = 3e-3
    probe = linear_probe(x, y, x, y, strengths=[strength], tol=1e-10)
    z = (x - x.mean(0)) / x.std(0, unbiased=False)
    w = torch.zeros(z.shape[1], C, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(C, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=2000, tolerance_grad=1e-12, tolerance_change=1e-16,
                                  line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ w + b, y) + 0.5 * strength * (w * w).sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    assert probe.objective == pytest.approx(float(objective().detach()), abs=1e-9)
    assert torch.allclose(probe.weights[:-1], w.detach(), atol=1e-5)
    logits = z @ w.detach() + b.detach()
    assert probe.accuracy == pytest.approx(float((logits.argmax(1) == y).double().mean()))


def test_the_strength_is_the_one_with_the_lowest_held_out_loss_and_the_fit_is_deterministic():
    x, y = _informative_layer(1200)
    first = linear_probe(x[:800], y[:800], x[800:], y[800:], seed=4)
    again = linear_probe(x[:800], y[:800], x[800:], y[800:], seed=4)
    assert first.accuracy == again.accuracy and first.loss == again.loss and first.strength == again.strength
    assert torch.equal(first.weights, again.weights)
    strengths = [s[0] for s in first.selection]
    assert strengths == [1.0, 0.1, 0.01, 1e-3, 1e-4, 1e-5]
    assert first.strength == min(first.selection, key=lambda s: s[2])[0]
    assert 0 < first.loss < math.log(C)


def test_standardization_uses_the_training_statistics():
    """A feature scaled and shifted by any amount gives the same probe: the train split's mean and
    deviation undo it (the test split is mapped with the same numbers)."""
    x, y = _informative_layer(1000)
    scale = torch.logspace(-3, 3, x.shape[1], dtype=torch.float64)
    moved = x * scale + 100.0
    a = linear_probe(x[:600], y[:600], x[600:], y[600:], strengths=[1e-2])
    b = linear_probe(moved[:600], y[:600], moved[600:], y[600:], strengths=[1e-2])
    assert a.accuracy == b.accuracy and a.loss == pytest.approx(b.loss, abs=1e-6)


def test_a_dead_unit_does_not_change_the_probe():
    x, y = _informative_layer(1000)
    with_dead = torch.cat([x, torch.zeros(len(y), 3, dtype=x.dtype)], dim=1)
    a = linear_probe(x[:600], y[:600], x[600:], y[600:])
    b = linear_probe(with_dead[:600], y[:600], with_dead[600:], y[600:])
    assert a.strength == b.strength and a.accuracy == b.accuracy and a.loss == pytest.approx(b.loss, abs=1e-9)


# ----------------------------------------------------------------------------- the measure


def test_the_measure_is_si_of_the_class_means_shifted_to_a_floor_of_zero():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 5, (400,), generator=g)
    x = torch.randn(400, 7, generator=g, dtype=torch.float64) + torch.randn(5, 7, generator=g, dtype=torch.float64)[y]
    ours = one_class_preference(x, y, 5)
    assert np.allclose(ours.numpy(), _reference_preference(x.numpy(), y.numpy()), atol=1e-12)
    assert bool(((ours >= 0) & (ours <= 1)).all())


def test_the_measure_equals_si_on_relu_units_silent_for_a_class():
    g = torch.Generator().manual_seed(1)
    y = torch.arange(500) % 5
    x = torch.relu(torch.randn(500, 6, generator=g, dtype=torch.float64) + 1.0)
    x[y == 2] = 0.0  # every unit silent for class 2: its lowest class mean is 0
    si = selectivity_index(class_means(x, y, 5))
    assert torch.allclose(one_class_preference(x, y, 5), si, atol=1e-12, rtol=0)


def test_the_measure_is_invariant_to_shifting_and_scaling_but_not_to_the_sign():
    g = torch.Generator().manual_seed(2)
    y = torch.randint(0, 4, (300,), generator=g)
    x = torch.randn(300, 5, generator=g, dtype=torch.float64) + 2.0 * (y == 1).double().unsqueeze(1)
    base = one_class_preference(x, y, 4)
    for scale, shift in ((3.0, 5.0), (0.01, -4.0), (250.0, 1e3)):
        assert torch.allclose(one_class_preference(scale * x + shift, y, 4), base, atol=1e-5, rtol=0)
    # negated, class 1 stands out below the others: not a one-class preference
    assert bool((one_class_preference(-x, y, 4) < base - 0.2).all())


def test_dead_and_constant_units_take_no_part_in_the_gap():
    x, y = _one_hot_code(1000)
    plain = axis_gap(x, y, C, rotations=6, seed=3)
    padded = torch.cat([torch.zeros(len(y), 2, dtype=x.dtype), x, torch.full((len(y), 1), 4.0, dtype=x.dtype)], dim=1)
    result = axis_gap(padded, y, C, rotations=6, seed=3)
    assert result.num_units == x.shape[1] + 3 and result.live_units == x.shape[1]
    assert result.units == plain.units and result.random == plain.random and result.gap == plain.gap
    assert torch.isnan(result.per_unit[[0, 1, -1]]).all() and not torch.isnan(result.per_unit[2:-1]).any()
    dead = axis_gap(torch.zeros(50, 4), torch.arange(50) % 2, 2)
    assert dead.live_units == 0 and math.isnan(dead.gap)


def test_the_random_side_is_the_measure_of_the_basis_directions():
    """random = mean over bases of the mean P of each basis's directions, each direction's
    responses computed image by image here (x @ q), not from class means."""
    x, y = _one_hot_code(600)
    result = axis_gap(x, y, C, rotations=3, seed=11)
    bases = haar_bases(3, x.shape[1], torch.Generator().manual_seed(11))
    means = [_reference_preference((x @ q).numpy(), y.numpy()).mean() for q in bases]
    assert np.allclose(result.per_rotation.numpy(), means, atol=1e-10)
    assert result.random == pytest.approx(float(np.mean(means)), abs=1e-10)


def test_haar_bases_are_orthonormal_seeded_and_uniform():
    bases = haar_bases(2000, 6, torch.Generator().manual_seed(0))
    eye = torch.eye(6, dtype=torch.float64)
    assert torch.allclose(bases.transpose(1, 2) @ bases, eye.expand(2000, 6, 6), atol=1e-12)
    assert torch.equal(bases, haar_bases(2000, 6, torch.Generator().manual_seed(0)))
    assert not torch.equal(bases, haar_bases(2000, 6, torch.Generator().manual_seed(1)))
    # A uniform direction on the sphere of R^6 has E[q_i] = 0 and E[q_i^2] = 1/6 for each entry,
    # and no sign bias; without the sign fix, QR's convention biases the first column's signs.
    first = bases[:, :, 0]
    assert first.mean().abs() < 0.02
    assert (first.pow(2).mean(0) - 1 / 6).abs().max() < 0.015
    assert abs(float((first[:, 0] > 0).double().mean()) - 0.5) < 0.04


def test_the_gap_interval_covers_at_its_level():
    """The t interval over K = 5 rotations covers the gap's expectation over Haar rotations
    (estimated from 20,000 rotations) 95% of the time: 600 seeded replicates."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 4
    x = torch.relu(torch.randn(300, 12, generator=g, dtype=torch.float64)
                   + 1.5 * torch.randn(4, 12, generator=g, dtype=torch.float64)[y])
    truth = axis_gap(x, y, 4, rotations=20_000, seed=10**6).gap
    covered = 0
    for seed in range(600):
        result = axis_gap(x, y, 4, rotations=5, seed=seed)
        covered += result.low <= truth <= result.high
    # binomial(600, 0.95): standard deviation 0.9 points; 0.92-0.98 is beyond 3 of them
    assert 0.92 <= covered / 600 <= 0.98, covered / 600


# ----------------------------------------------------------------------------- bad input


def test_bad_input_is_a_one_line_error():
    x, y = _one_hot_code(200)
    with pytest.raises(ValueError, match="20 training images for 30 units"):
        linear_probe(x[:20], y[:20], x[20:], y[20:])
    one_class = torch.zeros(200, dtype=torch.long)
    with pytest.raises(ValueError, match="single class"):
        linear_probe(x, one_class, x, one_class)
    with pytest.raises(ValueError, match="single class"):
        axis_gap(x, one_class, C)
    nan = x.clone()
    nan[3, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        linear_probe(nan, y, x, y)
    with pytest.raises(ValueError, match="NaN"):
        linear_probe(x, y, nan, y)
    with pytest.raises(ValueError, match="NaN"):
        axis_gap(nan, y, C)
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="rotations must be a whole number >= 1"):
            axis_gap(x, y, C, rotations=k)
    with pytest.raises(ValueError, match="do not occur in the training labels"):
        linear_probe(x[y < 5], y[y < 5], x, y)
    with pytest.raises(ValueError, match="strengths"):
        linear_probe(x, y, x, y, strengths=[0.0])
    with pytest.raises(ValueError) as err:
        linear_probe(x[:20], y[:20], x[20:], y[20:])
    assert "\n" not in str(err.value)
