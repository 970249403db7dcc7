"""Tests of APGD (selectivity.analysis.apgd) and the Square attack (selectivity.analysis.square).

Exact checks use a multi-class linear model, whose robust accuracy in the L-inf ball has a
closed form: for each wrong class k the margin (w_y - w_k).x + (b_y - b_k) can fall by at most
eps ||w_y - w_k||_1 (clipping never binds for inputs in [0.3, 0.7] and eps <= 0.2), so an
image is robust iff every such worst-case margin stays positive. No attack may report less
(that would be a point outside the ball); a complete attack reports exactly that.

The reference implementation is AutoAttack's own code (``pyautoattack``, the authors' package,
a test dependency), run on the same small trained CNN: ours is written from the papers, so
agreement is a check of both.
"""

from __future__ import annotations

import doctest
import importlib.util

import pytest
import torch
from torch import nn

from selectivity.analysis import apgd as apgd_module
from selectivity.analysis import square as square_module
from selectivity.analysis.apgd import apgd_ce, apgd_checkpoints, apgd_t, targeted_dlr_loss
from selectivity.analysis.attacks import adversarial_accuracy, robust_images
from selectivity.analysis.square import margin_loss, square, square_fraction

HAS_AUTOATTACK = importlib.util.find_spec("pyautoattack") is not None


# -- fixtures -------------------------------------------------------------------------------
def _linear_problem(classes: int = 4, dim: int = 3 * 4 * 4, n: int = 96, seed: int = 0):
    """A float64 linear model on (3, 4, 4) images in [0.3, 0.7], and its exact robust accuracy per eps."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(dim, classes)).double()
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(classes, dim, generator=g, dtype=torch.float64) * 0.3)
        model[1].bias.zero_()
    x = 0.3 + 0.4 * torch.rand(n, 3, 4, 4, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)  # every image right at eps = 0
        flip = torch.arange(n) % 7 == 0
        y[flip] = (y[flip] + 1) % classes  # and a few wrong

    def exact(eps: float) -> float:
        w, b = model[1].weight.detach(), model[1].bias.detach()
        robust = []
        for i in range(n):
            margins = []
            for k in range(classes):
                if k == int(y[i]):
                    continue
                diff = w[int(y[i])] - w[k]
                margins.append(float(diff @ x[i].flatten() + b[int(y[i])] - b[k] - eps * diff.abs().sum()))
            robust.append(min(margins) > 0)
        return sum(robust) / n

    return model, x, y, exact


def _four_class_images(n: int, seed: int, dtype=torch.float32):
    """Four classes of 3x16x16 images: a smooth class template plus noise, in [0, 1]."""
    g = torch.Generator().manual_seed(4321)
    templates = nn.functional.avg_pool2d(torch.randn(4, 3, 16, 16, generator=g), 3, 1, 1)
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = 0.5 + 0.25 * templates[y] + 0.2 * torch.randn(n, 3, 16, 16, generator=g)
    return x.clamp(0, 1).to(dtype), y


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 4):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def _train(dtype) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = SmallCNN().to(dtype)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = _four_class_images(1024, seed=1, dtype=dtype)
    for step in range(80):
        idx = torch.arange(step * 64, step * 64 + 64) % 1024
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    x_test, y_test = _four_class_images(128, seed=2, dtype=dtype)
    return model, x_test, y_test


@pytest.fixture(scope="module")
def trained64():
    """Trained in float64: the end state is the same on every machine."""
    return _train(torch.float64)


@pytest.fixture(scope="module")
def trained32():
    return _train(torch.float32)


def test_doctests():
    for module in (apgd_module, square_module):
        failed, _ = doctest.testmod(module, extraglobs={"torch": torch, "nn": nn})
        assert failed == 0, module.__name__


# -- the papers' schedules, by hand -----------------------------------------------------------
def test_apgd_checkpoints_follow_the_paper():
    # p: 0, 0.22, then + max(previous gap - 0.03, 0.06): 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (1.05 > 1)
    assert apgd_checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_checkpoints(10) == [0, 3, 5, 6, 7, 8, 9, 10]  # ceil(4.1) = 5, ceil(8.7) = 9, ceil(9.3) = 10
    assert apgd_checkpoints(1) == [0, 1]


def test_square_schedule_halves_at_the_papers_points():
    # budget 10,000: p halves after queries 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000
    assert [square_fraction(q, 10_000, 0.8) for q in (10, 11, 50, 51, 200, 201, 8000, 8001)] == [
        0.8, 0.4, 0.4, 0.2, 0.2, 0.1, 0.8 / 2 ** 8, 0.8 / 2 ** 9]
    # budget 100: the same points scaled by 100 / 10,000 (query 1 is query 100 of 10,000)
    assert square_fraction(1, 100, 0.8) == 0.8 / 4
    assert square_fraction(100, 100, 0.5) == 0.5 / 2 ** 9


def test_losses_by_hand():
    logits = torch.tensor([[1.0, 5.0, 3.0, 2.0, 0.0]])
    y, t = torch.tensor([1]), torch.tensor([2])
    # sorted 5, 3, 2, 1, 0: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2) = -(5 - 3) / (5 - 1.5)
    assert float(targeted_dlr_loss(logits, y, t)) == pytest.approx(-2 / 3.5)
    # invariant to a shift and a positive scale of the logits: a saturated softmax hides nothing
    assert float(targeted_dlr_loss(7 * logits - 3, y, t)) == pytest.approx(-2 / 3.5)
    assert float(margin_loss(logits, torch.tensor([2]))) == -2.0  # z_2 - max of the others
    assert float(margin_loss(logits, y)) == 2.0


# -- exactness and soundness on a linear model --------------------------------------------------
@pytest.mark.parametrize("eps", [0.01, 0.03, 0.06])
def test_attacks_on_a_linear_model_never_beat_the_exact_worst_case(eps):
    model, x, y, exact = _linear_problem()
    truth = exact(eps)
    assert 0.1 < truth < 0.9  # not vacuous
    kw = {"eps": [eps], "batch_size": 40, "seed": 0}
    ce = adversarial_accuracy(model, x, y, "apgd-ce", steps=30, **kw)[eps]
    targeted = adversarial_accuracy(model, x, y, "apgd-dlr", steps=30, **kw)[eps]
    black = adversarial_accuracy(model, x, y, "square", queries=200, **kw)[eps]
    assert targeted == pytest.approx(truth)  # every other class targeted: the exact worst case
    assert truth <= ce <= truth + 0.05
    assert truth <= black  # a black-box search finds no point outside the ball either


@pytest.mark.parametrize("attack", [apgd_ce, apgd_t, square])
def test_outputs_within_the_ball_and_in_range(trained32, attack):
    model, x, y = trained32
    x = x[:32].clone()
    x[:, 0, :4] = 0.0  # pixels on the borders of [0, 1], where clipping binds
    x[:, 1, :4] = 1.0
    eps = 8 / 255
    kwargs = {"queries": 40} if attack is square else {"steps": 5}
    adv = attack(model, x, y[:32], eps, generator=torch.Generator().manual_seed(0), **kwargs)
    delta = (adv - x).abs().flatten(1).amax(dim=1)
    assert float(delta.max()) <= eps * (1 + 1e-6) and float(delta.max()) > 0.5 * eps
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    again = attack(model, x, y[:32], eps, generator=torch.Generator().manual_seed(0), **kwargs)
    assert torch.equal(adv, again)  # seeded


# -- behaviour on a trained CNN ---------------------------------------------------------------
def test_apgd_ce_at_least_as_strong_as_pgd_and_worst_at_most_each(trained64):
    """The issue's acceptance inequalities, in float64 (the trained state is the same everywhere)."""
    model, x, y = trained64
    epsilons = [1 / 255, 2 / 255, 4 / 255, 8 / 255]
    kw = {"eps": epsilons, "batch_size": 64, "seed": 0}
    robust = {
        "fgsm": robust_images(model, x, y, "fgsm", **kw),
        "pgd": robust_images(model, x, y, "pgd", **kw),
        "apgd-ce": robust_images(model, x, y, "apgd-ce", steps=25, **kw),
        "apgd-dlr": robust_images(model, x, y, "apgd-dlr", steps=10, **kw),
        "square": robust_images(model, x, y, "square", queries=100, **kw),
    }
    acc = {a: {e: float(r[e].double().mean()) for e in epsilons} for a, r in robust.items()}
    assert acc["pgd"][8 / 255] < acc["pgd"][1 / 255] - 0.2, acc  # the attacks bite: not vacuous
    for e in epsilons:
        assert acc["apgd-ce"][e] <= acc["pgd"][e] + 0.005, (e, acc)
        worst = float(torch.stack([r[e] for r in robust.values()]).all(dim=0).double().mean())
        assert all(worst <= acc[a][e] for a in acc), (e, worst, acc)


def test_square_respects_its_budget_and_needs_no_gradient(trained32):
    model, x, y = trained32

    class NoGradient(nn.Module):
        """The trained model behind a wall: any forward with autograd on fails."""

        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, z):
            assert not torch.is_grad_enabled(), "the Square attack must not take gradients"
            return self.net(z)

    wrapper = NoGradient()
    seen = []
    wrapper.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    queries = 30
    adv = square(wrapper, x, y, 8 / 255, queries=queries, generator=torch.Generator().manual_seed(1))
    # One call per query, each on the images still right (never one twice): at most `queries` per image.
    assert seen[0] == len(y) and len(seen) <= queries and all(s <= len(y) for s in seen[1:])
    assert seen[-1] < len(y)  # images drop out once fooled
    with torch.no_grad():
        fooled = model(adv).argmax(1) != y
        clean_right = model(x).argmax(1) == y
    assert int((fooled & clean_right).sum()) > 0  # it finds adversarial examples without gradients


def test_apgd_t_needs_four_classes():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with pytest.raises(ValueError, match="at least 4 classes"):
        apgd_t(model, torch.rand(2, 3, 2, 2), torch.tensor([0, 1]), 0.1)


@pytest.mark.parametrize("attack, kwargs, message", [
    (apgd_ce, {"steps": 0}, "steps"),
    (apgd_ce, {"norm": "l2"}, "L-inf only"),
    (square, {"queries": 0}, "queries"),
    (square, {"p_init": 0.0}, "p_init"),
    (square, {"norm": "l2"}, "L-inf only"),
])
def test_bad_parameters(attack, kwargs, message):
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
    with pytest.raises(ValueError, match=message):
        attack(model, torch.rand(2, 3, 2, 2), torch.tensor([0, 1]), 0.1, **kwargs)


# -- the cross-check against AutoAttack's own code ------------------------------------------------
def _reference_accuracy(model, x, y, adv) -> float:
    with torch.no_grad():
        return float(((model(adv).argmax(1) == y) & (model(x).argmax(1) == y)).double().mean())


@pytest.mark.skipif(not HAS_AUTOATTACK, reason="pyautoattack is not installed (pip install pyautoattack)")
@pytest.mark.parametrize("eps", [4 / 255, 8 / 255])
def test_agrees_with_autoattacks_reference_code(trained32, eps):
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
    from pyautoattack.square import SquareAttack

    model, x, y = trained32
    clean = _reference_accuracy(model, x, y, x)
    ref = {}
    ce = APGDAttack(model, n_iter=50, norm="Linf", n_restarts=1, eps=eps, seed=0, loss="ce", device="cpu")
    ref["apgd-ce"] = _reference_accuracy(model, x, y, ce.perturb(x, y))
    targeted = APGDAttack_targeted(model, n_iter=50, norm="Linf", n_restarts=1, eps=eps, seed=0, device="cpu")
    targeted.n_target_classes = 3
    ref["apgd-dlr"] = _reference_accuracy(model, x, y, targeted.perturb(x, y))
    sq = SquareAttack(model, p_init=0.8, n_queries=300, eps=eps, norm="Linf", n_restarts=1, seed=0, device="cpu")
    ref["square"] = _reference_accuracy(model, x, y, sq.perturb(x, y))
    ours = {
        "apgd-ce": adversarial_accuracy(model, x, y, "apgd-ce", eps=[eps], steps=50, seed=0)[eps],
        "apgd-dlr": adversarial_accuracy(model, x, y, "apgd-dlr", eps=[eps], steps=50, targets=3, seed=0)[eps],
        "square": adversarial_accuracy(model, x, y, "square", eps=[eps], queries=300, seed=0)[eps],
    }
    # APGD is deterministic up to its random start: within 3 images of 128; Square is a random
    # search: within 8 (its spread over seeds here is about 3 images).
    for name, tol in (("apgd-ce", 3 / 128), ("apgd-dlr", 3 / 128), ("square", 8 / 128)):
        assert abs(ours[name] - ref[name]) <= tol + 1e-9, (name, eps, ours, ref)
        assert ref[name] < clean - 0.1  # the comparison is not vacuous
