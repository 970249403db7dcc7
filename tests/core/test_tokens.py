"""Transformer units: a token layer's (N, T, U) output becomes (N, U) by a rule the model declares.

The rule (core/probe.py): response of unit u to image n = mean over the chosen tokens of
max(x[n, t, u], 0). Every check here recomputes it with NumPy loops from the raw output,
captured by a hook of the test's own, and from there SI with the loop references.
"""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from selectivity import LayerSelectionError, Probe, SelectivityMeter, SelectivityRegularizer, default_layers
from selectivity.core.probe import token_layers, unit_activations
from selectivity.models import create_model

from .reference import class_means_loop, selectivity_loop


def token_units_loop(raw: np.ndarray, tokens: str, positive_part: bool, prefix: int = 1) -> np.ndarray:
    """(N, T, U) -> (N, U) from the definition, one number at a time."""
    n, t, u = raw.shape
    chosen = {"mean": range(t), "cls": range(1), "patches": range(prefix, t)}[tokens]
    out = np.zeros((n, u))
    for i in range(n):
        for j in range(u):
            values = [max(raw[i, k, j], 0.0) if positive_part else raw[i, k, j] for k in chosen]
            out[i, j] = sum(values) / len(values)
    return out


def small_vit(**kwargs):
    torch.manual_seed(0)
    return create_model("vit_demo", num_classes=5, dim=16, depth=2, heads=2, **kwargs).eval()


def raw_outputs(model, names, x):
    """The modules' own outputs, by a hook that is not the probe's."""
    seen = {}
    handles = [model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.detach()))
               for n in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


@pytest.mark.parametrize("tokens", ["mean", "cls", "patches"])
@pytest.mark.parametrize("positive_part", [True, False])
def test_probe_units_follow_the_rule(tokens, positive_part):
    model = small_vit()
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    raw = raw_outputs(model, model.selectivity_layers, x)
    assert all((r < 0).any() for r in raw.values())  # GELU: the positive part matters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Probe(model, tokens=tokens, positive_part=positive_part) as probe:
            units = probe(x)
    assert list(units) == ["blocks.0.mlp.act", "blocks.1.mlp.act"]
    for name, value in units.items():
        assert value.shape == (6, 32)
        expected = token_units_loop(raw[name].double().numpy(), tokens, positive_part)
        np.testing.assert_allclose(value.double().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_positive_part_is_said_once_per_probe_and_raw_values_warn_as_negative():
    model = small_vit()
    x, y = torch.rand(8, 3, 32, 32), torch.arange(8) % 5
    with pytest.warns(RuntimeWarning, match=r"blocks.0.mlp.act, blocks.1.mlp.act: each token's response is taken "
                                            r"as its positive part max\(x, 0\) before the mean"):
        probe = Probe(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probe(x)
        probe(x)
        probe.close()
        with SelectivityMeter(model, 5, positive_part=False) as meter:  # raw values: no positive-part notice
            with pytest.warns(RuntimeWarning, match="has negative activations"):
                meter.update(x, y)


def test_meter_and_regularizer_use_the_same_rule():
    """SI of the meter (streamed) and of the regularizer (one batch) from the loop's units."""
    model = small_vit()
    gen = torch.Generator().manual_seed(2)
    x, y = torch.rand(20, 3, 32, 32, generator=gen), torch.randint(0, 5, (20,), generator=gen)
    raw = raw_outputs(model, model.selectivity_layers, x)
    refs = {n: token_units_loop(r.double().numpy(), "patches", True) for n, r in raw.items()}
    si_ref = {n: selectivity_loop(class_means_loop(u, y.numpy(), 5)) for n, u in refs.items()}
    model.selectivity_tokens = "patches"  # what the trainer sets from regularizer.tokens
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with SelectivityMeter(model, 5) as meter:
            meter.update(x[:7], y[:7])
            meter.update(x[7:], y[7:])
            result = meter.compute()
        reg = SelectivityRegularizer(model, alpha=1.0, num_classes=5, schedule=None)
        model(x)
        per_layer = reg.selectivity(y).detach()
        reg.close()
    for i, name in enumerate(model.selectivity_layers):
        np.testing.assert_allclose(result.per_unit[name].numpy(), si_ref[name], rtol=1e-4, atol=1e-6)
        assert float(per_layer[i]) == pytest.approx(float(si_ref[name].mean()), rel=1e-4)


def test_regularizer_gradient_reaches_the_blocks():
    model = small_vit().train()
    x, y = torch.rand(10, 3, 32, 32), torch.arange(10) % 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with SelectivityRegularizer(model, alpha=-1.0, num_classes=5, schedule=None) as reg:
            model(x)
            reg.loss(y).backward()
    assert model.blocks[0].mlp.fc1.weight.grad.abs().sum() > 0
    assert model.head.weight.grad is None  # the term reaches only what lies before the units


def test_in_place_op_after_a_token_layer_does_not_change_the_capture():
    net = nn.Sequential(nn.Linear(4, 6), nn.GELU(), nn.ReLU(inplace=True))
    net.selectivity_token_layers = ["0", "1", "2"]
    x = torch.randn(3, 5, 4)
    with torch.no_grad():
        gelu = net[1](net[0](x))
    assert (gelu < 0).any()
    for tokens in ("mean", "cls"):
        net.num_prefix_tokens = 1
        with Probe(net, "1", tokens=tokens, positive_part=False) as probe:
            got = probe(x)["1"]
        want = gelu.mean(dim=1) if tokens == "mean" else gelu[:, 0]
        torch.testing.assert_close(got, want)


# -- which layers are token layers: declared, or the transformer rule; never a guess -----------


class Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=2))


def test_an_undeclared_3d_output_is_an_error_not_a_guess():
    net = Conv1dNet()
    with Probe(net, "conv") as probe:
        with pytest.raises(ValueError, match=r"'conv' output has shape \(2, 4, 5\): units on dim 1 .* or last .*"
                                             r"model.selectivity_token_layers"):
            probe(torch.rand(2, 3, 7))
    net.selectivity_token_layers = []  # declared: no token layers, a 3-D output is (N, U, length)
    x = torch.rand(2, 3, 7)
    expected = net.conv(x).mean(dim=2)
    with Probe(net, "conv") as probe:
        torch.testing.assert_close(probe(x)["conv"], expected)


def test_a_raw_3d_tensor_given_to_the_meter_is_an_error():
    meter = SelectivityMeter(None, num_classes=2)
    with pytest.raises(ValueError, match="units on dim 1"):
        meter.update_activations({"layer": torch.rand(4, 3, 5)}, torch.tensor([0, 1, 0, 1]))
    reduced = unit_activations(torch.rand(4, 3, 5), layout="tokens")  # reduce it yourself, saying how
    meter.update_activations({"layer": reduced}, torch.tensor([0, 1, 0, 1]))


def test_a_declared_token_layer_with_another_shape_is_an_error():
    model = small_vit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Probe(model, "patch_embed.proj") as probe:  # a conv: 4-D, channels, fine
            assert probe(torch.rand(2, 3, 32, 32))["patch_embed.proj"].shape == (2, 16)
    model.selectivity_token_layers = ("patch_embed.proj",)
    with Probe(model, "patch_embed.proj") as probe:
        with pytest.raises(ValueError, match=r"is a token layer, whose output is \(N, tokens, units\), but it "
                                             r"returned shape \(2, 16, 8, 8\)"):
            probe(torch.rand(2, 3, 32, 32))


def test_cls_and_patches_need_the_models_prefix_tokens():
    net = nn.Sequential(nn.Linear(4, 6), nn.GELU())
    net.selectivity_token_layers = ["1"]
    with pytest.raises(ValueError, match="declares no num_prefix_tokens"):
        Probe(net, "1", tokens="cls")
    net.num_prefix_tokens = 0
    with pytest.raises(ValueError, match="no class token"):
        Probe(net, "1", tokens="cls")
    with pytest.raises(ValueError, match="tokens must be one of"):
        Probe(net, "1", tokens="max")
    Probe(net, "1", tokens="patches", positive_part=False).close()  # 0 prefix tokens: every token a patch


def test_transformer_rule_without_declarations():
    """A ViT that names nothing: the rule finds its MLP activations and marks its blocks' modules."""
    model = small_vit()
    for attribute in ("selectivity_layers", "selectivity_token_layers"):
        delattr(model, attribute)
    assert default_layers(model) == ["blocks.0.mlp.act", "blocks.1.mlp.act"]
    marked = token_layers(model)
    assert {"blocks.0", "blocks.0.attn.qkv", "blocks.1.mlp.act", "blocks.1.norm2"} <= set(marked)
    assert not {"patch_embed", "patch_embed.proj", "norm", "head"} & set(marked)


class TorchStyleBlock(nn.Module):
    """torchvision's EncoderBlock layout: nn.MultiheadAttention and an MLP as a Sequential."""

    def __init__(self, dim=8):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.self_attention = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 12), nn.GELU(), nn.Dropout(0.0), nn.Linear(12, dim))

    def forward(self, x):
        y = self.ln_1(x)
        x = x + self.self_attention(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


def test_transformer_rule_on_a_torch_style_encoder():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Sequential(TorchStyleBlock(), TorchStyleBlock()))
    assert default_layers(net) == ["1.0.mlp.1", "1.1.mlp.1"]
    x = torch.randn(4, 5, 3)
    raw = raw_outputs(net, ["1.0.mlp.1"], x)["1.0.mlp.1"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Probe(net) as probe:
            units = probe(x)
    np.testing.assert_allclose(units["1.0.mlp.1"].numpy(), token_units_loop(raw.numpy(), "mean", True), rtol=1e-5)
    with pytest.raises(LayerSelectionError, match="matches no module"):
        Probe(net, "blocks.*.mlp.act")


@pytest.mark.parametrize("how", ["arguments", "model"])
def test_monoloss_reduces_token_layers_by_the_same_rule(how):
    """MonoLoss's term and the meter's MonoScore from the loop's units (the quadratic definition)."""
    from selectivity.core.monoloss import MonoLossRegularizer

    from .test_monoscore import monoscore_pairs

    model = small_vit().double()
    gen = torch.Generator().manual_seed(4)
    x, y = torch.rand(16, 3, 32, 32, generator=gen, dtype=torch.float64), torch.arange(16) % 5
    raw = raw_outputs(model, model.selectivity_layers, x)
    onehot = np.eye(5)[y.numpy()]
    scores = {n: monoscore_pairs(token_units_loop(r.numpy(), "patches", False), onehot) for n, r in raw.items()}
    expected = -0.5 * np.mean([np.nanmean(s) for s in scores.values()])  # -lambda * mean over layers
    options = {"tokens": "patches", "positive_part": False} if how == "arguments" else {}
    if how == "model":  # what the trainer sets from regularizer.tokens and regularizer.positive_part
        model.selectivity_tokens, model.selectivity_positive_part = "patches", False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with MonoLossRegularizer(model, 0.5, num_classes=5, schedule=None, **options) as reg:
            model(x)
            loss = reg.loss(y)
        with SelectivityMeter(model, 5, **options) as meter:
            meter.update(x, y)
            result = meter.compute()
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    for name in model.selectivity_layers:
        np.testing.assert_allclose(result.monoscore[name].numpy(), scores[name], rtol=1e-9, atol=1e-12)
