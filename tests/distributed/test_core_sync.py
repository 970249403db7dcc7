"""The selectivity term, batch norm and the meter over 2 gloo processes equal one process."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from selectivity.core import MonoLossRegularizer, SelectivityMeter, SelectivityRegularizer
from selectivity.core.distributed import CollectiveError, SyncBatchNormCPU

from .ranks import run_ranks

N, D, U, C = 12, 5, 7, 4


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=g)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 1, 2, 0, 3, 3, 1])
    return x, y


def _net():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(D, U), nn.ReLU())


def _reg_step(net, x, y, sync):
    reg = SelectivityRegularizer(net, alpha=-2.0, num_classes=C, layers="1", schedule=None, sync=sync)
    net(x)
    loss = reg.loss(y)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in net.parameters()]


def _rank_reg(rank, world, sync):
    x, y = _data()
    net = _net()
    half = slice(rank * N // world, (rank + 1) * N // world)
    loss, grads = _reg_step(net, x[half], y[half], sync)
    for g in grads:  # what DDP does: average the gradients over the ranks
        torch.distributed.all_reduce(g)
        g /= world
    return loss, grads


def test_global_sync_gives_the_loss_and_gradient_of_the_whole_batch(tmp_path):
    x, y = _data()
    loss, grads = _reg_step(_net(), x, y, "global")
    for rank_loss, rank_grads in run_ranks(_rank_reg, 2, tmp_path, "global"):
        assert rank_loss == pytest.approx(loss, rel=1e-6)
        for a, b in zip(rank_grads, grads):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def _mono_step(net, x, y):
    reg = MonoLossRegularizer(net, 0.5, num_classes=C, layers="1", schedule=None)
    net(x)
    loss = reg.loss(y)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in net.parameters()]


def _rank_mono(rank, world):
    torch.set_default_dtype(torch.float64)
    x, y = _data()
    net = _net()
    half = slice(rank * N // world, (rank + 1) * N // world)
    loss, grads = _mono_step(net, x[half], y[half])
    for g in grads:
        torch.distributed.all_reduce(g)
        g /= world
    return loss, grads


def test_monoloss_global_sync_gives_the_loss_and_gradient_of_the_whole_batch(tmp_path):
    """The batch's min and max live on one rank each: their gradient must reach only that rank."""
    torch.set_default_dtype(torch.float64)
    try:
        x, y = _data()
        loss, grads = _mono_step(_net(), x, y)
    finally:
        torch.set_default_dtype(torch.float32)
    for rank_loss, rank_grads in run_ranks(_rank_mono, 2, tmp_path):
        assert rank_loss == pytest.approx(loss, rel=1e-12)
        for a, b in zip(rank_grads, grads):
            # DDP averages over 2 ranks while the whole-batch loss is not divided: the same gradient
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_local_sync_is_the_per_rank_estimator(tmp_path):
    x, y = _data()
    halves = [_reg_step(_net(), x[s], y[s], "local")[0] for s in (slice(0, N // 2), slice(N // 2, N))]
    losses = [loss for loss, _ in run_ranks(_rank_reg, 2, tmp_path, "local")]
    assert losses == pytest.approx(halves, rel=1e-6)
    assert losses != pytest.approx([_reg_step(_net(), x, y, "global")[0]] * 2, rel=1e-3)


def _upstream():
    return torch.arange(6 * 3 * 4 * 4).view(6, 3, 4, 4).float().sin()


def _bn_rank(rank, world):
    torch.manual_seed(3)
    x = torch.randn(6, 3, 4, 4) * 2 + 1
    bn = SyncBatchNormCPU(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
    part = x[rank * 3 : (rank + 1) * 3].requires_grad_(True)
    out = bn(part)
    (out * _upstream()[rank * 3 : (rank + 1) * 3]).sum().backward()
    for p in bn.parameters():
        torch.distributed.all_reduce(p.grad)
    return out.detach(), part.grad, bn.weight.grad, bn.running_mean, bn.running_var


def test_sync_batchnorm_on_cpu_equals_batchnorm_of_the_whole_batch(tmp_path):
    torch.manual_seed(3)
    x = (torch.randn(6, 3, 4, 4) * 2 + 1).requires_grad_(True)
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
    out = bn(x)
    (out * _upstream()).sum().backward()
    ranks = run_ranks(_bn_rank, 2, tmp_path)
    torch.testing.assert_close(torch.cat([r[0] for r in ranks]), out.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat([r[1] for r in ranks]), x.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ranks[0][2], bn.weight.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ranks[0][3], bn.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ranks[0][4], bn.running_var, rtol=1e-5, atol=1e-6)


def _meter_data():
    g = torch.Generator().manual_seed(5)
    acts = torch.rand(10, 6, generator=g)
    acts[:, 2] = 0.0  # a dead unit
    acts[5, 4], acts[:5, 4], acts[6:, 4] = 1.0, 0.0, 0.0  # a unit that fires on rank 1's share only
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 3, 3])
    return acts, labels


def _meter_rank(rank, world):
    acts, labels = _meter_data()
    meter = SelectivityMeter(None, num_classes=C)
    if rank == 0:  # a padding sampler gave rank 0 the first 3 samples again: masked out
        meter.update_activations({"l": acts[:4]}, labels[:4])
        meter.update_activations({"l": acts[:3]}, labels[:3], mask=torch.zeros(3, dtype=torch.bool))
    elif rank == 1:
        meter.update_activations({"l": acts[4:]}, labels[4:], mask=torch.ones(6, dtype=torch.bool))
    # rank 2 saw no sample and still joins
    result = meter.compute()
    return result.per_unit["l"], result.counts, result.class_means["l"], result.dead["l"], result.monoscore["l"]


def test_sharded_meter_equals_one_process_with_an_empty_rank_and_padding(tmp_path):
    acts, labels = _meter_data()
    one = SelectivityMeter(None, num_classes=C)
    one.update_activations({"l": acts}, labels)
    expected = one.compute()
    assert expected.dead["l"].tolist() == [False, False, True, False, False, False]
    for si, counts, means, dead, mono in run_ranks(_meter_rank, 3, tmp_path):
        torch.testing.assert_close(si, expected.per_unit["l"], rtol=1e-12, atol=1e-12)
        # MonoScore needs the global min and max (an empty rank holds +inf / -inf): the same as one process
        torch.testing.assert_close(mono, expected.monoscore["l"], rtol=1e-12, atol=1e-12, equal_nan=True)
        assert torch.equal(dead, expected.dead["l"])
        assert counts.tolist() == [2, 2, 2, 4]
        torch.testing.assert_close(means, expected.class_means["l"])


def _lone_rank(rank, world, flag):
    if rank == 0:
        meter = SelectivityMeter(None, num_classes=C)
        meter.update_activations({"l": torch.rand(4, 3)}, torch.tensor([0, 1, 2, 3]))
        try:
            meter.compute(timeout=1.0)
        except CollectiveError as err:
            return str(err)
        finally:
            flag.touch()
        return "no error"
    while not flag.exists():  # rank 1 never calls compute(); it stays alive until rank 0 gave up
        time.sleep(0.05)
    return None


def test_a_lone_compute_ends_with_a_clear_error(tmp_path):
    message, _ = run_ranks(_lone_rank, 2, tmp_path, tmp_path / "done", timeout=30)
    assert "every rank must call it" in message and "SelectivityMeter.compute()" in message
