"""Tests of selectivity.analysis.attacks.

Exact checks use a linear classifier, for which the worst case in the L-inf ball is known in
closed form: the margin (w1 - w0).x + (b1 - b0) of the true class falls by eps * ||w1 - w0||_1,
at x - eps * sign(w1 - w0) * (2y - 1), which is FGSM's step (and PGD's limit). Behavioural
checks use a small CNN trained for a few dozen steps on synthetic three-class images; foolbox's
PGD is the independent cross-check where it is installed.
"""

from __future__ import annotations

import doctest
import importlib.util
import math

import pytest
import torch
from torch import nn

from selectivity.analysis.attacks import api as attacks
from selectivity.analysis.attacks import adversarial_accuracy, adversarial_examples, fgsm, pgd
from selectivity.analysis.eval_mode import eval_mode

HAS_FOOLBOX = importlib.util.find_spec("foolbox") is not None


# -- fixtures -------------------------------------------------------------------------------
def _linear_problem(dim: int = 12, n: int = 64, seed: int = 0):
    """A float64 linear 2-class model and inputs in [0.3, 0.7], where clipping never binds for eps <= 0.3."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(dim, 2)).double()
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(2, dim, generator=g, dtype=torch.float64))
        model[1].bias.copy_(torch.randn(2, generator=g, dtype=torch.float64) * 0.1)
    x = 0.3 + 0.4 * torch.rand(n, 1, dim, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (n,), generator=g)
    w = model[1].weight[1] - model[1].weight[0]
    b = model[1].bias[1] - model[1].bias[0]
    return model, x, y, w.detach(), b.detach()


def _synthetic_images(n: int, seed: int):
    """Three classes of 3x16x16 images: a class template plus noise, in [0, 1]."""
    g = torch.Generator().manual_seed(1234)
    templates = torch.nn.functional.avg_pool2d(torch.randn(3, 3, 16, 16, generator=g), 3, 1, 1)
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = 0.5 + 0.25 * templates[y] + 0.15 * torch.randn(n, 3, 16, 16, generator=g)
    return x.clamp(0, 1), y


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
        )
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def trained():
    """A small CNN trained for 60 steps (about a second), and held-out data."""
    torch.manual_seed(0)
    model = SmallCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = _synthetic_images(1024, seed=1)
    for step in range(60):
        idx = torch.arange(step * 64, step * 64 + 64) % 1024
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    x_test, y_test = _synthetic_images(192, seed=2)
    return model, x_test, y_test


def _clean_accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).double().mean())


def test_doctests():
    failed, _ = doctest.testmod(attacks, extraglobs={"torch": torch, "nn": nn})
    assert failed == 0


# -- exactness on a linear model --------------------------------------------------------------
@pytest.mark.parametrize("eps", [0.01, 0.05, 0.2])
def test_linf_attacks_are_exact_on_a_linear_model(eps):
    model, x, y, w, b = _linear_problem()
    sign = (2 * y - 1).double().view(-1, 1, 1)
    optimal = x - eps * w.sign().view(1, 1, -1) * sign
    torch.testing.assert_close(fgsm(model, x, y, eps), optimal, rtol=0, atol=1e-12)
    gen = torch.Generator().manual_seed(0)
    torch.testing.assert_close(pgd(model, x, y, eps, generator=gen), optimal, rtol=0, atol=1e-12)
    # Robust accuracy in closed form: the true class's margin survives the worst-case drop.
    margin = sign.flatten() * (x.flatten(1) @ w + b)
    expected = float((margin > eps * w.abs().sum()).double().mean())
    assert adversarial_accuracy(model, x, y, attack="fgsm", eps=eps)[eps] == pytest.approx(expected)
    assert adversarial_accuracy(model, x, y, eps=eps, generator=gen)[eps] == pytest.approx(expected)


def test_l2_fgm_is_exact_on_a_linear_model():
    model, x, y, w, b = _linear_problem()
    eps = 0.3
    sign = (2 * y - 1).double().view(-1, 1, 1)
    optimal = x - eps * (w / w.norm()).view(1, 1, -1) * sign
    torch.testing.assert_close(fgsm(model, x, y, eps, norm="l2"), optimal, rtol=0, atol=1e-12)
    margin = sign.flatten() * (x.flatten(1) @ w + b)
    expected = float((margin > eps * w.norm()).double().mean())
    assert adversarial_accuracy(model, x, y, attack="fgsm", eps=[eps], norm="l2")[eps] == pytest.approx(expected)
    # PGD from x walks straight to it; from a random start the radial projections only approach it.
    torch.testing.assert_close(pgd(model, x, y, eps, norm="l2", random_start=False), optimal, rtol=0, atol=1e-12)
    adv = pgd(model, x, y, eps, norm="l2", steps=40, generator=torch.Generator().manual_seed(0))
    assert float((adv - optimal).flatten(1).norm(dim=1).max()) < 0.5 * eps


# -- behaviour on a trained CNN ---------------------------------------------------------------
def test_accuracy_falls_with_epsilon_and_eps_zero_is_clean(trained):
    model, x, y = trained
    clean = _clean_accuracy(model, x, y)
    assert clean > 0.8
    epsilons = [0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255]
    acc = adversarial_accuracy(model, x, y, eps=epsilons, batch_size=64, generator=torch.Generator().manual_seed(0))
    assert list(acc) == epsilons
    assert acc[0.0] == pytest.approx(clean)
    values = list(acc.values())
    assert all(b <= a for a, b in zip(values, values[1:], strict=False)), values
    assert values[-1] < clean - 0.3, values
    fgsm_acc = adversarial_accuracy(model, x, y, attack="fgsm", eps=epsilons[1:])
    assert all(acc[e] <= fgsm_acc[e] + 0.03 for e in epsilons[1:]), (acc, fgsm_acc)  # PGD is the stronger attack


@pytest.mark.parametrize("norm, eps", [("linf", 8 / 255), ("l2", 0.5)])
@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_perturbation_within_the_ball_and_images_in_range(trained, attack, norm, eps):
    model, x, y = trained
    x, y = x[:48].clone(), y[:48]
    x[:, 0, :4] = 0.0  # pixels on the borders of [0, 1], where clipping binds
    x[:, 1, :4] = 1.0
    kwargs = {"generator": torch.Generator().manual_seed(0)} if attack == "pgd" else {}
    adv = adversarial_examples(model, x, y, attack=attack, eps=eps, batch_size=20, norm=norm, **kwargs)
    delta = (adv - x).flatten(1)
    size = delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)
    assert float(size.max()) <= eps * (1 + 1e-5)
    assert float(size.max()) > 0.5 * eps  # the attack does move
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0


def test_modes_restored_and_parameter_grads_untouched(trained):
    model, x, y = trained
    model.train()
    model.features[1].eval()  # a mixed state must come back as it was
    modes = {name: m.training for name, m in model.named_modules()}
    seen = []
    hook = model.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    try:
        pgd(model, x[:16], y[:16], 4 / 255, steps=2)
        fgsm(model, x[:16], y[:16], 4 / 255)
        adversarial_accuracy(model, x[:16], y[:16], eps=[2 / 255], steps=2)
    finally:
        hook.remove()
        assert {name: m.training for name, m in model.named_modules()} == modes
        model.eval()
    assert seen and not any(seen)  # every forward ran in eval mode
    assert all(p.grad is None for p in model.parameters())


def test_modes_restored_after_an_exception():
    class Failing(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(4)

        def forward(self, x):
            raise RuntimeError("boom")

    model = Failing().train()
    with pytest.raises(RuntimeError, match="boom"):
        pgd(model, torch.rand(2, 4), torch.tensor([0, 1]), 0.1)
    assert model.training and model.bn.training
    with pytest.raises(RuntimeError, match="boom"), eval_mode(model):
        model(torch.rand(2, 4))
    assert model.training and model.bn.training


def test_works_under_no_grad_and_inference_mode_and_leaves_input_alone(trained):
    model, x, y = trained
    x, y = x[:16], y[:16]
    before = x.clone()
    with torch.no_grad():
        adv = pgd(model, x, y, 4 / 255, steps=2)
    assert not adv.requires_grad and not torch.equal(adv, x)
    assert torch.equal(x, before)
    with torch.inference_mode():
        x_inf = x.clone()
        for random_start in (True, False):
            assert not torch.equal(pgd(model, x_inf, y, 4 / 255, steps=2, random_start=random_start), x)
        assert not torch.equal(fgsm(model, x_inf, y, 4 / 255), x)


def test_deterministic_with_a_generator(trained):
    model, x, y = trained
    x, y = x[:32], y[:32]
    a = pgd(model, x, y, 8 / 255, steps=3, generator=torch.Generator().manual_seed(7))
    b = pgd(model, x, y, 8 / 255, steps=3, generator=torch.Generator().manual_seed(7))
    c = pgd(model, x, y, 8 / 255, steps=3, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    torch.testing.assert_close(
        pgd(model, x, y, 8 / 255, steps=3, random_start=False),
        pgd(model, x, y, 8 / 255, steps=3, random_start=False),
        rtol=0,
        atol=0,
    )


def test_restarts_keep_the_worst_case_per_sample(trained):
    model, x, y = trained
    x, y = x[:64], y[:64]
    eps, kw = 32 / 255, {"steps": 1, "step_size": 0.5 / 255}  # the random start decides: restarts differ
    gen = torch.Generator().manual_seed(3)
    singles = [pgd(model, x, y, eps, generator=gen, **kw) for _ in range(3)]
    multi = pgd(model, x, y, eps, restarts=3, generator=torch.Generator().manual_seed(3), **kw)
    with torch.no_grad():
        fooled = [model(s).argmax(1) != y for s in singles]
        losses = [nn.functional.cross_entropy(model(s), y, reduction="none") for s in singles]
        multi_fooled = model(multi).argmax(1) != y
    assert torch.equal(multi_fooled, fooled[0] | fooled[1] | fooled[2])
    assert not (torch.equal(fooled[0], fooled[1]) and torch.equal(fooled[1], fooled[2]))  # restarts differ
    for i in range(len(y)):
        same = [torch.equal(multi[i], s[i]) for s in singles]
        assert any(same)
        if not multi_fooled[i]:  # none fooled: the highest loss is kept
            assert losses[same.index(True)][i] == max(loss[i] for loss in losses)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"eps": -0.1}, "eps"),
        ({"eps": 1.5}, "eps"),
        ({"eps": float("nan")}, "finite"),
        ({"eps": 100.0, "norm": "l2"}, "sqrt"),
        ({"eps": 0.1, "norm": "l1"}, "unknown norm"),
    ],
)
def test_bad_parameters(kwargs, message):
    model, x, y, _, _ = _linear_problem()
    for fn in (fgsm, pgd):
        with pytest.raises(ValueError, match=message):
            fn(model, x, y, **kwargs)
    with pytest.raises(ValueError, match=message):
        adversarial_accuracy(model, x, y, **kwargs)


def test_bad_inputs():
    model, x, y, _, _ = _linear_problem()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pgd(model, x + 1, y, 0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fgsm(model, x - 0.5, y, 0.1)
    with pytest.raises(ValueError, match="shape"):
        pgd(model, x.flatten(), y, 0.1)
    with pytest.raises(ValueError, match="labels"):
        pgd(model, x, y[:-1], 0.1)
    with pytest.raises(ValueError, match="integer"):
        pgd(model, x, y.double(), 0.1)
    with pytest.raises(ValueError, match="labels must lie"):
        fgsm(model, x, y + 2, 0.1)
    with pytest.raises(ValueError, match="unknown attack"):
        adversarial_accuracy(model, x, y, attack="cw", eps=0.1)
    with pytest.raises(ValueError, match="steps"):
        pgd(model, x, y, 0.1, steps=0)
    assert torch.equal(pgd(model, x, y, 0.0), x) and torch.equal(fgsm(model, x, y, 0), x)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # foolbox imports scipy.ndimage.filters
@pytest.mark.skipif(not HAS_FOOLBOX, reason="foolbox is not installed (pip install foolbox, which brings eagerpy)")
@pytest.mark.parametrize("norm, epsilons", [("linf", [2 / 255, 4 / 255, 8 / 255]), ("l2", [0.1, 0.25])])
def test_agrees_with_foolbox_pgd(trained, norm, epsilons):
    import foolbox

    model, x, y = trained
    steps = 10
    fmodel = foolbox.PyTorchModel(model.eval(), bounds=(0, 1))
    attack_cls = foolbox.attacks.LinfPGD if norm == "linf" else foolbox.attacks.L2PGD
    attack = attack_cls(rel_stepsize=2.5 / steps, steps=steps, random_start=True)  # same step rule as ours
    torch.manual_seed(0)
    _, _, success = attack(fmodel, x, y, epsilons=epsilons)
    theirs = (1 - success.double().mean(dim=1)).tolist()
    ours = adversarial_accuracy(
        model, x, y, eps=epsilons, norm=norm, steps=steps, generator=torch.Generator().manual_seed(0)
    )
    for eps, acc in zip(epsilons, theirs, strict=True):
        assert math.isclose(ours[eps], acc, abs_tol=0.05), (eps, ours[eps], acc)
    assert theirs[-1] < theirs[0]  # the comparison is not vacuous


def test_pgd_random_starts_are_seeded_per_eps_and_batch(trained):
    """A resumed evaluation (some epsilons, other order, a used generator) equals a full one."""
    model, x, y = trained
    kw = {"steps": 1, "step_size": 0.0, "batch_size": 64}  # the random start alone decides
    epsilons = [4 / 255, 8 / 255, 32 / 255]
    full = adversarial_accuracy(model, x, y, eps=epsilons, generator=torch.Generator().manual_seed(5), **kw)
    used = torch.Generator().manual_seed(5)
    torch.rand(100, generator=used)  # a generator whose state has moved on
    resumed = adversarial_accuracy(model, x, y, eps=[32 / 255], generator=used, **kw)
    assert resumed[32 / 255] == full[32 / 255]
    assert adversarial_accuracy(model, x, y, eps=epsilons[::-1], seed=5, **kw) == full
    one = adversarial_examples(model, x, y, eps=32 / 255, seed=5, **kw)
    again = adversarial_examples(model, x, y, eps=32 / 255, generator=used, **kw)
    torch.testing.assert_close(one, again, rtol=0, atol=0)
    other = adversarial_examples(model, x, y, eps=32 / 255, seed=6, **kw)
    assert not torch.equal(one, other)
    # Each batch draws its own starts: batch 1 is not batch 0's stream continued.
    first = adversarial_examples(model, x[:64], y[:64], eps=32 / 255, seed=5, **kw)
    torch.testing.assert_close(one[:64], first, rtol=0, atol=0)
    assert not torch.equal(one[64:128] - x[64:128], first - x[:64])
    # FGSM has no random start: a seed is accepted and changes nothing.
    assert adversarial_accuracy(model, x, y, attack="fgsm", eps=epsilons, seed=1) == \
        adversarial_accuracy(model, x, y, attack="fgsm", eps=epsilons)


def test_a_nan_gradient_moves_nothing_instead_of_poisoning_the_image():
    """A model whose gradient is NaN on some images: FGSM and PGD return finite points in the ball."""

    class HalfNan(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(12, 3)

        def forward(self, z):
            scale = torch.ones(len(z), 1)
            scale[1::2] = float("nan")  # every other image: NaN logits and gradient
            return self.fc(z.flatten(1)) * scale

    torch.manual_seed(0)
    model, x, y = HalfNan(), torch.rand(6, 3, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    for norm in ("linf", "l2"):  # L2 divides by the gradient's norm: NaN without the guard
        gen = torch.Generator().manual_seed(0)
        for adv in (fgsm(model, x, y, 0.1, norm=norm), pgd(model, x, y, 0.1, norm=norm, steps=3, generator=gen)):
            assert torch.isfinite(adv).all(), norm
            assert float((adv - x).flatten(1).norm(dim=1).max()) <= 0.1 * math.sqrt(12) + 1e-6
        torch.testing.assert_close(fgsm(model, x, y, 0.1, norm=norm)[1::2], x[1::2], rtol=0, atol=0)  # no move
