"""`model.name: hf:DIR` for images: a Hugging Face image classifier (a tiny ViT built here) fine-tuned on
the bundled demo images with the knob, its head resized to the data's classes, then measured again."""

import json
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from selectivity.cli import main
from selectivity.config import load_config
from selectivity.train.trainer import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
pytest.importorskip("transformers")
import hf_folders as hf  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def test_an_hf_vit_trains_on_images_and_measures_as_it_reported(tmp_path, capsys):
    folder = hf.make_vit(tmp_path / "vit")  # 3 labels in its folder; the demo has 10 classes
    config = load_config("demo", [f"model.name=hf:{folder}", f"data.cache_dir={tmp_path / 'cache'}",
                                  "data.train_per_class=10", "data.test_limit=50", "train.epochs=1",
                                  "train.batch_size=20", "train.threads=1", "optim.name=adamw", "optim.lr=0.001",
                                  "regularizer.alpha=-1", "regularizer.warmup_epochs=0", "regularizer.tokens=cls"])
    final = train(config, tmp_path / "run", progress=False)
    assert final["status"] == "completed" and final["num_classes"] == 10
    weights = load_file(str(tmp_path / "run" / "weights.safetensors"))
    assert weights["classifier.weight"].shape == (10, 16)  # a new head of the data's size
    assert "vit.layers.0.mlp.fc1.weight" in weights  # Hugging Face's own names
    assert [k for k in final if k.startswith("si/")] == ["si/vit.layers.0.mlp.activation_fn",
                                                           "si/vit.layers.1.mlp.activation_fn"]
    assert main(["measure", str(tmp_path / "run"), "--no-progress"]) == 0
    measured = json.loads(next((tmp_path / "run").glob("measure-*.json")).read_text())
    assert measured["mean_si"] == pytest.approx(final["mean_si"], rel=1e-6)
    assert "measured on 50 images" in capsys.readouterr().out
