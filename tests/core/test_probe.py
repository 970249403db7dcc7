import warnings

import pytest
import torch
from torch import nn

from selectivity import LayerSelectionError, Probe, default_layers, resolve_layers

from .models import SmallConvNet, TinyResNet, hook_count


def test_default_rule_finds_residual_blocks():
    assert default_layers(TinyResNet()) == ["layer1", "layer2"]


def test_model_named_layers_win_over_the_rule():
    assert default_layers(SmallConvNet()) == ["features.2", "features.5", "features.8"]


def test_model_without_blocks_gets_a_clear_error():
    net = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(LayerSelectionError, match=r"names no selectivity layers.*\['1'\]"):
        resolve_layers(net)


def test_exact_glob_and_module_selection_keep_requested_order():
    net = TinyResNet()
    assert resolve_layers(net, "layer2") == ["layer2"]
    assert resolve_layers(net, ["layer2", "layer1"]) == ["layer2", "layer1"]
    assert resolve_layers(net, "layer?.conv*") == ["layer1.conv1", "layer1.conv2", "layer2.conv1", "layer2.conv2"]
    assert resolve_layers(net, [net.fc, "layer1", "layer*"]) == ["fc", "layer1", "layer2"]


def test_unknown_layer_lists_closest_names():
    with pytest.raises(LayerSelectionError, match=r"'layr1' matches no module.*closest module names: \['layer1'"):
        resolve_layers(TinyResNet(), "layr1")
    with pytest.raises(LayerSelectionError, match="'block\\*' matches no module"):
        resolve_layers(TinyResNet(), "block*")


def test_conv_units_are_spatial_means_and_linear_units_are_neurons():
    net = TinyResNet()
    x = torch.rand(5, 3, 8, 8)
    with Probe(net, ["stem", "fc"]) as probe:
        acts = probe(x)
    torch.testing.assert_close(acts["stem"], net.stem(x).mean(dim=(2, 3)))
    torch.testing.assert_close(acts["fc"], net(x))
    assert list(acts) == ["stem", "fc"]


def test_hooks_are_removed_on_close_and_on_leaving_with():
    net = TinyResNet()
    probe = Probe(net, "layer*")
    assert hook_count(net) == 3  # one pre-hook on the model, one hook per layer
    probe.close()
    assert hook_count(net) == 0
    with Probe(net, "layer*"):
        pass
    assert hook_count(net) == 0
    with pytest.raises(RuntimeError, match="boom"):
        with Probe(net, "layer*"):
            raise RuntimeError("boom")
    assert hook_count(net) == 0


def test_in_place_relu_after_the_layer_does_not_change_the_capture():
    torch.manual_seed(0)
    for net in (
        nn.Sequential(nn.Linear(4, 16), nn.ReLU(inplace=True)),
        nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(inplace=True)),
    ):
        x = torch.randn(6, 4) if isinstance(net[0], nn.Linear) else torch.randn(6, 3, 5, 5)
        with torch.no_grad():
            pre_relu = net[0](x)
        expected = pre_relu if pre_relu.ndim == 2 else pre_relu.mean(dim=(2, 3))
        assert (expected < 0).any()  # the in-place ReLU would have zeroed these
        for detach in (True, False):
            with Probe(net, "0", detach=detach) as probe:
                out = net(x)
                torch.testing.assert_close(probe.activations["0"].detach(), expected)
                if not detach:  # autograd is not broken by the later in-place op
                    (out.sum() + probe.activations["0"].sum()).backward()


def test_reused_relu_keeps_the_last_call_with_one_warning():
    torch.manual_seed(0)
    net = TinyResNet()
    x = torch.rand(4, 3, 6, 6)
    with torch.no_grad():
        block_out = net.layer1(net.stem(x)).mean(dim=(2, 3))
    with Probe(net, "layer1.relu") as probe:
        with pytest.warns(RuntimeWarning, match="ran more than once"):
            probe(x)
        torch.testing.assert_close(probe.activations["layer1.relu"], block_out)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            probe(x)  # warned once only


def test_layer_that_did_not_run_is_an_error():
    net = TinyResNet()
    with Probe(net, ["layer1", "pool"]) as probe:
        with pytest.raises(RuntimeError, match=r"did not run"):
            probe.collect()
        net(torch.rand(2, 3, 4, 4))
        with pytest.raises(ValueError, match="captured 2 samples but 3 labels"):
            probe.collect(batch_size=3)


def test_glob_star_stays_within_one_name_segment():
    net = TinyResNet()
    assert resolve_layers(net, "layer*") == ["layer1", "layer2"]
    assert resolve_layers(net, "**.relu") == ["layer1.relu", "layer2.relu"]
    assert resolve_layers(net, "stem.*") == ["stem.0", "stem.1"]
