"""SelectivityCallback: N Lightning steps equal N steps of the plain loop with the library's
regularizer (float64, 1e-9), with gradient accumulation, MonoLoss and a warm-up; its logs
are the plain loop's values; bad input is a one-line error before the first step."""

from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F

from selectivity import LayerSelectionError, LinearWarmup, SelectivityMeter, SelectivityRegularizer
from selectivity.core import MonoLossRegularizer
from selectivity.integrations.lightning import SelectivityCallback

from .helpers import LAYERS, NUM_CLASSES, batches, plain_loop, relative_difference, tiny_data, tiny_net
from .lightning_modules import Classifier, loader, trainer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

MODULE_LAYERS = [f"net.{name}" for name in LAYERS]  # names relative to the LightningModule
BATCH = 8


def _fit(tmp_path, callback, epochs=2, accumulate=1, dict_batches=False, n=48, **kwargs):
    x, y = tiny_data(n)
    module = Classifier(tiny_net(), dict_batches=dict_batches)
    fit = trainer(tmp_path, [callback] if callback else [], max_epochs=epochs, accumulate_grad_batches=accumulate,
                  **kwargs)
    fit.fit(module, loader(x, y, BATCH, dict_batches))
    return module.net


def _plain(epochs=2, accumulate=1, make_reg=None, record=None, n=48):
    x, y = tiny_data(n)
    return plain_loop(tiny_net(), batches(x, y, BATCH), epochs, make_reg, accumulate, record)


CASES = {
    # name: (callback kwargs, the plain loop's regularizer, accumulate, dict batches)
    "si": (dict(alpha=-1.0, schedule=None),
           lambda m, spe: SelectivityRegularizer(m, -1.0, NUM_CLASSES, LAYERS, schedule=None), 1, False),
    "si, accumulate 3": (dict(alpha=2.0, schedule=None),
                         lambda m, spe: SelectivityRegularizer(m, 2.0, NUM_CLASSES, LAYERS, schedule=None), 3, False),
    "monoloss, accumulate 2, dict batches": (
        dict(kind="monoloss", lam=5.0, schedule=None),
        lambda m, spe: MonoLossRegularizer(m, 5.0, NUM_CLASSES, LAYERS, schedule=None), 2, True),
    "si, warm-up over 1.5 epochs": (
        dict(alpha=-3.0, schedule=LinearWarmup(1.5)),
        lambda m, spe: SelectivityRegularizer(m, -3.0, NUM_CLASSES, LAYERS, schedule=LinearWarmup(1.5),
                                              steps_per_epoch=spe), 1, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_lightning_with_the_callback_trains_the_weights_of_the_plain_loop(tmp_path, case):
    kwargs, make_reg, accumulate, dict_batches = CASES[case]
    got = _fit(tmp_path, SelectivityCallback(num_classes=NUM_CLASSES, layers=MODULE_LAYERS, **kwargs),
               accumulate=accumulate, dict_batches=dict_batches)
    want = _plain(accumulate=accumulate, make_reg=make_reg)
    assert relative_difference(got.state_dict(), want.state_dict()) < 1e-9
    # The knob changed the weights: the same run without it is far away.
    without = _plain(accumulate=accumulate)
    assert relative_difference(got.state_dict(), without.state_dict()) > 1e-4


def test_the_callback_leaves_the_module_as_it_was_after_fitting(tmp_path):
    x, y = tiny_data()
    module = Classifier(tiny_net())
    trainer(tmp_path, [SelectivityCallback(-1.0, NUM_CLASSES, MODULE_LAYERS, schedule=None)]).fit(
        module, loader(x, y, BATCH))
    assert "training_step" not in module.__dict__  # the class's own method again
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in module.modules())


def _metrics(tmp_path) -> list[dict]:
    [path] = tmp_path.glob("**/metrics.csv")
    with path.open() as f:
        return list(csv.DictReader(f))


def test_the_log_holds_the_plain_loops_alpha_now_batch_si_and_the_validation_meter(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    x, y = tiny_data()
    vx, vy = tiny_data(20, seed=7)
    module = Classifier(tiny_net())
    callback = SelectivityCallback(-3.0, NUM_CLASSES, MODULE_LAYERS, schedule=LinearWarmup(1.5))
    fit = trainer(tmp_path, [callback], logger=CSVLogger(tmp_path), log_every_n_steps=1)
    fit.fit(module, loader(x, y, BATCH), loader(vx, vy, 6))
    rows = _metrics(tmp_path)

    record: list = []
    _plain(make_reg=lambda m, spe: SelectivityRegularizer(m, -3.0, NUM_CLASSES, LAYERS, track=True,
                                                          schedule=LinearWarmup(1.5), steps_per_epoch=spe),
           record=record)
    steps = [r for r in rows if r.get("selectivity/alpha_now")]
    assert len(steps) == len(record) == 12
    for row, (knob, score) in zip(steps, record):
        assert float(row["selectivity/alpha_now"]) == pytest.approx(knob, rel=1e-12, abs=1e-15)
        assert float(row["selectivity/batch_si"]) == pytest.approx(score, rel=1e-9)  # tracked at alpha_now 0 too
        assert all(row[f"selectivity/batch_si/{name}"] for name in MODULE_LAYERS)
    # 6 steps an epoch, full alpha (-3) after 1.5 epochs = 9 steps: -3 * k / 9 at step k, then -3.
    assert [float(r["selectivity/alpha_now"]) for r in steps] == pytest.approx([-k / 3 for k in range(9)] + [-3.0] * 3)

    # Each validation epoch: the meter over the whole validation set, as a SelectivityMeter gives it.
    val = [r for r in rows if r.get("selectivity/val_si")]
    assert len(val) == 2
    net = module.net.eval()
    with SelectivityMeter(net, NUM_CLASSES, LAYERS) as meter:
        for i in range(0, 20, 6):
            meter.update(vx[i:i + 6], vy[i:i + 6])
    result = meter.compute()
    last = val[-1]
    assert float(last["selectivity/val_si"]) == pytest.approx(result.mean, rel=1e-9)
    for name, layer in zip(MODULE_LAYERS, LAYERS):
        assert float(last[f"selectivity/val_si/{name}"]) == pytest.approx(result.per_layer[layer], rel=1e-9)
    assert float(last["selectivity/val_dead_fraction"]) == pytest.approx(result.dead_fraction)
    epoch_means = [r for r in rows if r.get("selectivity/batch_si_epoch")]
    assert len(epoch_means) == 2
    assert float(epoch_means[0]["selectivity/batch_si_epoch"]) == pytest.approx(
        sum(s for _, s in record[:6]) / 6, rel=1e-9)


# -- bad input: one line, before the first optimizer step ------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(alpha=-1.0, num_classes=4, kind="entropy"), "kind must be 'si' (alpha) or 'monoloss' (lam), got 'entropy'"),
    (dict(alpha=float("nan"), num_classes=4), "alpha must be a finite number, got nan"),
    (dict(alpha=float("inf"), num_classes=4), "alpha must be a finite number, got inf"),
    (dict(alpha=-1.0, num_classes=1), "num_classes must be an int >= 2"),
    (dict(kind="monoloss", lam=None, num_classes=4), "kind='monoloss' needs lam"),
    (dict(alpha=-1.0, lam=0.1, num_classes=4), "kind='si' takes its knob as alpha, not lam"),
    (dict(alpha=-1.0, num_classes=4, sync="all"), "sync must be 'global' or 'local'"),
])
def test_bad_arguments_are_refused_at_construction(kwargs, message):
    with pytest.raises(ValueError) as err:
        SelectivityCallback(**kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def _refused(tmp_path, callback, error, x=None, y=None, module=None, data=None):
    module = module or Classifier(tiny_net())
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.raises(error) as err:
        trainer(tmp_path, [callback]).fit(module, data or loader(*(tiny_data() if x is None else (x, y)), BATCH))
    assert "\n" not in str(err.value)
    assert relative_difference(before, module.state_dict()) == 0.0  # no step was taken
    assert "training_step" not in module.__dict__ and all(not m._forward_hooks for m in module.modules())
    return str(err.value)


def test_layers_that_match_nothing_list_the_modules_of_the_lightning_module(tmp_path):
    message = _refused(tmp_path, SelectivityCallback(-1.0, NUM_CLASSES, ["features.1"]), LayerSelectionError)
    assert "'features.1' matches no module" in message
    assert "relative to the Classifier, whose modules are [net, net.features, net.features.0" in message


def test_a_label_not_below_num_classes_is_refused_at_the_step_that_meets_it(tmp_path):
    x, y = tiny_data()
    y = y.clone()
    y[5] = 7
    message = _refused(tmp_path, SelectivityCallback(-1.0, NUM_CLASSES, MODULE_LAYERS), ValueError, x, y)
    assert message == ("SelectivityCallback: num_classes is 4 but a batch holds the label 7: "
                       "num_classes must be larger than every label")


def test_labels_that_cannot_be_found_are_refused_at_the_first_step(tmp_path):
    from torch.utils.data import DataLoader

    x, _ = tiny_data()
    message = _refused(tmp_path, SelectivityCallback(-1.0, NUM_CLASSES, MODULE_LAYERS), ValueError,
                       data=DataLoader(x, batch_size=BATCH))
    assert "cannot find the labels of a batch of type Tensor" in message and "labels=lambda batch" in message


def test_a_labels_function_finds_labels_anywhere(tmp_path):
    x, y = tiny_data()

    class Swapped(Classifier):
        def training_step(self, batch, batch_idx):
            return super().training_step(batch[::-1], batch_idx)

    module = Swapped(tiny_net())
    callback = SelectivityCallback(-1.0, NUM_CLASSES, MODULE_LAYERS, schedule=None, labels=lambda batch: batch[0])
    from torch.utils.data import DataLoader, TensorDataset
    trainer(tmp_path, [callback]).fit(module, DataLoader(TensorDataset(y, x), batch_size=BATCH))
    want = _plain(make_reg=lambda m, spe: SelectivityRegularizer(m, -1.0, NUM_CLASSES, LAYERS, schedule=None))
    assert relative_difference(module.net.state_dict(), want.state_dict()) < 1e-9


def test_manual_optimization_is_refused(tmp_path):
    class Manual(Classifier):
        def __init__(self, net):
            super().__init__(net)
            self.automatic_optimization = False

    message = _refused(tmp_path, SelectivityCallback(-1.0, NUM_CLASSES, MODULE_LAYERS), ValueError,
                       module=Manual(tiny_net()))
    assert "needs automatic optimization" in message


# -- 16-bit autocast ---------------------------------------------------------------------------

def _embeddings(batch):
    """MonoLoss's embeddings of a batch: a fixed function of its images (a matmul under autocast)."""
    return batch[0].flatten(1)[:, :5]


BF16 = {
    "si": (dict(alpha=-1.0), lambda m: SelectivityRegularizer(m, -1.0, NUM_CLASSES, LAYERS, schedule=None)),
    "monoloss, given embeddings": (
        dict(kind="monoloss", lam=5.0, embeddings=_embeddings),
        lambda m: MonoLossRegularizer(m, 5.0, NUM_CLASSES, LAYERS, embeddings="given", schedule=None)),
}


@pytest.mark.parametrize("case", list(BF16))
def test_bf16_mixed_on_the_cpu_trains_the_weights_of_the_plain_loop_under_the_same_autocast(tmp_path, case):
    """precision="bf16-mixed": the module's step runs under autocast, the term with autocast off
    (float32 sums, as in a plain loop that adds reg.loss(y) after its autocast block)."""
    kwargs, make_reg = BF16[case]
    x, y = tiny_data()
    x = x.float()
    module = Classifier(tiny_net().float())
    callback = SelectivityCallback(num_classes=NUM_CLASSES, layers=MODULE_LAYERS, schedule=None, **kwargs)
    trainer(tmp_path, [callback], precision="bf16-mixed").fit(module, loader(x, y, BATCH))

    model = tiny_net().float()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    reg = make_reg(model)
    for _ in range(2):
        for xb, yb in batches(x, y, BATCH):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                ce = F.cross_entropy(model(xb), yb)
            extra = (_embeddings((xb, yb)),) if "embeddings" in kwargs else ()
            loss = ce + reg.loss(yb, *extra)
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert relative_difference(module.net.state_dict(), model.state_dict()) < 1e-6


def test_step_values_go_to_the_steps_the_logger_writes(tmp_path):
    """log_every_n_steps=4: the rows of steps 3, 7, 11 hold those steps' values, and nothing is lost
    from the epoch means."""
    from lightning.pytorch.loggers import CSVLogger

    x, y = tiny_data()
    callback = SelectivityCallback(-3.0, NUM_CLASSES, MODULE_LAYERS, schedule=LinearWarmup(1.5))
    trainer(tmp_path, [callback], logger=CSVLogger(tmp_path), log_every_n_steps=4).fit(
        Classifier(tiny_net()), loader(x, y, BATCH))
    record: list = []
    _plain(make_reg=lambda m, spe: SelectivityRegularizer(m, -3.0, NUM_CLASSES, LAYERS, track=True,
                                                          schedule=LinearWarmup(1.5), steps_per_epoch=spe),
           record=record)
    rows = [r for r in _metrics(tmp_path) if r.get("selectivity/alpha_now")]
    assert [int(r["step"]) for r in rows] == [3, 7, 11]
    for row in rows:
        knob, score = record[int(row["step"])]
        assert float(row["selectivity/alpha_now"]) == pytest.approx(knob, rel=1e-12)
        assert float(row["selectivity/batch_si"]) == pytest.approx(score, rel=1e-9)
    means = [float(r["selectivity/batch_si_epoch"]) for r in _metrics(tmp_path) if r.get("selectivity/batch_si_epoch")]
    assert means == pytest.approx([sum(s for _, s in record[:6]) / 6, sum(s for _, s in record[6:]) / 6], rel=1e-9)
