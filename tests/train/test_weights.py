"""model.weights: training starts from a safetensors state dict (fine-tuning), loaded strictly."""

import json
import warnings

import pytest
import torch
from safetensors.torch import save_file

from selectivity.cli import main
from selectivity.models import create_model
from selectivity.runs import load_tensors
from selectivity.config import load_config
from selectivity.runs import build_model
from selectivity.train.trainer import load_data
from selectivity.runs.weights import WeightsError


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


def test_fine_tuning_starts_from_the_given_weights(tmp_path, tiny_overrides, capsys):
    base = tmp_path / "base"
    assert run(["train", "demo", "--out", str(base), "--no-progress"] + sets(tiny_overrides + ["train.epochs=1"]),
               capsys)[0] == 0
    weights = base / "weights.safetensors"
    config = load_config("demo", tiny_overrides + [f"model.weights={weights}"])
    train_split, _ = load_data(config, progress=False)
    torch.manual_seed(123)  # another seed's init: only the file can make the weights equal
    model = build_model(config, train_split)
    saved, _ = load_tensors(weights)
    state = model.state_dict()
    assert set(state) == set(saved)
    assert all(torch.equal(state[k], saved[k]) for k in saved)
    fine = tmp_path / "fine"
    code, out, err = run(["train", "demo", "--alpha", "-1", "--out", str(fine), "--no-progress"]
                         + sets(tiny_overrides + ["train.epochs=1", f"model.weights={weights}"]), capsys)
    assert code == 0, err
    assert json.loads((fine / "final.json").read_text())["alpha"] == -1.0
    weights.unlink()  # a fine-tuned run is measured with its own weights, not the file it started from
    code, out, err = run(["measure", str(fine), "--no-progress"], capsys)
    assert code == 0, err


def test_weights_of_another_model_are_refused_before_any_work(tmp_path, tiny_overrides, capsys):
    vit = tmp_path / "vit.safetensors"
    save_file(create_model("vit_demo", num_classes=10).state_dict(), str(vit))
    out_dir = tmp_path / "run"
    code, out, err = run(["train", "demo", "--out", str(out_dir), "--no-progress"]
                         + sets(tiny_overrides + [f"model.weights={vit}"]), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "do not fit the model ResNet: missing 44: bn1.bias" in err and "unexpected 56: blocks.0.attn.proj.bias" in err
    assert not out_dir.exists()
    code, out, err = run(["train", "demo", "--out", str(out_dir), "--no-progress"]
                         + sets(tiny_overrides + [f"model.weights={tmp_path / 'nothing.safetensors'}"]), capsys)
    assert code == 2 and "nothing.safetensors does not exist" in err and not out_dir.exists()


def test_a_pickle_is_never_loaded(tmp_path):
    model = create_model("resnet_demo", num_classes=10)
    pickled = tmp_path / "model.pt"
    torch.save(model.state_dict(), pickled)
    from selectivity.runs.weights import load_safetensors_weights as load_weights_file

    with pytest.raises(WeightsError, match="not a readable .safetensors file.*only safetensors is accepted"):
        load_weights_file(model, pickled)


def test_the_fine_tune_preset_starts_from_a_plain_vit_demo_run():
    config = load_config("vit_demo_finetune")
    assert config.model.name == "vit_demo" and config.model.weights == "runs/vit_demo/base/weights.safetensors"
    assert config.regularizer.warmup_epochs == 0 and config.optim.lr < load_config("vit_demo").optim.lr


def test_token_settings_reach_every_probe_of_a_trained_model(tiny_overrides):
    config = load_config("vit_demo", tiny_overrides + ["regularizer.tokens=cls", "regularizer.positive_part=false"])
    train_split, _ = load_data(config, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(config, train_split)
    assert model.selectivity_tokens == "cls" and model.selectivity_positive_part is False
    from selectivity import Probe

    with Probe(model) as probe:
        assert probe.tokens == "cls" and not probe.positive_part
