"""Tests of the model zoo: every registered model, the registry, and Normalize.

The per-model tests run over ``list_models()``, so a newly registered model gets them.
Parameter counts are checked against an independent count formula, itself anchored to
published counts (torchvision's ImageNet ResNet-18/50 and VGG16-BN, ResNet-20's 0.27M).
"""

import functools
import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from selectivity.core.probe import Probe, token_layers
from selectivity.models import MODELS, Normalize, create_model, list_models
from selectivity.models.resnet import ShortcutA

HERE = Path(__file__).parent
NUM_CLASSES = 7


@functools.cache
def build(name: str) -> nn.Module:
    """One instance per model for the whole module (building resnet50 takes a while)."""
    torch.manual_seed(0)
    return create_model(name, num_classes=NUM_CLASSES)


@dataclass
class ForwardPass:
    name: str
    model: nn.Module
    logits: torch.Tensor
    fired: list[str]  # selectivity layers in the order their hooks fired
    minima: dict[str, float]  # smallest output value of each selectivity layer
    shapes: dict[str, tuple[int, ...]]  # output shape of each selectivity layer, less N


@pytest.fixture(scope="module", params=list_models())
def forward_pass(request) -> ForwardPass:
    """One training-mode forward pass per model, with a hook on every selectivity layer."""
    model = build(request.param).train()
    model.zero_grad(set_to_none=True)
    fired: list[str] = []
    minima: dict[str, float] = {}
    shapes: dict[str, tuple[int, ...]] = {}

    def hook_for(layer):
        def hook(module, inputs, output):
            fired.append(layer)
            minima[layer] = output.min().item()
            shapes[layer] = tuple(output.shape[1:])

        return hook

    handles = []
    try:
        for layer in model.selectivity_layers:
            handles.append(model.get_submodule(layer).register_forward_hook(hook_for(layer)))
        logits = model(torch.rand(2, *model.input_size))
    finally:
        for handle in handles:
            handle.remove()
    return ForwardPass(request.param, model, logits, fired, minima, shapes)


# ----------------------------------------------------------------- every registered model


def test_logits_have_the_right_shape_and_are_finite(forward_pass):
    assert forward_pass.logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(forward_pass.logits).all()


def test_backward_gives_finite_gradients_for_all_parameters(forward_pass):
    F.cross_entropy(forward_pass.logits, torch.tensor([0, 1])).backward()
    for name, param in forward_pass.model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name


def test_selectivity_layers_fire_once_in_order_with_nonnegative_units(forward_pass):
    model = forward_pass.model
    assert forward_pass.fired == list(model.selectivity_layers)
    tokens = set(token_layers(model))
    raw = {layer: value for layer, value in forward_pass.minima.items() if layer not in tokens}
    assert all(value >= 0 for value in raw.values()), raw
    if tokens:  # a GELU's output dips below 0; the probe takes each token's positive part
        assert min(forward_pass.minima.values()) < 0
        with pytest.warns(RuntimeWarning, match="positive part"), Probe(model) as probe, torch.no_grad():
            units = probe(torch.rand(2, *model.input_size))
        assert all(bool((u >= 0).all()) for u in units.values())


# (C, H, W) of the first and last selectivity layers: stems, strides and pools as documented.
LAYER_SHAPES = {
    "resnet20": {"layer1.0": (16, 32, 32), "layer3.2": (64, 8, 8)},
    "resnet18": {"layer1.0": (64, 64, 64), "layer4.1": (512, 8, 8)},
    "resnet50": {"layer1.0": (256, 64, 64), "layer4.2": (2048, 8, 8)},
    "vgg16_bn": {"features.relu1_1": (64, 32, 32), "features.relu5_3": (512, 2, 2)},
    "resnet_demo": {"layer1.0": (16, 16, 16), "layer3.0": (64, 4, 4)},
    "vit_demo": {"blocks.0.mlp.act": (65, 128), "blocks.3.mlp.act": (65, 128)},  # 64 patches + CLS
}


def test_selectivity_layer_shapes(forward_pass):
    if forward_pass.name not in LAYER_SHAPES:
        pytest.skip(f"no expected shapes written down for {forward_pass.name}")
    for layer, shape in LAYER_SHAPES[forward_pass.name].items():
        assert forward_pass.shapes[layer] == shape, layer


@pytest.mark.parametrize("name", list_models())
def test_selectivity_layers_name_distinct_modules(name):
    model = build(name)
    modules = dict(model.named_modules())
    layers = model.selectivity_layers
    assert isinstance(layers, tuple) and layers
    assert all(isinstance(layer, str) for layer in layers)
    assert set(layers) <= set(modules), set(layers) - set(modules)
    assert len({id(modules[layer]) for layer in layers}) == len(layers), "a module is listed twice"


@pytest.mark.parametrize("name", list_models())
def test_first_module_is_normalize_with_the_given_statistics(name):
    mean, std = (0.1, 0.2, 0.3), (0.4, 0.5, 0.6)
    model = create_model(name, num_classes=NUM_CLASSES, mean=mean, std=std)
    first = next(model.children())
    assert isinstance(first, Normalize)
    assert [type(m) for m in model.modules()].count(Normalize) == 1
    torch.testing.assert_close(first.mean.flatten(), torch.tensor(mean))
    torch.testing.assert_close(first.std.flatten(), torch.tensor(std))


@pytest.mark.parametrize(
    ("name", "num_layers", "input_size"),
    [
        ("resnet20", 9, (3, 32, 32)),
        ("resnet18", 8, (3, 64, 64)),
        ("resnet50", 16, (3, 64, 64)),
        ("vgg16_bn", 13, (3, 32, 32)),
        ("resnet_demo", 3, (3, 32, 32)),
        ("vit_demo", 4, (3, 32, 32)),
    ],
)
def test_layer_counts_and_metadata(name, num_layers, input_size):
    model = build(name)
    assert len(model.selectivity_layers) == num_layers
    assert model.input_size == input_size
    assert model.num_classes == NUM_CLASSES


def test_vgg_selectivity_layers_are_the_post_conv_relus():
    model = build("vgg16_bn")
    modules = dict(model.named_modules())
    assert all(isinstance(modules[layer], nn.ReLU) for layer in model.selectivity_layers)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    relus = [m for m in model.features if isinstance(m, nn.ReLU)]
    assert len(convs) == len(relus) == 13
    assert [modules[layer] for layer in model.selectivity_layers] == relus


@pytest.mark.parametrize(
    ("name", "block", "last_relu", "in_shape"),
    [("resnet20", "layer2.0", "relu2", (16, 8, 8)), ("resnet50", "layer2.0", "relu3", (256, 8, 8))],
)
def test_resnet_block_output_is_its_final_relu_output(name, block, last_relu, in_shape):
    block = build(name).get_submodule(block)
    seen = []
    handle = getattr(block, last_relu).register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        with torch.no_grad():
            out = block(torch.randn(2, *in_shape))
    finally:
        handle.remove()
    assert len(seen) == 1 and seen[0] is out


# ------------------------------------------------------------------ parameter counts


def conv(k, cin, cout, bias=False):
    return k * k * cin * cout + (cout if bias else 0)


def bn(c):
    return 2 * c


def linear(cin, cout):
    return cin * cout + cout


def resnet_count(bottleneck, layers, widths, strides, stem, num_classes, projection, stem_k=3):
    """Parameters of a ResNet; ``projection``: 1x1 conv + BN shortcuts where shape changes."""
    total = conv(stem_k, 3, stem) + bn(stem)
    cin = stem
    for depth, width, stage_stride in zip(layers, widths, strides, strict=True):
        for i in range(depth):
            stride = stage_stride if i == 0 else 1
            if bottleneck:
                cout = 4 * width
                total += conv(1, cin, width) + bn(width) + conv(3, width, width) + bn(width)
                total += conv(1, width, cout) + bn(cout)
            else:
                cout = width
                total += conv(3, cin, width) + bn(width) + conv(3, width, width) + bn(width)
            if projection and (stride != 1 or cin != cout):
                total += conv(1, cin, cout) + bn(cout)
            cin = cout
    return total + linear(cin, num_classes)


def vgg_count(stages, head, conv_bias=False):
    """Parameters of a VGG with BN; ``head``: the widths of the linear layers, input first."""
    total, cin = 0, 3
    for width in [w for stage in stages for w in stage]:
        total += conv(3, cin, width, bias=conv_bias) + bn(width)
        cin = width
    return total + sum(linear(a, b) for a, b in itertools.pairwise(head))


VGG16 = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def r20(num_classes=10, projection=False):
    return resnet_count(False, (3, 3, 3), (16, 32, 64), (1, 2, 2), 16, num_classes, projection)


def r18(num_classes=200, stem_k=3):
    widths = (64, 128, 256, 512)
    return resnet_count(False, (2, 2, 2, 2), widths, (1, 2, 2, 2), 64, num_classes, True, stem_k)


def r50(num_classes=200, stem_k=3):
    widths = (64, 128, 256, 512)
    return resnet_count(True, (3, 4, 6, 3), widths, (1, 2, 2, 2), 64, num_classes, True, stem_k)


def demo(num_classes=10):
    return resnet_count(False, (1, 1, 1), (16, 32, 64), (1, 2, 2), 16, num_classes, False)


def vit_count(patch, dim, depth, hidden, tokens, num_classes):
    """Parameters of a ViT: patch embedding, class token, position embeddings, blocks, norm, head."""
    block = 2 * 2 * dim + linear(dim, 3 * dim) + linear(dim, dim) + linear(dim, hidden) + linear(hidden, dim)
    return conv(patch, 3, dim, bias=True) + dim + tokens * dim + depth * block + 2 * dim + linear(dim, num_classes)


def test_count_formulas_match_published_counts():
    # torchvision's ImageNet ResNets and VGG16-BN: 7x7 stem, 1000 classes, 4096-wide head.
    assert r18(num_classes=1000, stem_k=7) == 11_689_512
    assert r50(num_classes=1000, stem_k=7) == 25_557_032
    assert vgg_count(VGG16, head=(512 * 7 * 7, 4096, 4096, 1000), conv_bias=True) == 138_365_992
    # timm's vit_tiny_patch16_224 (DeiT-Ti, Touvron et al. 2021): 5,717,416 parameters.
    assert vit_count(16, 192, 12, 768, 197, 1000) == 5_717_416
    # He et al. 2016, table 6: ResNet-20 (option A) has 0.27M parameters.
    assert round(r20() / 1e6, 2) == 0.27


def test_count_formulas_by_value():
    # The values the docstrings quote.
    assert r20() == 269_722
    assert r20(projection=True) == 272_474
    assert r18() == 11_271_432
    assert r50() == 23_910_152
    assert demo() == 75_290
    assert vit_count(4, 64, 4, 128, 65, 10) == 142_026
    assert vgg_count(VGG16, head=(512, 512, 10)) == 14_986_698


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("resnet20", {}, r20()),
        ("resnet20", {"shortcut": "B"}, r20(projection=True)),
        ("resnet18", {}, r18()),
        ("resnet50", {}, r50()),
        ("resnet_demo", {}, demo()),
        ("vit_demo", {}, vit_count(4, 64, 4, 128, 65, 10)),
        ("vit_demo", {"dim": 96, "heads": 3, "depth": 2}, vit_count(4, 96, 2, 192, 65, 10)),
        ("vgg16_bn", {}, vgg_count(VGG16, head=(512, 512, 10))),
    ],
)
def test_parameter_counts(name, kwargs, expected):
    num_classes = 200 if name in ("resnet18", "resnet50") else 10
    model = create_model(name, num_classes=num_classes, **kwargs)
    assert sum(p.numel() for p in model.parameters()) == expected


# ------------------------------------------------------------------ building blocks


def test_normalize_matches_hand_computed_values():
    norm = Normalize(mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    x = torch.tensor([1.0, 0.0, 0.5]).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    expected = torch.tensor([1.0, -1.0, 0.25]).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    torch.testing.assert_close(norm(x), expected)
    assert norm.mean.shape == norm.std.shape == (1, 3, 1, 1)
    assert set(norm.state_dict()) == {"mean", "std"}
    assert list(norm.parameters()) == []


@pytest.mark.parametrize(
    ("mean", "std", "message"),
    [((0.5, 0.5), (0.5,), "one mean and one std"), ((0.5,), (0.0,), "positive")],
)
def test_normalize_rejects_bad_statistics(mean, std, message):
    with pytest.raises(ValueError, match=message):
        Normalize(mean, std)


def test_shortcut_a_subsamples_and_zero_pads():
    x = torch.randn(2, 3, 4, 4)
    out = ShortcutA(3, 5, stride=2)(x)
    assert out.shape == (2, 5, 2, 2)
    torch.testing.assert_close(out[:, :3], x[:, :, ::2, ::2])
    assert (out[:, 3:] == 0).all()


def test_unknown_shortcut_is_an_error():
    with pytest.raises(ValueError, match="shortcut must be one of"):
        create_model("resnet20", num_classes=10, shortcut="C")


# ------------------------------------------------------------------------- registry


def test_registry_names_are_builder_names():
    assert all(builder.__name__ == name for name, builder in MODELS.items())


def test_list_models_globs():
    assert list_models() == sorted(MODELS)
    assert list_models("resnet*") == ["resnet18", "resnet20", "resnet50", "resnet_demo"]
    assert list_models("*_bn") == ["vgg16_bn"]
    assert list_models("resnet?0") == ["resnet20", "resnet50"]
    assert list_models("RESNET*") == []


def test_unknown_name_lists_registered_models_and_close_matches():
    with pytest.raises(ValueError) as info:
        create_model("resnet21", num_classes=10)
    message = str(info.value)
    assert "'resnet21'" in message
    assert "Did you mean 'resnet20'" in message
    assert all(name in message for name in MODELS)


def test_none_kwargs_are_dropped():
    model = create_model("resnet20", num_classes=10, shortcut=None, mean=None, std=None)
    default = create_model("resnet20", num_classes=10)
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in model.modules())
    torch.testing.assert_close(model.normalize.mean, default.normalize.mean)


def test_kwargs_reach_the_builder():
    model = create_model("resnet20", num_classes=10, shortcut="B")
    assert any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in model.modules())


def test_unexpected_kwarg_is_named():
    with pytest.raises(ValueError, match="cannot build model 'resnet18'.*'shortcut'"):
        create_model("resnet18", num_classes=200, shortcut="A")


@pytest.mark.parametrize("num_classes", [1, 0, -3, 2.0, True, "10"])
def test_num_classes_must_be_an_integer_of_at_least_two(num_classes):
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        create_model("resnet20", num_classes=num_classes)


@pytest.fixture
def factories_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def test_factory_from_module_path(factories_on_path):
    model = create_model("model_factories:tiny_net", num_classes=3, width=5, unset=None)
    assert model(torch.rand(2, 3, 4, 4)).shape == (2, 3)
    assert model[1].out_features == 5
    nested = create_model("model_factories:Zoo.tiny", num_classes=4)
    assert nested(torch.rand(1, 3, 4, 4)).shape == (1, 4)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("model_factories:without_num_classes", "must accept a num_classes keyword argument"),
        ("model_factories:not_a_module", "returned a str, not a torch.nn.Module"),
        ("model_factories:NOT_CALLABLE", r"is not callable \(it is a int\)"),
        ("model_factories:missing", "module 'model_factories' has no attribute 'missing'"),
        ("model_factories:Zoo.missing", "has no attribute 'Zoo.missing'"),
        ("no_such_package_xyz.models:net", "cannot import module 'no_such_package_xyz.models'"),
        ("model_factories:", "should read 'package.module:factory'"),
        (":tiny_net", "should read 'package.module:factory'"),
    ],
)
def test_bad_factory_specs_are_clear_errors(factories_on_path, spec, message):
    with pytest.raises(ValueError, match=message):
        create_model(spec, num_classes=3)


def test_factory_unexpected_kwarg_is_named(factories_on_path):
    with pytest.raises(ValueError, match="cannot build model 'model_factories:tiny_net'.*'depth'"):
        create_model("model_factories:tiny_net", num_classes=3, depth=2)


def test_a_factory_that_raises_is_named_with_its_message_in_one_line(factories_on_path, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"the factory of 'model_factories:broken' raised RuntimeError: "
                                         r"CUDA out of memory in my_layer$"):
        create_model("model_factories:broken", num_classes=3)
    from selectivity.cli import main

    assert main(["train", "demo", "--out", str(tmp_path / "run"), "--set", "model.name=model_factories:broken",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "raised RuntimeError: CUDA out of memory in my_layer" in err
    assert not (tmp_path / "run").exists()
