"""Tests of selectivity.analysis.attacks.masking: each check on hand-made per-image outcomes, and the gradient probe."""

from __future__ import annotations

import doctest
import math

import pytest
import torch
from torch import nn

from selectivity.analysis.attacks import masking
from selectivity.analysis.attacks.masking import dead_gradients, masking_flags

T, F = True, False


def _b(*bits):
    return torch.tensor(bits)


def _flags(robust, clean, dead=None):
    return {(f.eps, f.check): f for f in masking_flags(robust, _b(*clean), dead)}


def test_doctests():
    failed, _ = doctest.testmod(masking, extraglobs={"torch": torch, "nn": nn})
    assert failed == 0


def test_blackbox_counts_images_only_square_fooled():
    clean = [T] * 10
    robust = {
        "pgd": {0.1: _b(T, T, T, T, T, F, F, F, F, F)},
        "apgd-ce": {0.1: _b(T, T, T, F, F, F, F, F, F, F)},  # white-box worst: images 0, 1, 2 survive
        "square": {0.1: _b(F, T, T, T, T, F, F, F, F, F)},  # Square fools image 0 (and 3, 4: not counted)
    }
    flag = _flags(robust, clean)[(0.1, "blackbox")]
    assert flag.value == pytest.approx(0.1) and flag.flagged  # 1 of 10 > 2%
    assert "1 of 10 images" in flag.detail and "pgd, apgd-ce" in flag.detail
    robust["square"][0.1] = _b(T, T, T, F, F, F, F, F, F, F)
    assert _flags(robust, clean)[(0.1, "blackbox")].flagged is False
    assert _flags({"square": {0.1: _b(*[T] * 10)}}, clean)[(0.1, "blackbox")].flagged is None  # no white-box


def test_epsilon_check_compares_each_radius_with_the_next_smaller():
    clean = [T, T, T, T, F]  # clean accuracy 0.8
    robust = {"fgsm": {0.01: _b(T, T, T, F, F), 0.02: _b(T, T, T, F, F), 0.04: _b(F, F, F, F, F),
                       0.08: _b(F, F, F, F, F)}}
    flags = _flags(robust, clean)
    assert flags[(0.01, "epsilon")].flagged is False and flags[(0.01, "epsilon")].value == pytest.approx(0.2)
    assert flags[(0.02, "epsilon")].flagged is True and flags[(0.02, "epsilon")].value == pytest.approx(0.0)
    assert flags[(0.04, "epsilon")].flagged is False
    assert flags[(0.08, "epsilon")].flagged is False  # already 0: nothing left to fall
    # 1 image of 40 left at both radii: at or below the floor of 5%, not a sign of masking
    one = _b(T, *[F] * 39)
    assert _flags({"pgd": {0.01: one, 0.02: one}}, [T] * 40)[(0.02, "epsilon")].flagged is False
    three = _b(T, T, T, *[F] * 37)
    assert _flags({"pgd": {0.01: three, 0.02: three}}, [T] * 40)[(0.02, "epsilon")].flagged is True
    # worse at a larger radius than at a smaller one: flagged, with the rise in the numbers
    robust = {"pgd": {0.01: _b(T, F, F, F, F), 0.02: _b(T, T, F, F, F)}}
    flag = _flags(robust, clean)[(0.02, "epsilon")]
    assert flag.flagged and flag.value == pytest.approx(-0.2) and "fell by -0.200" in flag.detail


def test_a_model_at_chance_is_never_called_masked():
    """A plain, weak model whose robust accuracy sits at chance (10 classes: it keeps about a tenth of the
    images at every radius, as a model that predicts one class would): the epsilon check's floor follows
    the chance level and its noise over the images, so it is not flagged. Far above chance it still is."""
    from selectivity.analysis.attacks.masking import chance_floor

    n = 200
    labels = torch.arange(n) % 10
    floor = chance_floor(labels, 10)
    assert floor == pytest.approx(0.1 + 3 * math.sqrt(0.1 * 0.9 / n))
    at_chance = _b(*[T] * 22, *[F] * (n - 22))  # 0.11 at 2/255 and at 8/255
    robust = {"pgd": {2 / 255: at_chance, 8 / 255: at_chance}}
    flags = {(f.eps, f.check): f for f in masking_flags(robust, _b(*[T] * 25, *[F] * (n - 25)), floor=floor)}
    assert flags[(8 / 255, "epsilon")].flagged is False
    assert {(f.eps, f.check): f for f in masking_flags(robust, _b(*[T] * 25, *[F] * (n - 25)))}[
        (8 / 255, "epsilon")].flagged is True  # the old fixed floor of 5% called it masked
    # The most common class sets chance when the images are not balanced: 40% of one class.
    skewed = torch.tensor([0] * 80 + [1] * 60 + [2] * 60)
    assert chance_floor(skewed, 3) == pytest.approx(0.4 + 3 * math.sqrt(0.4 * 0.6 / 200))
    stuck = _b(*[T] * 100, *[F] * (n - 100))  # 0.5 at both radii: far above chance, still flagged
    flags = {(f.eps, f.check): f for f in masking_flags({"pgd": {2 / 255: stuck, 8 / 255: stuck}},
                                                        _b(*[T] * 150, *[F] * 50), floor=floor)}
    assert flags[(8 / 255, "epsilon")].flagged is True


def test_apgd_vs_pgd_uses_apgd_ce_else_apgd_t():
    clean = [T] * 20
    pgd = _b(*[T] * 10, *[F] * 10)  # 0.5
    ce = _b(*[T] * 9, *[F] * 11)  # 0.45: lower by 0.05, not more
    targeted = _b(*[T] * 5, *[F] * 15)  # 0.25
    flags = _flags({"pgd": {0.1: pgd}, "apgd-ce": {0.1: ce}, "apgd-dlr": {0.1: targeted}}, clean)
    assert flags[(0.1, "apgd-vs-pgd")].flagged is False and flags[(0.1, "apgd-vs-pgd")].value == pytest.approx(0.05)
    flags = _flags({"pgd": {0.1: pgd}, "apgd-dlr": {0.1: targeted}}, clean)
    assert flags[(0.1, "apgd-vs-pgd")].flagged is True and "apgd-dlr 0.250" in flags[(0.1, "apgd-vs-pgd")].detail
    flag = _flags({"pgd": {0.1: pgd}}, clean)[(0.1, "apgd-vs-pgd")]
    assert flag.flagged is None and math.isnan(flag.value) and "not checked" in flag.detail


def test_gradient_share():
    clean = [T] * 20
    dead = {0.1: _b(T, *[F] * 19), 0.2: _b(T, T, *[F] * 18)}
    robust = {"fgsm": {0.1: _b(*clean), 0.2: _b(*clean)}}
    flags = _flags(robust, clean, dead)
    assert flags[(0.1, "gradient")].flagged is False  # 5%: not above
    assert flags[(0.2, "gradient")].flagged is True and flags[(0.2, "gradient")].value == pytest.approx(0.1)
    assert _flags(robust, clean)[(0.1, "gradient")].flagged is None


class Rounded(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        return self.fc(torch.round(x * 3).flatten(1) / 3)


def test_dead_gradients_sees_a_flat_model_and_nan():
    torch.manual_seed(0)
    x, y = torch.rand(6, 3, 2, 2), torch.tensor([0, 1, 2, 3, 0, 1])
    assert dead_gradients(Rounded(), x, y, 4 / 255).all()
    assert not dead_gradients(nn.Sequential(nn.Flatten(), nn.Linear(12, 4)), x, y, 4 / 255).any()

    class HalfNan(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(12, 4)

        def forward(self, z):
            scale = torch.ones(len(z), 1)
            scale[1::2] = float("nan")  # every other image's logits, and so its gradient, are NaN
            return self.fc(z.flatten(1)) * scale

    assert dead_gradients(HalfNan(), x, y, 0.0).tolist() == [False, True] * 3
