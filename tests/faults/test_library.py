"""Library faults: a batch of a single class has no contrast; SI 0 is said, once, not silent."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from selectivity.core import SelectivityMeter, SelectivityRegularizer, class_means, selectivity_index


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU())


def test_functional_single_class_warns():
    acts = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    with pytest.warns(RuntimeWarning, match="holds 1 class.*at least two to contrast"):
        si = selectivity_index(class_means(acts, torch.tensor([2, 2]), 3))
    assert si.tolist() == [0.0, 0.0]


def test_functional_two_classes_say_nothing():
    acts = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        si = selectivity_index(class_means(acts, torch.tensor([0, 1]), 3))
    # hand-computed: unit 0 means (1, 3): (3-1)/(3+1); unit 1 means (2, 0): (2-0)/(2+0)
    assert si.tolist() == pytest.approx([0.5, 1.0], rel=1e-6)


def test_regularizer_warns_once_per_object():
    net = _net()
    reg = SelectivityRegularizer(net, alpha=1.0, num_classes=3, layers="1", schedule=None)
    x = torch.rand(4, 3)
    with pytest.warns(RuntimeWarning, match="batch of 4 labels holds 1 class") as record:
        for _ in range(3):
            net(x)
            loss = reg.loss(torch.tensor([1, 1, 1, 1]))
    assert sum("contrast" in str(w.message) for w in record) == 1
    assert loss.item() == 0.0  # SI 0, as documented
    # a second regularizer on the same model says it again: once per object
    reg.close()
    reg2 = SelectivityRegularizer(net, alpha=1.0, num_classes=3, layers="1", schedule=None)
    with pytest.warns(RuntimeWarning, match="holds 1 class"):
        net(x)
        reg2.loss(torch.tensor([0, 0, 0, 0]))


def test_regularizer_with_check_off_stays_quiet_and_sync_free():
    # check=False is the training hot path: no host sync, hence no warning either.
    net = _net()
    reg = SelectivityRegularizer(net, alpha=1.0, num_classes=3, layers="1", schedule=None, check=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net(torch.rand(4, 3))
        reg.loss(torch.tensor([1, 1, 1, 1]))


def test_meter_warns_when_the_data_seen_has_one_class():
    net = _net()
    with SelectivityMeter(net, num_classes=3, layers="1") as meter:
        meter.update(torch.rand(5, 3), torch.full((5,), 2))
        with pytest.warns(RuntimeWarning, match=r"data seen \(5 samples\) holds 1 class"):
            result = meter.compute()
        assert result.mean == 0.0
        # single-class batches that add up to two classes are fine: no warning
        meter.reset()
        meter.update(torch.rand(5, 3), torch.full((5,), 2))
        meter.update(torch.rand(5, 3), torch.full((5,), 0))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            meter.compute()
