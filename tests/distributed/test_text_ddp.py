"""A 2-process text run (gloo, CPU) is the 1-process run, in float64: Hugging Face model, text batches."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selectivity.config import config_from_dict, config_to_dict, load_config
from selectivity.train.trainer import load_data, train

from .ranks import run_ranks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
pytest.importorskip("transformers")
import hf_folders as hf  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::RuntimeWarning")]


def _train_rank(rank, world, config_dict, out, data):
    return train(config_from_dict(config_dict), out, progress=False, data=data)


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_two_processes_train_the_text_weights_of_one(tmp_path, alpha):
    # No dropout: each process draws its own masks for its slice, so with dropout the two runs are two draws.
    # SGD: the gradient of an attention key's bias is 0 in exact arithmetic (softmax ignores a constant), and
    # Adam divides its rounding noise (1e-22) by its own size, so two summation orders move it apart by lr.
    folder = hf.make_bert(tmp_path / "bert", architecture="BertModel", hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0)
    texts = [f"{w} flight {i} " + "and more " * (i % 5) for i, w in enumerate(["great", "awful", "fine"] * 12)]
    data = hf.write_texts(tmp_path / "t.csv", texts, ["pos", "neg", "neutral"] * 12)
    config = load_config("demo", [f"model.name=hf:{folder}", f"data.source={data}", "train.epochs=2",
                                  "train.batch_size=8", "optim.name=sgd", "optim.lr=0.05",
                                  "lr_schedule.kind=constant", "regularizer.warmup_epochs=0", f"regularizer.alpha={alpha}",
                                  "train.threads=1", "train.dtype=float64"])
    split = load_data(config, progress=False)
    torch.manual_seed(0)
    one = train(config, tmp_path / "one", progress=False, data=split)
    finals = run_ranks(_train_rank, 2, tmp_path, config_to_dict(config), tmp_path / "two", split, timeout=120)
    assert finals[0]["processes"] == 2 and one["processes"] == 1
    w1 = load_file(str(tmp_path / "one" / "weights.safetensors"))
    w2 = load_file(str(tmp_path / "two" / "weights.safetensors"))
    assert w1.keys() == w2.keys()
    start = load_file(str(folder / "model.safetensors"))
    moved = [k for k in start if not torch.equal(w1[f"bert.{k}"], start[k].double())]  # BertModel in the classifier
    assert moved  # training changed the weights
    # Relative, with a floor of 1e-6: the attention keys' biases are 0 in exact arithmetic (norm 1e-21 here,
    # rounding noise), so for them this asks that the two runs agree to 1e-15 in absolute terms.
    gaps = {k: float((w2[k] - w1[k]).norm() / w1[k].norm().clamp(min=1e-6)) for k in w1 if w1[k].is_floating_point()}
    worst = max(gaps, key=gaps.get)
    assert gaps[worst] < 1e-9, (worst, gaps[worst], float(w1[worst].norm()))
    assert finals[0]["mean_si"] == pytest.approx(one["mean_si"], rel=1e-9)
