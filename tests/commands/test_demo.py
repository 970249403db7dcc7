import pandas as pd
import pytest
from PIL import Image

from selectivity.commands.demo import run_demo


def test_demo_writes_the_table_and_figures(tmp_path, tiny_overrides):
    outputs = run_demo(tmp_path / "demo", alphas=(-2.0, 0.0, 2.0), overrides=tiny_overrides + ["train.epochs=1"], jobs=1,
                       progress=False)
    table = pd.read_csv(outputs["results"])
    assert table["alpha"].tolist() == [-2.0, 0.0, 2.0] and (table["seed"] == 0).all()
    assert list(table.columns[:6]) == ["alpha", "seed", "model", "dataset", "test_acc", "mean_si"]
    layer_columns = [c for c in table.columns if c.startswith("si/")]
    assert len(layer_columns) == 3
    assert table["test_acc"].between(0, 1).all() and table["mean_si"].between(0, 1).all()
    for key in ("figure", "layers"):
        with Image.open(outputs[key]) as image:
            assert image.format == "PNG" and image.width > 500 and image.height > 300
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50  # a drawn figure, not a blank page


def test_demo_runs_in_two_processes_as_in_one(tmp_path, tiny_overrides):
    """Two worker processes give the same runs as one process: each run is seeded on its own.

    In float64: float32 end states of training are compared nowhere (two processes may round apart,
    and one ReLU input whose sign differs parts two runs)."""
    overrides = tiny_overrides + ["train.epochs=1", "train.dtype=float64"]
    one = pd.read_csv(run_demo(tmp_path / "one", alphas=(-2.0, 0.0), overrides=overrides, progress=False,
                               jobs=1)["results"])
    two = pd.read_csv(run_demo(tmp_path / "two", alphas=(-2.0, 0.0), overrides=overrides, progress=False,
                               jobs=2)["results"])
    assert two["test_acc"].tolist() == one["test_acc"].tolist()
    assert two["mean_si"].to_numpy() == pytest.approx(one["mean_si"].to_numpy(), rel=1e-9)
