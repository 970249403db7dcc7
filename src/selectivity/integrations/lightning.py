"""The selectivity knob as a PyTorch Lightning callback.

.. code-block:: python

    from selectivity.integrations.lightning import SelectivityCallback

    trainer = L.Trainer(max_epochs=10, callbacks=[SelectivityCallback(alpha=-1.0, num_classes=10)])
    trainer.fit(module, train_loader, val_loader)   # any LightningModule, unchanged

**alpha < 0 discourages selectivity, alpha > 0 encourages it, alpha = 0 is plain training.**

How the term reaches the gradient: at the start of fitting the callback hooks the chosen
layers of the LightningModule (names as ``module.named_modules()`` gives them) and wraps the
module's ``training_step`` (an attribute of this one object, removed again when fitting ends):
the wrapper returns the user's loss plus ``reg.loss(y)`` of the batch it just ran. Lightning
then treats the sum as the step's loss, so the term is divided by ``accumulate_grad_batches``
with it, scaled with it by a mixed-precision grad scaler, and reduced with it by DDP (where the
wrapper runs inside DDP's forward). With ``sync="global"`` (the default) the term under
``strategy="ddp"`` is the SI of the global batch, as in ``selectivity train`` under torchrun.

Needs ``pip install 'selectivity[lightning]'`` (the ``lightning`` package, ``lightning.pytorch``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from ..core.probe import LayerSpec
from ..core.schedule import LinearWarmup, Schedule
from .common import PREFIX, Knob, StepLog, ValidationMeter, require

_pl = require("lightning.pytorch", "lightning", "selectivity.integrations.lightning")

__all__ = ["SelectivityCallback"]


class SelectivityCallback(_pl.Callback):
    r"""Adds ``-alpha * batch selectivity`` to every training step of a LightningModule, and logs it.

    .. math:: L = L_{\mathrm{module}} - \alpha \cdot \overline{SI}_{batch}

    (or ``- lam * batch MonoScore`` with ``kind="monoloss"``). alpha < 0 discourages
    selectivity, alpha > 0 encourages it, alpha = 0 is plain training.

    Args:
        alpha (float): the knob (``kind="si"``).
        num_classes (int): C; every label must be smaller.
        layers: module names or glob patterns relative to the LightningModule (e.g.
            ``"model.layer*"``), or None for the default rule on the LightningModule: its
            ``selectivity_layers`` attribute, transformer MLP activations, else every residual
            block. Default: None.
        kind (str): ``"si"`` (alpha on SI) or ``"monoloss"`` (``lam`` on MonoScore). Default: "si".
        lam (float | None): MonoLoss's lambda (``kind="monoloss"``). Default: None.
        embeddings: MonoLoss's embeddings: ``"labels"`` (one-hot) or a function of the batch
            returning its (N, D) embeddings. Default: "labels".
        schedule: multiplier of the knob as a function of (step, epoch); epochs are Lightning's
            (fractional within an epoch, from ``trainer.num_training_batches``). None: full
            strength from the first step. Default: ``LinearWarmup(5)``.
        steps_per_epoch (int | None): batches per epoch for the schedule; None: Lightning's
            count of training batches (an epoch-counted schedule over an iterable without
            length then advances once per epoch). Default: None.
        eps, check, track, sync, tokens, positive_part: as for
            :class:`~selectivity.SelectivityRegularizer`; ``track`` (default True) measures the
            batch score for the log while the scheduled knob is 0.
        labels: a function of the batch returning its (N,) labels, for batches that are neither
            ``(x, y, ...)`` nor a dict with ``labels``, ``label`` or ``y``. Default: None.
        measure (bool): stream a :class:`~selectivity.SelectivityMeter` over every validation
            epoch of the same layers and log its results. Default: True.

    Logged with ``module.log`` (keys under ``selectivity/``): at each step the logger writes
    (``log_every_n_steps``) ``alpha_now`` (or ``lambda_now``), ``batch_si``
    (``batch_monoscore``) and ``batch_si/<layer>`` of that step; at each
    training epoch's end their epoch means (``..._epoch``); at each validation epoch's end
    (not the sanity check) ``val_si``, ``val_si/<layer>``, ``val_si_live``,
    ``val_dead_fraction`` and ``val_monoscore``. The module's own loss is what it logs itself.

    Errors, each one line, before the first optimizer step: a bad argument (at construction),
    layers that match nothing (at the start of fitting, listing the module's names), labels
    that cannot be found or are not below ``num_classes`` (at the step that meets them), manual
    optimization (the term would not reach its ``manual_backward``).
    """

    def __init__(self, alpha: float | None = None, num_classes: int | None = None, layers: LayerSpec = None, *,
                 kind: str = "si", lam: float | None = None, embeddings: str | Callable = "labels",
                 schedule: Schedule | None = LinearWarmup(5.0), steps_per_epoch: int | None = None,
                 eps: float | None = None, check: bool = True, track: bool = True, sync: str = "global",
                 tokens: str | None = None, positive_part: bool | None = None,
                 labels: Callable[[object], Tensor] | None = None, measure: bool = True):
        self.knob = Knob("SelectivityCallback", alpha, num_classes, layers, kind=kind, lam=lam,
                         embeddings=embeddings, schedule=schedule, steps_per_epoch=steps_per_epoch, eps=eps,
                         check=check, track=track, sync=sync, tokens=tokens, positive_part=positive_part,
                         labels=labels)
        self.measure = bool(measure)
        self.regularizer = None
        self.meter: ValidationMeter | None = None
        self._log: StepLog | None = None
        self._module = None
        self._wrapper = None
        self._pending: tuple | None = None  # (labels, embeddings, knob value) of the batch about to run
        self._step_values: dict = {}

    # -- set-up and tear-down -------------------------------------------------------------
    def on_fit_start(self, trainer, pl_module) -> None:
        if not pl_module.automatic_optimization:
            raise ValueError("SelectivityCallback needs automatic optimization: under manual optimization the term "
                             "cannot join your manual_backward; add reg.loss(y) to your loss there instead "
                             "(reg = selectivity.SelectivityRegularizer(self, ...))")
        self._close()
        self.regularizer = self.knob.build(pl_module, None)  # steps per epoch: known once the data is
        self._log = StepLog(self.knob, self.regularizer.layers)
        if self.measure:
            self.meter = self.knob.meter(pl_module, self.regularizer.layers)
        self._wrap(pl_module)

    def on_validation_start(self, trainer, pl_module) -> None:
        if self.measure and self.meter is None:  # trainer.validate() without fitting
            self.meter = self.knob.meter(pl_module, self.knob.layers)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._close()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._close()  # Lightning skips teardown when fitting raises

    def _close(self) -> None:
        if self._module is not None and self._module.__dict__.get("training_step") is self._wrapper:
            del self._module.training_step  # the class's own method again
        self._module = self._wrapper = None
        for owner in (self.regularizer, self.meter):
            if owner is not None:
                owner.close()
        self.regularizer = self.meter = None
        self._pending = None

    def _wrap(self, pl_module) -> None:
        step = pl_module.training_step  # the bound method of the module's class

        @functools.wraps(step)  # Lightning reads the signature (batch_idx?) through __wrapped__
        def training_step(*args, **kwargs):
            out = step(*args, **kwargs)
            if self._pending is None:
                raise RuntimeError("SelectivityCallback saw no batch before training_step (a training_step that "
                                   "takes a dataloader_iter is not supported)")
            labels, extra, knob_now = self._pending
            self._pending = None
            if out is None:  # the module skips this batch: no term, no step
                self.regularizer.probe.clear()
                return None
            self.regularizer.last_selectivity = self.regularizer.last_per_layer = None
            with torch.autocast(labels.device.type, enabled=False):  # float32 or wider, as in a plain loop
                term = self.regularizer.loss(labels, *extra)  # -alpha * batch SI (or -lambda * batch MonoScore)
            self._step_values = {**self._log.values(self.regularizer, knob_now), "batch_size": labels.shape[0]}
            if isinstance(out, Tensor):
                return out + term
            if isinstance(out, Mapping) and isinstance(out.get("loss"), Tensor):
                return {**out, "loss": out["loss"] + term}
            raise TypeError("SelectivityCallback: training_step must return the loss tensor or a dict with 'loss' "
                            f"(or None to skip the batch), got {type(out).__name__}")

        pl_module.training_step = training_step
        self._module, self._wrapper = pl_module, training_step

    # -- training -------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        batches = trainer.num_training_batches
        reg = self.regularizer
        counted = int(batches) if math.isfinite(batches) and batches else None  # inf: an iterable without length
        reg.steps_per_epoch = self.knob.steps_per_epoch or counted
        reg.set_epoch(trainer.current_epoch)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        labels = self.knob.labels_of(batch)  # a one-line error here, before the first step, if not found
        reg = self.regularizer
        if reg.steps_per_epoch:  # the schedule's place from Lightning's own count (resumes, skipped batches)
            reg.set_epoch(trainer.current_epoch + batch_idx / reg.steps_per_epoch)
        self._pending = (labels, self.knob.embeddings_of(batch), reg.current_alpha)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        values, self._step_values = self._step_values, {}
        n = values.pop("batch_size", 0)
        if not _writes_step_logs(trainer):
            return  # the epoch means still count this step (StepLog.values)
        for key, value in values.items():
            pl_module.log(key, _exact(value, pl_module), on_step=True, on_epoch=False, batch_size=n)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # Same on every rank with sync="global"; with "local", the mean of the ranks' estimates.
        for key, value in self._log.interval_means().items():
            pl_module.log(f"{key}_epoch", _exact(value, pl_module), on_step=False, on_epoch=True, sync_dist=True)

    # -- validation -----------------------------------------------------------------------
    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if self.meter is not None and not trainer.sanity_checking:
            self.meter.start()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if self.meter is not None and self.meter.active:
            self.meter.update(self.knob.labels_of(batch))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self.meter is None or not self.meter.active:
            return
        # compute() sums every rank's state: the values are the same on every rank.
        for key, value in self.meter.finish().items():
            pl_module.log(f"{PREFIX}val_{key}", _exact(value, pl_module), on_step=False, on_epoch=True, sync_dist=True)


def _writes_step_logs(trainer) -> bool:
    # Lightning writes step values every log_every_n_steps only, and a value logged in between is
    # replaced unread; each log() costs about half a millisecond, so log where the logger writes.
    connector = getattr(trainer, "_logger_connector", None)
    return bool(getattr(connector, "should_update_logs", True))


def _exact(value, pl_module) -> Tensor:
    # Lightning stores a Python float in the default dtype (float32); a float64 tensor is kept as it is.
    return torch.as_tensor(value, dtype=torch.float64, device=pl_module.device)
