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


def test_token_flags_belong_to_measure_model(tmp_path, capsys):
    code = main(["measure", str(tmp_path), "--tokens", "cls"])
    assert code == 2 and "--tokens only apply with --model" in capsys.readouterr().err
