"""`selectivity train` fine-tunes a Hugging Face text classifier on labelled text with the knob.

A tiny BERT folder (random init, MiniLM's tokenizer) and a CSV written here; every run is a few
steps on the CPU. What training reports is checked against what the run directory gives when it
is opened and measured again, and the refusals are checked before anything is written.
"""

import json
import sys
from pathlib import Path

import pytest
import torch

from selectivity.cli import main
from selectivity.config import load_config
from selectivity.sweep.grid import run_id
from selectivity.train.trainer import load_data, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
pytest.importorskip("transformers")
import hf_folders as hf  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

TEXTS = [f"{word} {noun} number {i}" for i, (word, noun) in enumerate(
    [("great", "flight"), ("awful", "delay"), ("fine", "gate"), ("lovely", "crew"), ("terrible", "seat"),
     ("plain", "ticket")] * 8)]
LABELS = ["pos", "neg", "neutral"] * 16


def overrides(folder, data, *more):
    return [f"model.name=hf:{folder}", f"data.source={data}", "train.epochs=2", "train.batch_size=8",
            "optim.name=adamw", "optim.lr=0.001", "optim.weight_decay=0.01", "lr_schedule.kind=constant",
            "regularizer.warmup_epochs=0", "train.threads=1", *more]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    return hf.make_bert(root / "bert"), hf.write_texts(root / "texts.csv", TEXTS, LABELS)


def test_a_text_run_trains_and_measures_as_it_reported(tmp_path, tiny, capsys):
    folder, data = tiny
    config = load_config("demo", overrides(folder, data, "regularizer.alpha=-1", "data.max_length=5",
                                           "data.truncation=right"))
    final = train(config, tmp_path / "run", progress=False)
    assert final["status"] == "completed" and final["num_classes"] == 3 and final["n_test"] == 9  # 20% of 48 held out
    assert final["tokenization"] == {"tokenizer": "BertTokenizer", "max_length": 5, "truncation": "right",
                                     "truncated": 39, "model_max_length": 64}  # 6 tokens each
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["alpha"] == -1.0 and rows[0]["batch_si"] > 0
    assert main(["measure", str(tmp_path / "run"), "--no-progress"]) == 0  # opened again: its own test texts
    out = capsys.readouterr().out
    assert "network" in out and "measured on 9 texts of the test split" in out
    measured = json.loads(next((tmp_path / "run").glob("measure-*.json")).read_text())
    assert measured["mean_si"] == pytest.approx(final["mean_si"], rel=1e-6)
    assert measured["accuracy"] == final["test_acc"]


def test_a_longer_text_without_a_truncation_rule_is_refused_before_the_run_directory(tmp_path, tiny):
    folder, data = tiny
    with pytest.raises(Exception, match=r"more than the maximum of 4 \(39 text\(s\) in all\); give a truncation rule"):
        train(load_config("demo", overrides(folder, data, "data.max_length=4")), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_text_data_needs_a_hugging_face_text_model(tmp_path, tiny, capsys):
    _, data = tiny
    code = main(["train", "demo", "--data", str(data), "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 2 and "needs a Hugging Face text model (model.name: hf:DIR)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_stacked_text_runs_are_refused_with_the_reason_before_training(tmp_path, tiny, capsys):
    folder, data = tiny
    code = main(["sweep", "demo", "--alphas", "-1,0", "--seeds", "0", "--executor", "stacked", "--out",
                 str(tmp_path / "sweep"), "--no-progress", "--set", *overrides(folder, data)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot be trained stacked" in err and "--executor local" in err
    assert not list((tmp_path / "sweep").glob("*/weights.safetensors"))


def test_monoloss_with_a_hugging_face_text_encoder(tmp_path, tiny):
    folder, data = tiny
    config = load_config("demo", overrides(folder, data, "regularizer.kind=monoloss", "regularizer.lambda=0.3",
                                           "regularizer.embeddings=encoder", f"regularizer.encoder=hf:{folder}",
                                           "train.epochs=1"))
    train_split, _ = load_data(config, progress=False)
    rows = train_split.embeddings
    assert rows.shape == (len(train_split), 16)  # the encoder's hidden size: each text's mean over real tokens
    from selectivity.models.hf import load_hf

    loaded = load_hf(f"hf:{folder}")
    encoded = loaded.tokenizer(train_split.texts[3], return_tensors="pt")
    with torch.no_grad():
        hidden = loaded.model(**encoded).last_hidden_state[0]  # a keyword call: the model's own output
    torch.testing.assert_close(rows[3], hidden.mean(dim=0), rtol=1e-5, atol=1e-6)
    final = train(config, tmp_path / "run", progress=False, data=(train_split, _))
    assert final["status"] == "completed" and final["kind"] == "monoloss"


def test_new_data_keys_leave_the_ids_of_image_configs_alone():
    config = load_config("demo")
    assert run_id(config) == run_id(load_config("demo", ["data.text_column=text", "data.truncation=none"]))
    assert run_id(config) != run_id(load_config("demo", ["data.truncation=right"]))
