import pytest
import torch
import torch.nn.functional as F

import selectivity.core.probe as probe_module
from selectivity import EpochWindow, LinearWarmup, Probe, SelectivityRegularizer, class_means, selectivity_index

from .models import SmallConvNet, TinyResNet, hook_count


def test_loss_is_minus_alpha_times_mean_over_layers_of_mean_si():
    torch.manual_seed(0)
    net = TinyResNet(num_classes=5)
    x, y = torch.rand(16, 3, 6, 6), torch.arange(16) % 3  # classes 3 and 4 absent
    with torch.no_grad():
        h1 = net.layer1(net.stem(x))
        h2 = net.layer2(h1)
    expected = torch.stack(
        [selectivity_index(class_means(h.mean(dim=(2, 3)), y, 5)).mean() for h in (h1, h2)]
    ).mean()
    with SelectivityRegularizer(net, alpha=-2.0, num_classes=5, schedule=None) as reg:
        net(x)
        loss = reg.loss(y)
    torch.testing.assert_close(loss, 2.0 * expected)
    torch.testing.assert_close(reg.last_selectivity, expected)
    assert reg.last_per_layer.shape == (2,)


def test_alpha_zero_captures_nothing(monkeypatch):
    calls = []
    monkeypatch.setattr(probe_module, "unit_activations", lambda *a: calls.append(a))
    net = TinyResNet()
    reg = SelectivityRegularizer(net, alpha=0.0, num_classes=4, schedule=None)
    out = net(torch.rand(4, 3, 6, 6))
    loss = reg.loss(torch.tensor([0, 1, 2, 3]))
    assert calls == [] and reg.probe.activations == {}
    assert loss.item() == 0.0 and not loss.requires_grad
    out.sum().backward()


def test_evaluation_without_grad_captures_nothing():
    net = TinyResNet()
    reg = SelectivityRegularizer(net, alpha=1.0, num_classes=4, schedule=None)
    with torch.no_grad():
        net(torch.rand(4, 3, 6, 6))
    assert reg.probe.activations == {}


def test_linear_warmup_counts_epochs_from_steps():
    net = TinyResNet()
    reg = SelectivityRegularizer(net, alpha=-4.0, num_classes=4, schedule=LinearWarmup(2), steps_per_epoch=4)
    seen = []
    for _ in range(10):
        seen.append(reg.current_alpha)
        net(torch.rand(4, 3, 6, 6))
        reg.loss(torch.tensor([0, 1, 2, 3]))
    assert seen == [0.0, -0.5, -1.0, -1.5, -2.0, -2.5, -3.0, -3.5, -4.0, -4.0]
    reg.set_epoch(0.5)  # resuming: the schedule follows
    assert reg.step == 2 and reg.current_alpha == -1.0


def test_warmup_without_epoch_information_is_a_clear_error():
    net = TinyResNet()
    reg = SelectivityRegularizer(net, alpha=1.0, num_classes=4)  # default: 5-epoch warm-up
    net(torch.rand(4, 3, 6, 6))
    with pytest.raises(ValueError, match="steps_per_epoch=len"):
        reg.loss(torch.tensor([0, 1, 2, 3]))
    reg.set_epoch(2.5)
    assert reg.current_alpha == 0.5
    reg = SelectivityRegularizer(TinyResNet(), alpha=1.0, num_classes=4, schedule=EpochWindow(1, 3))
    for epoch, active in [(0, False), (1, True), (2.9, True), (3, False)]:
        reg.set_epoch(epoch)
        assert reg.probe.enabled is active and reg.current_alpha == (1.0 if active else 0.0)


def test_labels_must_belong_to_the_last_pass():
    net = TinyResNet()
    reg = SelectivityRegularizer(net, alpha=1.0, num_classes=4, schedule=None)
    net(torch.rand(4, 3, 6, 6))
    with pytest.raises(ValueError, match="captured 4 samples but 3 labels"):
        reg.loss(torch.tensor([0, 1, 2]))
    net(torch.rand(4, 3, 6, 6))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        reg.loss(torch.tensor([0, 1, 2, 7]))
    reg.close()
    assert hook_count(net) == 0


def _batch_selectivity(net, x, y) -> float:
    with Probe(net) as probe, torch.no_grad():
        acts = probe(x)
    return torch.stack([selectivity_index(class_means(a, y, 10)).mean() for a in acts.values()]).mean().item()


def _train(alpha: float, steps: int = 12) -> tuple[float, float]:
    """Batch selectivity of a real small CNN before and after a few SGD steps."""
    torch.manual_seed(0)
    net = SmallConvNet(num_classes=10)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(128, 3, 16, 16, generator=gen), torch.arange(128) % 10
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    start = _batch_selectivity(net, x, y)
    with SelectivityRegularizer(net, alpha=alpha, num_classes=10, schedule=None) as reg:
        for _ in range(steps):
            loss = F.cross_entropy(net(x), y) + reg.loss(y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return start, _batch_selectivity(net, x, y)


def test_sgd_moves_batch_selectivity_in_the_direction_of_alpha():
    start, lowered = _train(-5.0)
    _, plain = _train(0.0)
    _, raised = _train(5.0)
    assert lowered < start < raised
    assert lowered < 0.6 * plain and raised > 1.5 * plain, (lowered, plain, raised)


def test_track_measures_without_gradient_while_alpha_is_zero():
    torch.manual_seed(0)
    net = TinyResNet(num_classes=5)
    x, y = torch.rand(16, 3, 6, 6), torch.arange(16) % 5
    with SelectivityRegularizer(net, alpha=0.0, num_classes=5, schedule=None, track=True) as reg:
        net(x)
        loss = reg.loss(y)
    with SelectivityRegularizer(net, alpha=1.0, num_classes=5, schedule=None) as active:
        net(x)
        expected = active.loss(y).detach()
    assert loss.item() == 0.0 and not loss.requires_grad
    torch.testing.assert_close(reg.last_selectivity, -expected)
