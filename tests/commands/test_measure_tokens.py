"""`selectivity measure --model` on a transformer: --tokens and --raw-tokens choose the unit rule."""

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from selectivity.cli import main
from selectivity.models import create_model

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "core"))
sys.path.insert(0, str(HERE.parent / "models"))
from reference import class_means_loop, selectivity_loop  # noqa: E402
from image_folders import read_images, write_images  # noqa: E402


@pytest.mark.parametrize("flags, tokens, positive_part", [
    ([], "mean", True),
    (["--tokens", "cls", "--raw-tokens"], "cls", False),
    (["--tokens", "patches"], "patches", True),
])
def test_measure_a_vit_with_each_token_rule(tmp_path, capsys, flags, tokens, positive_part):
    torch.manual_seed(0)
    model = create_model("vit_demo", num_classes=3, dim=16, depth=2, heads=2).eval()
    weights = tmp_path / "vit.safetensors"
    save_file(model.state_dict(), str(weights))
    data = write_images(tmp_path / "images", 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["measure", "--model", "vit_demo", "--set", "dim=16", "--set", "depth=2", "--set", "heads=2",
                     "--weights", str(weights), "--data", str(data), "--out", str(tmp_path / "out"),
                     "--measures", "si", "--no-progress", *flags])
    assert code == 0, capsys.readouterr().err
    units = pd.read_csv(tmp_path / "out" / "unit_measures.csv")
    x, labels = read_images(data)
    for name in ("blocks.0.mlp.act", "blocks.1.mlp.act"):
        seen = []
        hook = model.get_submodule(name).register_forward_hook(lambda m, i, o: seen.append(o.double()))
        with torch.no_grad():
            model(x)
        hook.remove()
        raw = seen[0].numpy()
        if positive_part:
            raw = np.maximum(raw, 0)
        response = {"mean": raw.mean(axis=1), "cls": raw[:, 0], "patches": raw[:, 1:].mean(axis=1)}[tokens]
        expected = selectivity_loop(class_means_loop(response, labels, 3))
        got = units[units.layer == name].sort_values("unit").si.to_numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_token_flags_of_a_run_go_with_measures(tmp_path, capsys):
    code = main(["measure", str(tmp_path), "--tokens", "cls"])
    assert code == 2 and "--tokens reads a run's units on other tokens for --measures" in capsys.readouterr().err
    code = main(["measure", str(tmp_path), "--raw-tokens", "--measures", "si"])
    assert code == 2 and "--raw-tokens only apply with --model" in capsys.readouterr().err


def test_a_vit_runs_units_read_on_the_class_token(tmp_path, capsys):
    """measure RUN --measures si --tokens cls: the units of a trained vit_demo read on the class token alone
    (each token's positive part, as the run's rule has it), into unit_measures-tokens-cls.csv and the
    results column mean_si_cls; against SI written here from the hooked activations of the run's model."""
    from selectivity.runs import open_run, run_summary

    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["train", "vit_demo", "--out", str(run), "--no-progress", "--set", "train.epochs=1",
                     "data.train_per_class=10", "data.test_limit=60", "model.kwargs.dim=16", "model.kwargs.depth=2",
                     "model.kwargs.heads=2", f"data.cache_dir={tmp_path / 'cache'}"]) == 0
        assert main(["measure", str(run), "--measures", "si", "--tokens", "cls", "--no-progress"]) == 0
    capsys.readouterr()
    units = pd.read_csv(run / "unit_measures-tokens-cls.csv")
    opened = open_run(run)
    x = opened.data.images.float() / 255
    labels = opened.data.labels.numpy()
    per_layer = []
    for name in ("blocks.0.mlp.act", "blocks.1.mlp.act"):
        seen = []
        hook = opened.model.get_submodule(name).register_forward_hook(lambda m, i, o: seen.append(o.double()))
        with torch.no_grad():
            opened.model(x)
        hook.remove()
        response = np.maximum(seen[0].numpy(), 0)[:, 0]
        expected = selectivity_loop(class_means_loop(response, labels, 10))
        got = units[units.layer == name].sort_values("unit").si.to_numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
        per_layer.append(expected.mean())
    assert run_summary(run)["mean_si_cls"] == pytest.approx(np.mean(per_layer), abs=1e-6)
