"""Models of the zoos by name: ``timm:NAME`` and ``torchvision:NAME``.

The tests marked ``zoo`` need timm and torchvision, which import only beside a torch whose
torchvision build matches: ``make test-zoo`` runs them in .venv-zoo (and fails, never skips,
when they are missing there). The others run anywhere: the errors of a missing or broken zoo.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from selectivity.cli import main
from selectivity.models import accepts_keyword, create_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from image_folders import read_images, write_images  # noqa: E402
from reference import class_means_loop, selectivity_loop  # noqa: E402

zoo = pytest.mark.zoo


def run(argv, capsys):
    """The CLI's exit code, stdout and stderr; argparse's own refusals (SystemExit) count as exit codes."""
    capsys.readouterr()  # only this command's output
    try:
        code = main(argv)
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


# -- a missing or broken zoo: anywhere ---------------------------------------------------------


@pytest.mark.parametrize("zoo_name", ["timm", "torchvision"])
def test_a_zoo_that_is_not_installed_says_the_pip_command(zoo_name, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, zoo_name, None)  # import raises ModuleNotFoundError
    with pytest.raises(ValueError, match=rf"needs {zoo_name}, which is not installed: "
                                         rf"pip install 'selectivity\[{zoo_name}\]', with the torchvision "
                                         rf"built for the installed torch"):
        create_model(f"{zoo_name}:resnet18", num_classes=3)
    weights = tmp_path / "w.safetensors"
    save_file({"x": torch.zeros(1)}, str(weights))
    code, out, err = run(["measure", "--model", f"{zoo_name}:resnet18", "--weights", str(weights), "--data",
                          str(write_images(tmp_path / "images", 8, 1)), "--no-progress"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "pip install " in err and "make test-zoo" in err


def test_a_zoo_that_does_not_import_says_why(monkeypatch, tmp_path):
    fake = tmp_path / "fake"
    (fake / "timm").mkdir(parents=True)
    (fake / "timm" / "__init__.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    monkeypatch.delitem(sys.modules, "timm", raising=False)
    monkeypatch.syspath_prepend(str(fake))
    with pytest.raises(ValueError, match=r"timm is installed but cannot be imported \(RuntimeError: operator "
                                         r"torchvision::nms does not exist\); its torchvision must be the build"):
        create_model("timm:vit_tiny_patch16_224", num_classes=3)


def test_an_unknown_zoo_prefix_is_a_factory_path():
    with pytest.raises(ValueError, match="cannot import module 'keras'"):
        create_model("keras:resnet50", num_classes=3)


# -- timm --------------------------------------------------------------------------------------


@zoo
def test_measure_a_timm_vit_from_a_users_weights_equals_the_rule(tmp_path, capsys):
    """The issue's command: 12 x 768 units, SI equal to an independent computation to 1e-4."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3).eval()
    weights = tmp_path / "W.safetensors"
    save_file(model.state_dict(), str(weights))
    data = write_images(tmp_path / "images", 224)
    with pytest.warns(RuntimeWarning, match="positive part"):
        code, out, err = run(["measure", "--model", "timm:vit_tiny_patch16_224", "--weights", str(weights),
                              "--data", str(data), "--layers", "blocks.*.mlp.act", "--out", str(tmp_path / "out"),
                              "--device", "cpu", "--no-progress"], capsys)
    assert code == 0, err
    units = pd.read_csv(tmp_path / "out" / "unit_measures.csv")
    layers = [f"blocks.{i}.mlp.act" for i in range(12)]
    assert units.groupby("layer", sort=False).size().to_dict() == dict.fromkeys(layers, 768)
    assert json.loads((tmp_path / "out" / "measure.json").read_text())["input_size"] == 224

    x, labels = read_images(data)
    raw = {}
    hooks = [model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: raw.__setitem__(n, o.double()))
             for n in layers]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    for name in layers:
        assert raw[name].shape == (9, 197, 768) and bool((raw[name] < 0).any())
        response = np.maximum(raw[name].numpy(), 0).mean(axis=1)  # positive part, mean over all 197 tokens
        expected = selectivity_loop(class_means_loop(response, labels, 3))
        got = units[units.layer == name].sort_values("unit").si.to_numpy()
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


@zoo
def test_timm_kwargs_pass_through_and_the_default_layers_are_the_mlp_activations():
    model = create_model("timm:vit_tiny_patch16_224", num_classes=4, img_size=32, patch_size=4, depth=2)
    assert model.input_size == (3, 32, 32) and len(model.blocks) == 2 and model.num_prefix_tokens == 1
    from selectivity.core.probe import default_layers

    assert default_layers(model) == ["blocks.0.mlp.act", "blocks.1.mlp.act"]
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 4)
    assert accepts_keyword("timm:vit_tiny_patch16_224", "mean")  # the trainer passes the data's statistics


@zoo
@pytest.mark.parametrize("name, kwargs, match", [
    ("timm:vit_tinny_patch16_224", {}, r"timm has no model 'vit_tinny_patch16_224'.*Did you mean "
                                       r"'timm:vit_tiny_patch16_224'"),
    ("torchvision:resnet181", {}, r"torchvision has no model 'resnet181'.*Did you mean 'torchvision:resnet18'"),
    ("timm:vit_tiny_patch16_224", {"pretrained": True}, r"pretrained would fetch weights, and nothing is "
                                                        r"downloaded here"),
    ("torchvision:resnet18", {"weights": "DEFAULT"}, "weights would fetch weights"),
    ("timm:resnet18", {"no_such_argument": 3}, r"cannot build model 'timm:resnet18' with arguments "
                                               r"\['no_such_argument'\]"),
])
def test_zoo_mistakes_are_clear_errors(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_model(name, num_classes=3, **kwargs)


@zoo
def test_weights_of_another_architecture_list_every_misfit(tmp_path, capsys):
    import timm

    weights = tmp_path / "resnet.safetensors"
    save_file(timm.create_model("resnet18", num_classes=3).state_dict(), str(weights))
    data = write_images(tmp_path / "images", 32)

    def measure(weights_file, *extra):
        return run(["measure", "--model", "timm:vit_tiny_patch16_224", "--weights", str(weights_file), "--data",
                    str(data), "--set", "img_size=32", "--out", str(tmp_path / "out"), "--no-progress", *extra], capsys)

    code, out, err = measure(weights)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "do not fit the model VisionTransformer: missing 152: blocks.0.attn.proj.bias" in err
    assert "unexpected 122: bn1.bias" in err and "(+114 more)" in err
    small = tmp_path / "small.safetensors"
    save_file(timm.create_model("vit_tiny_patch16_224", num_classes=3, img_size=32).state_dict(), str(small))
    code, out, err = measure(small, "--layers", "blocks.*.mlp.fc9")
    assert code == 2 and "layer 'blocks.*.mlp.fc9' matches no module of VisionTransformer" in err
    code, out, err = measure(small, "--set", "img_size=64")
    assert code == 2 and "wrong shape 1: pos_embed (1, 5, 192) (model (1, 17, 192))" in err
    assert not (tmp_path / "out").exists()  # refused before any work


# -- torchvision -------------------------------------------------------------------------------


@zoo
def test_torchvision_resnet18_measures_like_the_built_in(tmp_path, capsys):
    torch.manual_seed(0)
    net = create_model("torchvision:resnet18", num_classes=3).eval()
    built_in = create_model("resnet18", num_classes=3)
    from selectivity.core.probe import default_layers

    assert default_layers(net) == list(built_in.selectivity_layers)  # layer1.0 ... layer4.1
    weights = tmp_path / "r18.safetensors"
    save_file(net.state_dict(), str(weights))
    code, out, err = run(["measure", "--model", "torchvision:resnet18", "--weights", str(weights), "--data",
                          str(write_images(tmp_path / "images", 32)), "--out", str(tmp_path / "out"),
                          "--measures", "si", "--no-progress"], capsys)
    assert code == 0, err
    units = pd.read_csv(tmp_path / "out" / "unit_measures.csv")
    assert units.groupby("layer", sort=False).size().to_dict() == {
        "layer1.0": 64, "layer1.1": 64, "layer2.0": 128, "layer2.1": 128,
        "layer3.0": 256, "layer3.1": 256, "layer4.0": 512, "layer4.1": 512}


@zoo
def test_torchvision_resnet18_trains_like_the_built_in(tmp_path, tiny_overrides, capsys):
    run_dir = tmp_path / "run"
    sets = [a for o in tiny_overrides + ["train.epochs=1", "model.name=torchvision:resnet18"] for a in ("--set", o)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, out, err = run(["train", "demo", "--alpha", "-1", "--out", str(run_dir), "--no-progress"] + sets,
                             capsys)
    assert code == 0, err
    final = json.loads((run_dir / "final.json").read_text())
    assert sorted(k for k in final if k.startswith("si/")) == sorted(
        f"si/layer{s}.{b}" for s in range(1, 5) for b in range(2))
    assert 0 < final["mean_si"] < 1 and final["alpha"] == -1.0
    code, out, err = run(["measure", str(run_dir), "--no-progress"], capsys)
    assert code == 0, err
    assert "layer4.1" in out


@zoo
def test_a_zoo_model_normalizes_with_the_given_statistics_outside_its_state_dict():
    torch.manual_seed(0)
    plain = create_model("torchvision:resnet18", num_classes=3).eval()
    normalized = create_model("torchvision:resnet18", num_classes=3, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5))
    normalized.load_state_dict(plain.state_dict())  # the same keys: weights files fit either
    normalized.eval()
    x = torch.rand(2, 3, 32, 32)
    by_hand = (x - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.2, 0.25, 0.5]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(normalized(x), plain(by_hand))


@zoo
@pytest.mark.parametrize("name, kwargs", [("timm:vit_tiny_patch16_224", {"img_size": 32, "patch_size": 8,
                                                                         "depth": 2}),
                                          ("torchvision:resnet18", {})])
def test_zoo_models_train_stacked(name, kwargs):
    from selectivity.train.stacked import check_stackable

    torch.manual_seed(0)
    model = create_model(name, num_classes=3, mean=(0.5,) * 3, std=(0.25,) * 3, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_stackable(name, model, torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
