"""add_selectivity: N steps of a transformers.Trainer equal N steps of the plain loop with the
library's regularizer (float64, 1e-9), with gradient accumulation, MonoLoss, a warm-up and a
Hugging Face ViT; its logs and evaluation metrics are the plain loop's and the meter's values."""

from __future__ import annotations

import pytest
import torch

from selectivity import LayerSelectionError, LinearWarmup, SelectivityMeter, SelectivityRegularizer
from selectivity.core import MonoLossRegularizer
from selectivity.integrations.hf import add_selectivity

from .helpers import LAYERS, NUM_CLASSES, batches, plain_loop, relative_difference, tiny_data, tiny_net
from .hf_models import ForTrainer, examples, tiny_vit, trainer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning", "ignore::RuntimeWarning")

MODEL_LAYERS = [f"net.{name}" for name in LAYERS]  # names relative to trainer.model
BATCH = 8

CASES = {
    "si": (dict(alpha=-1.0, schedule=None),
           lambda m, spe: SelectivityRegularizer(m, -1.0, NUM_CLASSES, LAYERS, schedule=None), 1),
    "si, accumulate 3": (dict(alpha=2.0, schedule=None),
                         lambda m, spe: SelectivityRegularizer(m, 2.0, NUM_CLASSES, LAYERS, schedule=None), 3),
    "monoloss, accumulate 2": (dict(kind="monoloss", lam=5.0, schedule=None),
                               lambda m, spe: MonoLossRegularizer(m, 5.0, NUM_CLASSES, LAYERS, schedule=None), 2),
    "si, warm-up over 1.5 epochs": (
        dict(alpha=-3.0, schedule=LinearWarmup(1.5)),
        lambda m, spe: SelectivityRegularizer(m, -3.0, NUM_CLASSES, LAYERS, schedule=LinearWarmup(1.5),
                                              steps_per_epoch=spe), 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_trainer_with_the_knob_trains_the_weights_of_the_plain_loop(tmp_path, case):
    kwargs, make_reg, accumulate = CASES[case]
    x, y = tiny_data()
    model = ForTrainer(tiny_net())
    hf = trainer(tmp_path, model, examples(x, y), accumulate=accumulate)
    assert not hf.model_accepts_loss_kwargs  # the Trainer divides this model's loss by k
    add_selectivity(hf, num_classes=NUM_CLASSES, layers=MODEL_LAYERS, **kwargs)
    hf.train()
    want = plain_loop(tiny_net(), batches(x, y, BATCH), 2, make_reg, accumulate)
    assert relative_difference(model.net.state_dict(), want.state_dict()) < 1e-9
    without = plain_loop(tiny_net(), batches(x, y, BATCH), 2, None, accumulate)
    assert relative_difference(model.net.state_dict(), without.state_dict()) > 1e-4


def _vit_loop(model, data, epochs, reg, accumulate):
    """The plain loop for a Hugging Face model: its own loss, plus the term, over k micro-batches."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(epochs):
        for i, (x, y) in enumerate(data):
            loss = model(pixel_values=x, labels=y).loss + reg.loss(y)
            (loss / accumulate).backward()
            if (i + 1) % accumulate == 0:
                opt.step()
                opt.zero_grad()
    return model


def test_a_hugging_face_vit_with_its_default_layers_trains_the_weights_of_the_plain_loop(tmp_path):
    """The ViT takes the Trainer's loss kwargs (its loss is normalized over the step's items, not
    divided by k afterwards): the term's 1/k must not depend on that."""
    x, y = tiny_data()
    model = tiny_vit()
    hf = trainer(tmp_path, model, examples(x, y), accumulate=2)
    knob = add_selectivity(hf, alpha=-2.0, num_classes=NUM_CLASSES, schedule=None)
    # The default rule: each block's MLP activation (the hidden units after the GELU).
    acts = [n for n, m in model.named_modules() if type(m).__name__ == "GELUActivation" and "attention" not in n]
    assert knob.regularizer.layers == acts and len(acts) == 2
    assert hf.model_accepts_loss_kwargs  # the case the docstring names
    hf.train()
    want_model = tiny_vit()
    reg = SelectivityRegularizer(want_model, -2.0, NUM_CLASSES, schedule=None)
    want = _vit_loop(want_model, batches(x, y, BATCH), 2, reg, 2)
    assert relative_difference(model.state_dict(), want.state_dict()) < 1e-9
    without = _vit_loop(tiny_vit(), batches(x, y, BATCH), 2, SelectivityRegularizer(tiny_vit(), 0.0, NUM_CLASSES), 2)
    assert relative_difference(model.state_dict(), without.state_dict()) > 1e-4


def test_the_logs_hold_the_plain_loops_values_and_evaluation_adds_the_meter(tmp_path):
    x, y = tiny_data()
    vx, vy = tiny_data(20, seed=7)
    model = ForTrainer(tiny_net())
    hf = trainer(tmp_path, model, examples(x, y), examples(vx, vy), accumulate=2, eval_strategy="epoch")
    knob = add_selectivity(hf, -3.0, NUM_CLASSES, MODEL_LAYERS, schedule=LinearWarmup(1.5))
    hf.train()

    record: list = []
    plain_loop(tiny_net(), batches(x, y, BATCH), 2,
               lambda m, spe: SelectivityRegularizer(m, -3.0, NUM_CLASSES, LAYERS, track=True,
                                                     schedule=LinearWarmup(1.5), steps_per_epoch=spe), 2, record)
    logs = [h for h in hf.state.log_history if "loss" in h]
    assert len(logs) == 6 and len(record) == 12  # one log per optimizer step of 2 micro-batches
    for log, pair in zip(logs, zip(record[::2], record[1::2])):
        assert log["selectivity/alpha_now"] == pytest.approx(sum(k for k, _ in pair) / 2, rel=1e-12, abs=1e-15)
        assert log["selectivity/batch_si"] == pytest.approx(sum(s for _, s in pair) / 2, rel=1e-9)
        assert all(f"selectivity/batch_si/{name}" in log for name in MODEL_LAYERS)
    # 6 micro-batches an epoch, full alpha after 9: the knob of micro-batch k is -3 * k / 9.
    assert logs[0]["selectivity/alpha_now"] == pytest.approx((0 - 1 / 3) / 2)

    evals = [h for h in hf.state.log_history if "eval_selectivity/si" in h]
    assert len(evals) == 2
    net = model.net.eval()
    with SelectivityMeter(net, NUM_CLASSES, LAYERS) as meter:
        for i in range(0, 20, 6):
            meter.update(vx[i:i + 6], vy[i:i + 6])
    result = meter.compute()
    assert evals[-1]["eval_selectivity/si"] == pytest.approx(result.mean, rel=1e-9)
    for name, layer in zip(MODEL_LAYERS, LAYERS):
        assert evals[-1][f"eval_selectivity/si/{name}"] == pytest.approx(result.per_layer[layer], rel=1e-9)
    assert evals[-1]["eval_selectivity/dead_fraction"] == pytest.approx(result.dead_fraction)
    assert hf.evaluate()["eval_selectivity/si"] == pytest.approx(result.mean, rel=1e-9)

    knob.close()  # the Trainer as it was
    assert not any(k in hf.__dict__ for k in ("compute_loss", "log", "prediction_step", "evaluation_loop"))
    assert "backward" not in hf.accelerator.__dict__
    assert all(not m._forward_hooks for m in model.modules())
    assert "eval_selectivity/si" not in hf.evaluate()


def test_bad_input_is_one_line_before_the_first_step(tmp_path):
    x, y = tiny_data()
    model = ForTrainer(tiny_net())
    hf = trainer(tmp_path, model, examples(x, y))
    with pytest.raises(LayerSelectionError) as err:
        add_selectivity(hf, -1.0, NUM_CLASSES, ["features.1"])
    assert "relative to the ForTrainer, whose modules are [net, net.features, net.features.0" in str(err.value)
    with pytest.raises(ValueError, match="alpha must be a finite number, got nan"):
        add_selectivity(hf, float("nan"), NUM_CLASSES)
    with pytest.raises(ValueError, match="kind must be 'si'"):
        add_selectivity(hf, -1.0, NUM_CLASSES, kind="l1")

    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = y.clone()
    bad[3] = 9
    hf = trainer(tmp_path, model, examples(x, bad))
    add_selectivity(hf, -1.0, NUM_CLASSES, MODEL_LAYERS)
    with pytest.raises(ValueError) as err:
        hf.train()
    assert str(err.value) == ("add_selectivity: num_classes is 4 but a batch holds the label 9: "
                              "num_classes must be larger than every label")
    assert relative_difference(before, model.state_dict()) == 0.0

    hf = trainer(tmp_path, model, [{"pixel_values": x[i], "target": y[i]} for i in range(len(y))])
    add_selectivity(hf, -1.0, NUM_CLASSES, MODEL_LAYERS)
    with pytest.raises(ValueError, match="cannot find the labels of a dict batch with keys"):
        hf.train()
    assert relative_difference(before, model.state_dict()) == 0.0


def _embeddings(inputs):
    """MonoLoss's embeddings of a batch: a fixed function of its images (a matmul under autocast)."""
    return inputs["pixel_values"].flatten(1)[:, :5]


@pytest.mark.parametrize("monoloss", [False, True], ids=["si", "monoloss, given embeddings"])
def test_bf16_on_the_cpu_trains_the_weights_of_the_plain_loop_under_the_same_autocast(tmp_path, monoloss):
    """bf16=True: the model runs under accelerate's autocast, the term with autocast off."""
    x, y = tiny_data()
    x = x.float()
    model = ForTrainer(tiny_net().float())
    hf = trainer(tmp_path, model, examples(x, y), accumulate=2, bf16=True)
    knob = dict(kind="monoloss", lam=5.0, embeddings=_embeddings) if monoloss else dict(alpha=-1.0)
    add_selectivity(hf, num_classes=NUM_CLASSES, layers=MODEL_LAYERS, schedule=None, **knob)
    hf.train()

    want = ForTrainer(tiny_net().float())
    reg = (MonoLossRegularizer(want, 5.0, NUM_CLASSES, MODEL_LAYERS, embeddings="given", schedule=None) if monoloss
           else SelectivityRegularizer(want, -1.0, NUM_CLASSES, MODEL_LAYERS, schedule=None))
    opt = torch.optim.SGD(want.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        for i, (xb, yb) in enumerate(batches(x, y, BATCH)):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                ce = want(pixel_values=xb, labels=yb)["loss"]
            extra = (_embeddings({"pixel_values": xb}),) if monoloss else ()
            ((ce + reg.loss(yb, *extra)) / 2).backward()
            if i % 2 == 1:
                opt.step()
                opt.zero_grad()
    assert relative_difference(model.state_dict(), want.state_dict()) < 1e-6
