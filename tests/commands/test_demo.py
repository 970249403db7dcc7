import pandas as pd
from PIL import Image

from selectivity.commands.demo import run_demo


def test_demo_writes_the_table_and_figures(tmp_path, tiny_overrides):
    outputs = run_demo(tmp_path / "demo", alphas=(-2.0, 0.0, 2.0), overrides=tiny_overrides + ["train.epochs=1"],
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
