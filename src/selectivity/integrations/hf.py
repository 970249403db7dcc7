"""The selectivity knob in a Hugging Face ``transformers.Trainer``, in one call.

.. code-block:: python

    from selectivity.integrations.hf import add_selectivity

    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=test)
    add_selectivity(trainer, alpha=-1.0, num_classes=10)   # the knob, its logs, the eval meter
    trainer.train()

**alpha < 0 discourages selectivity, alpha > 0 encourages it, alpha = 0 is plain training.**

How the term reaches the gradient: :func:`add_selectivity` hooks the chosen layers of
``trainer.model`` (names as its ``named_modules()`` gives them) and wraps methods of this one
Trainer object (any subclass works; :meth:`TrainerSelectivity.close` restores them):

* ``compute_loss`` notes the training batch's labels (evaluation batches are left alone);
* ``accelerator.backward(loss)`` receives the loss the Trainer has already scaled for
  gradient accumulation, and adds ``reg.loss(y) / k`` (k: the micro-batches of this
  optimizer step, ``trainer.current_gradient_accumulation_steps``) before it goes backward,
  through a grad scaler if there is one. So each micro-batch's term enters the accumulated
  gradient as its share of the step's mean, as a per-batch mean loss does, whether the
  model's own loss was divided by k or normalized by the items of the whole step;
* ``log`` adds the knob's value, the batch score and the per-layer scores (means over the
  micro-batches since the last training log) to every training log;
* ``prediction_step`` and ``evaluation_loop`` stream a :class:`~selectivity.SelectivityMeter`
  over every evaluation and add its results to the metrics (``eval_selectivity/si``, ...).

The Trainer's logged ``loss`` is the model's own loss, without the term. Under torchrun
(DDP) the term is the global batch's SI with ``sync="global"``. Not supported: DeepSpeed
(its engine scales the loss itself) and ``DataParallel`` over several GPUs in one process
(its replicas would run the hooks in threads); both are refused.

Needs ``pip install 'selectivity[hf]'`` (transformers and accelerate).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..core.probe import LayerSpec
from ..core.schedule import LinearWarmup, Schedule
from .common import LABEL_KEYS, PREFIX, Knob, StepLog, ValidationMeter, require

_transformers = require("transformers", "hf", "selectivity.integrations.hf")

__all__ = ["add_selectivity", "TrainerSelectivity"]

_WRAPPED = ("compute_loss", "log", "prediction_step", "evaluation_loop")


def add_selectivity(trainer, alpha: float | None = None, num_classes: int | None = None, layers: LayerSpec = None,
                    *, kind: str = "si", lam: float | None = None, embeddings: str | Callable = "labels",
                    schedule: Schedule | None = LinearWarmup(5.0), steps_per_epoch: int | None = None,
                    eps: float | None = None, check: bool = True, track: bool = True, sync: str = "global",
                    tokens: str | None = None, positive_part: bool | None = None,
                    labels: Callable[[dict], Tensor] | None = None, measure: bool = True) -> "TrainerSelectivity":
    r"""Add ``-alpha * batch selectivity`` to every training step of ``trainer``, and log it.

    .. math:: L = L_{\mathrm{model}} - \alpha \cdot \overline{SI}_{batch}

    (or ``- lam * batch MonoScore`` with ``kind="monoloss"``). alpha < 0 discourages
    selectivity, alpha > 0 encourages it, alpha = 0 is plain training.

    Args:
        trainer (transformers.Trainer): built, not yet training.
        alpha, num_classes, layers, kind, lam, embeddings, schedule, eps, check, track, sync,
            tokens, positive_part: as for
            :class:`~selectivity.integrations.lightning.SelectivityCallback`; ``layers`` are
            names relative to ``trainer.model`` (None: its default layers, e.g. every
            ``intermediate_act_fn`` of a Hugging Face ViT); ``embeddings`` is a function of the
            inputs dict.
        steps_per_epoch (int | None): micro-batches per epoch for the schedule; None: the
            length of the Trainer's training dataloader. Default: None.
        labels: a function of the inputs dict returning its (N,) labels; None: the Trainer's
            first ``label_names`` entry, else ``labels``, ``label`` or ``y``. Default: None.
        measure (bool): stream a meter over every evaluation. Default: True.

    Returns:
        TrainerSelectivity: holds ``regularizer`` and ``meter``; ``close()`` restores the Trainer.

    Logged in each training log (keys under ``selectivity/``): ``alpha_now`` (``lambda_now``),
    ``batch_si`` (``batch_monoscore``) and ``batch_si/<layer>``, means over the micro-batches
    since the previous log; in each evaluation's metrics: ``<prefix>_selectivity/si``,
    ``si/<layer>``, ``si_live``, ``dead_fraction``, ``monoscore`` (prefix ``eval``).

    Errors, each one line, before the first step: a bad argument or a layer that matches
    nothing (here, listing the model's modules); labels that cannot be found or are not below
    ``num_classes`` (at the step that meets them).
    """
    return TrainerSelectivity(trainer, Knob("add_selectivity", alpha, num_classes, layers, kind=kind, lam=lam,
                                            embeddings=embeddings, schedule=schedule, steps_per_epoch=steps_per_epoch,
                                            eps=eps, check=check, track=track, sync=sync, tokens=tokens,
                                            positive_part=positive_part, labels=labels), measure)


class _EpochCallback(_transformers.TrainerCallback):
    """Tells the schedule the epoch length and where training is."""

    def __init__(self, owner: "TrainerSelectivity"):
        self.owner = owner

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        reg = self.owner.regularizer
        if not self.owner.knob.steps_per_epoch:
            try:
                reg.steps_per_epoch = len(train_dataloader) or None
            except TypeError:  # an iterable without length: the schedule then counts whole epochs
                reg.steps_per_epoch = None
        reg.set_epoch(state.epoch or 0.0)

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.owner.regularizer.set_epoch(math.floor((state.epoch or 0.0) + 1e-9))


class TrainerSelectivity:
    """The knob attached to one ``transformers.Trainer`` (see :func:`add_selectivity`)."""

    def __init__(self, trainer, knob: Knob, measure: bool = True):
        if not isinstance(trainer, _transformers.Trainer):
            raise TypeError(f"add_selectivity: trainer must be a transformers.Trainer, got {type(trainer).__name__}")
        if getattr(trainer, "is_deepspeed_enabled", False):
            raise ValueError("add_selectivity: DeepSpeed is not supported (its engine scales the loss itself)")
        if trainer.args.n_gpu > 1:
            raise ValueError(f"add_selectivity: the Trainer would run DataParallel over {trainer.args.n_gpu} GPUs in "
                             "one process, whose replicas cannot share the hooks; use one process per GPU (torchrun)")
        if hasattr(trainer, "_selectivity"):
            raise ValueError("add_selectivity: this Trainer has the knob already; close() it first")
        self.trainer, self.knob = trainer, knob
        self.regularizer = knob.build(trainer.model, None)  # steps per epoch: known when training starts
        self.meter: ValidationMeter | None = knob.meter(trainer.model, self.regularizer.layers) if measure else None
        self._steps = StepLog(knob, self.regularizer.layers)
        names = list(getattr(trainer, "label_names", None) or [])
        self._keys = tuple(dict.fromkeys([*names[:1], *LABEL_KEYS]))
        self._pending: tuple | None = None
        self._callback = _EpochCallback(self)
        trainer.add_callback(self._callback)
        self._originals = {name: getattr(trainer, name) for name in _WRAPPED}
        self._backward = trainer.accelerator.backward
        for name in _WRAPPED:
            setattr(trainer, name, getattr(self, f"_wrapped_{name}"))
        trainer.accelerator.backward = self._accelerator_backward
        trainer._selectivity = self

    # -- training ---------------------------------------------------------------------------
    def _wrapped_compute_loss(self, model, inputs, *args, **kwargs):
        if model.training and torch.is_grad_enabled():  # a training step (evaluation runs without grad)
            reg = self.regularizer
            # Before the model runs: the Trainer may pop the labels out of `inputs`.
            self._pending = (self.knob.labels_of(inputs, self._keys), self.knob.embeddings_of(inputs),
                             reg.current_alpha)
        return self._originals["compute_loss"](model, inputs, *args, **kwargs)

    def _accelerator_backward(self, loss, *args, **kwargs):
        if self._pending is not None:
            labels, extra, knob_now = self._pending
            self._pending = None
            reg = self.regularizer
            reg.last_selectivity = reg.last_per_layer = None
            with torch.autocast(labels.device.type, enabled=False):  # float32 or wider, as in a plain loop
                term = reg.loss(labels, *extra)  # -alpha * batch SI (or -lambda * batch MonoScore)
            self._steps.values(reg, knob_now)
            k = getattr(self.trainer, "current_gradient_accumulation_steps", None) or \
                self.trainer.args.gradient_accumulation_steps
            loss = loss + term / k  # the loss came scaled for accumulation; the term gets its 1/k here
        return self._backward(loss, *args, **kwargs)

    def _wrapped_log(self, logs: dict, *args, **kwargs):
        if "loss" in logs:  # a training log (evaluations log eval_* keys)
            logs = {**logs, **self._steps.interval_means()}
        return self._originals["log"](logs, *args, **kwargs)

    # -- evaluation -------------------------------------------------------------------------
    def _wrapped_prediction_step(self, model, inputs, *args, **kwargs):
        labels = self.knob.labels_of(inputs, self._keys) if self.meter is not None and self.meter.active else None
        out = self._originals["prediction_step"](model, inputs, *args, **kwargs)
        if labels is not None:
            self.meter.update(labels)
        return out

    def _wrapped_evaluation_loop(self, *args, **kwargs):
        if self.meter is None:
            return self._originals["evaluation_loop"](*args, **kwargs)
        self.meter.start()
        try:
            output = self._originals["evaluation_loop"](*args, **kwargs)
        finally:
            results = self.meter.finish()  # a collective under torch.distributed: every rank evaluates
        prefix = kwargs.get("metric_key_prefix", args[4] if len(args) > 4 else "eval")
        output.metrics.update({f"{prefix}_{PREFIX}{key}": value for key, value in results.items()})
        return output

    def close(self) -> None:
        """Restore the Trainer's own methods and remove every hook."""
        trainer = self.trainer
        for name in _WRAPPED:
            if trainer.__dict__.get(name) == getattr(self, f"_wrapped_{name}"):
                del trainer.__dict__[name]
        if trainer.accelerator.__dict__.get("backward") == self._accelerator_backward:
            del trainer.accelerator.__dict__["backward"]
        trainer.remove_callback(self._callback)
        self.regularizer.close()
        if self.meter is not None:
            self.meter.close()
        trainer.__dict__.pop("_selectivity", None)

