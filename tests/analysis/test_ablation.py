"""Tests of selectivity.analysis.representations.ablation on a network whose ablations are worked out by hand.

ToyNet: hidden = ReLU(x) (three units), logits = hidden + (0.1, 0, 0). The three classes'
inputs are [2, 0, 0.5], [0, 2, 0] and [0, 0.2, 2]:

    unit  class means      SI
    0     (2, 0, 0)        1
    1     (0, 2, 0.2)      1.9 / 2.1
    2     (0.5, 0, 2)      1.75 / 2.25

Ablated units -> logits per class -> correct classes:
    {}         all correct                         [1, 1, 1]
    {0}        class 0 -> [0.1, 0, 0.5]: wrong     [0, 1, 1]
    {1}        class 1 -> [0.1, 0, 0]: wrong       [1, 0, 1]
    {2}        class 2 -> [0.1, 0.2, 0]: wrong     [1, 1, 0]
    {0, 1}     classes 0 and 1 wrong               [0, 0, 1]
    {0, 2}     class 0 -> bias: right; class 2 wrong [1, 1, 0]
    {1, 2}     classes 1 and 2 wrong               [1, 0, 0]
    {0, 1, 2}  logits = bias: every sample -> 0    [1, 0, 0]
"""

from __future__ import annotations

import doctest

import pytest
import torch
from torch import nn

from selectivity.analysis.representations import ablation
from selectivity.analysis.representations.ablation import AblationCurve, ablate_units, ablated_accuracy, ablation_curves

PER_CLASS = {
    frozenset(): [1, 1, 1],
    frozenset({0}): [0, 1, 1],
    frozenset({1}): [1, 0, 1],
    frozenset({2}): [1, 1, 0],
    frozenset({0, 1}): [0, 0, 1],
    frozenset({0, 2}): [1, 1, 0],
    frozenset({1, 2}): [1, 0, 0],
    frozenset({0, 1, 2}): [1, 0, 0],
}


class ToyNet(nn.Module):
    selectivity_layers = ("relu",)

    def __init__(self):
        super().__init__()
        self.relu = nn.ReLU()
        self.readout = nn.Linear(3, 3)
        with torch.no_grad():
            self.readout.weight.copy_(torch.eye(3))
            self.readout.bias.copy_(torch.tensor([0.1, 0.0, 0.0]))

    def forward(self, x):
        return self.readout(self.relu(x))


def _toy_data(copies: int = 4):
    inputs = torch.tensor([[2.0, 0.0, 0.5], [0.0, 2.0, 0.0], [0.0, 0.2, 2.0]])
    return inputs.repeat(copies, 1), torch.arange(3).repeat(copies)


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_doctests():
    failed, _ = doctest.testmod(ablation, extraglobs={"torch": torch, "nn": nn})
    assert failed == 0


@pytest.mark.parametrize("units", sorted(PER_CLASS, key=sorted), ids=lambda u: str(sorted(u)))
def test_ablating_known_units_kills_known_classes(units):
    model, (x, y) = ToyNet(), _toy_data()
    acc, per_class = ablated_accuracy(model, x, y, {"relu": sorted(units)})
    assert per_class.tolist() == PER_CLASS[units]
    assert acc == pytest.approx(sum(PER_CLASS[units]) / 3)
    assert hook_count(model) == 0


def test_selective_order_curve():
    model, (x, y) = ToyNet(), _toy_data()
    curves = ablation_curves(model, x, y, fractions=[0, 1 / 3, 2 / 3, 1], n_random=0)
    assert list(curves) == ["relu"]  # the model's default layers
    curve = curves["relu"]
    assert isinstance(curve, AblationCurve)
    torch.testing.assert_close(curve.si, torch.tensor([1.0, 1.9 / 2.1, 1.75 / 2.25], dtype=torch.float64))
    assert curve.n_units.tolist() == [0, 1, 2, 3]
    torch.testing.assert_close(curve.selective, torch.tensor([1, 2 / 3, 1 / 3, 1 / 3], dtype=torch.float64))
    assert curve.selective_per_class.tolist() == [[1, 1, 1], [0, 1, 1], [0, 0, 1], [1, 0, 0]]
    assert curve.clean == 1.0 and curve.clean_per_class.tolist() == [1, 1, 1]
    assert curve.selective_class_drop.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 1]]
    assert curve.random.shape == (0, 4)
    assert hook_count(model) == 0


def test_given_si_sets_the_order():
    model, (x, y) = ToyNet(), _toy_data()
    curve = ablation_curves(model, x, y, si={"relu": torch.tensor([0.0, 0.5, 0.9])}, fractions=[0.34], n_random=0)[
        "relu"
    ]
    assert curve.selective_per_class.tolist() == [PER_CLASS[frozenset({2})]]


def test_random_orders_are_the_control():
    model, (x, y) = ToyNet(), _toy_data()
    fractions = [0.0, 1 / 3, 2 / 3, 1.0]
    curve = ablation_curves(model, x, y, fractions=fractions, n_random=6, generator=torch.Generator().manual_seed(5))[
        "relu"
    ]
    gen = torch.Generator().manual_seed(5)
    orders = [torch.randperm(3, generator=gen).tolist() for _ in range(6)]
    expected = torch.tensor(
        [[sum(PER_CLASS[frozenset(order[:k])]) / 3 for k in range(4)] for order in orders], dtype=torch.float64
    )
    torch.testing.assert_close(curve.random, expected)
    torch.testing.assert_close(curve.random_mean, expected.mean(0))
    torch.testing.assert_close(curve.random_std, expected.std(0))
    assert curve.random_per_class.shape == (6, 4, 3)
    torch.testing.assert_close(curve.random_class_drop, 1 - curve.random_per_class.mean(0))


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 3, 2)])
def test_mask_zeroes_exactly_the_chosen_channels(shape):
    net = nn.Sequential(nn.Identity(), nn.Identity())
    x = torch.rand(shape) + 1
    with ablate_units(net, {"0": [1, 3]}):
        out = net(x)
        assert hook_count(net) == 1
    assert hook_count(net) == 0
    assert bool((out[:, [1, 3]] == 0).all())
    keep = [0, 2, 4]
    assert torch.equal(out[:, keep], x[:, keep])
    with ablate_units(net, {"0": torch.tensor([0]), "1": [4]}):
        out = net(x)
    assert bool((out[:, [0, 4]] == 0).all()) and torch.equal(out[:, 1:4], x[:, 1:4])
    assert torch.equal(net(x), x)  # hooks gone


def test_hooks_removed_after_exceptions():
    net = nn.Sequential(nn.Identity(), nn.ReLU())
    with pytest.raises(RuntimeError, match="inside"), ablate_units(net, {"0": [0]}):
        raise RuntimeError("inside")
    assert hook_count(net) == 0
    with pytest.raises(ValueError, match="has 3 units"), ablate_units(net, {"0": [5]}):
        net(torch.ones(2, 3))
    assert hook_count(net) == 0
    with pytest.raises(ValueError, match="non-negative"), ablate_units(net, {"0": [0], "1": [-1]}):
        pass
    assert hook_count(net) == 0
    with pytest.raises(ValueError, match="matches 2 modules"), ablate_units(net, {"*": [0]}):
        pass
    assert hook_count(net) == 0


def test_mode_restored_and_errors():
    model, (x, y) = ToyNet().train(), _toy_data()
    ablation_curves(model, x, y, fractions=[0, 1], n_random=1)
    assert model.training
    with pytest.raises(ValueError, match="fractions"):
        ablation_curves(model, x, y, fractions=[1.5])
    with pytest.raises(ValueError, match="no values"):
        ablation_curves(model, x, y, si={"other": torch.zeros(3)})
    with pytest.raises(ValueError, match="equal length"):
        ablation_curves(model, x, y[:-1])


def test_on_a_zoo_resnet():
    from selectivity.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet_demo", num_classes=3)
    x, y = torch.rand(12, 3, 32, 32), torch.arange(3).repeat(4)
    curves = ablation_curves(model, x, y, fractions=[0, 1], n_random=1, batch_size=5)
    assert list(curves) == list(model.selectivity_layers)
    # With every unit of the last block silenced, the logits are the fc bias for every image.
    last = curves[model.selectivity_layers[-1]]
    expected = float((y == int(model.fc.bias.argmax())).double().mean())
    assert last.selective[-1].item() == pytest.approx(expected)
    assert last.random[0, -1].item() == pytest.approx(expected)
    assert hook_count(model) == 0
