"""What the Lightning callback and the Hugging Face entry point share.

* :class:`Knob`: the regularizer's keyword arguments, checked when they are given (before any
  model or data is seen), and the regularizer built from them once the model is known;
* the labels (and MonoLoss embeddings) of a batch, found the way most code hands them over;
* :class:`StepLog`: what each training step logs (the knob's value now, the batch score and
  the score of each layer) and the means over a logging interval;
* :class:`ValidationMeter`: a streaming :class:`~selectivity.SelectivityMeter` that is on only
  during a validation pass.

The term itself is :meth:`SelectivityRegularizer.loss <selectivity.SelectivityRegularizer.loss>`:
nothing here computes SI.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from types import ModuleType

import torch
from torch import Tensor, nn

from ..core import (DEFAULT_EPS, LayerSelectionError, LinearWarmup, MonoLossRegularizer, SelectivityMeter,
                    SelectivityRegularizer)
from ..core.distributed import is_distributed
from ..core.monoscore import DEFAULT_MONO_EPS
from ..core.probe import LayerSpec
from ..core.schedule import Schedule

__all__ = ["KINDS", "LABEL_KEYS", "PREFIX", "Knob", "StepLog", "ValidationMeter", "require"]

KINDS = ("si", "monoloss")
#: Where a dict batch keeps its labels, in the order they are looked for.
LABEL_KEYS = ("labels", "label", "y")
#: Every logged key starts with it.
PREFIX = "selectivity/"
_MAX_NAMES_SHOWN = 40


def require(module: str, extra: str, who: str) -> ModuleType:
    """``import module``, or a one-line ImportError that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{who} needs the {module!r} package, which is not installed: "
                          f"pip install 'selectivity[{extra}]'") from None


def _finite_number(value) -> bool:
    try:
        return not isinstance(value, bool) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


class Knob:
    """One knob's settings, checked now; :meth:`build` makes the regularizer for a model.

    The arguments are those of :class:`~selectivity.SelectivityRegularizer` (``alpha``,
    ``num_classes``, ``layers``, ``schedule``, ``steps_per_epoch``, ``eps``, ``check``,
    ``track``, ``sync``, ``tokens``, ``positive_part``) and of
    :class:`~selectivity.core.monoloss.MonoLossRegularizer` (``kind="monoloss"`` with
    ``lam`` instead of ``alpha``; ``embeddings``: ``"labels"``, or a function of the batch
    that returns its (N, D) embeddings), plus ``labels``: a function of the batch that
    returns its (N,) labels, for batches that are neither ``(x, y, ...)`` nor a dict with
    ``labels``, ``label`` or ``y``. ``owner`` names the caller in error messages.
    """

    def __init__(self, owner: str, alpha: float | None, num_classes: int, layers: LayerSpec = None, *,
                 kind: str = "si", lam: float | None = None, embeddings: str | Callable = "labels",
                 schedule: Schedule | None = LinearWarmup(5.0), steps_per_epoch: int | None = None,
                 eps: float | None = None, check: bool = True, track: bool = True, sync: str = "global",
                 tokens: str | None = None, positive_part: bool | None = None,
                 labels: Callable[[object], Tensor] | None = None):
        self.owner = owner
        if kind not in KINDS:
            raise ValueError(f"{owner}: kind must be 'si' (alpha) or 'monoloss' (lam), got {kind!r}")
        knob, other = ("alpha", "lam") if kind == "si" else ("lam", "alpha")
        value, unused = (alpha, lam) if kind == "si" else (lam, alpha)
        if unused is not None:
            raise ValueError(f"{owner}: kind={kind!r} takes its knob as {knob}, not {other} "
                             f"(kind='si' takes alpha, kind='monoloss' takes lam)")
        if value is None:
            raise ValueError(f"{owner}: kind={kind!r} needs {knob}, a finite number "
                             "(alpha < 0 discourages selectivity, alpha > 0 encourages it, 0 is plain training)")
        if not _finite_number(value):
            raise ValueError(f"{owner}: {knob} must be a finite number, got {value!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"{owner}: num_classes must be an int >= 2 (larger than every label), got {num_classes!r}")
        if not (embeddings == "labels" or callable(embeddings)):
            raise ValueError(f"{owner}: embeddings must be 'labels' or a function batch -> (N, D) tensor, "
                             f"got {embeddings!r}")
        if kind == "si" and embeddings != "labels":
            raise ValueError(f"{owner}: embeddings are MonoLoss's (kind='monoloss'); kind='si' takes none")
        if labels is not None and not callable(labels):
            raise ValueError(f"{owner}: labels must be a function batch -> (N,) integer tensor, got {labels!r}")
        if schedule is not None and not callable(schedule):
            raise ValueError(f"{owner}: schedule must be a function (step, epoch) -> multiplier, such as "
                             f"selectivity.LinearWarmup(5), or None; got {schedule!r}")
        if steps_per_epoch is not None and (isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int)
                                            or steps_per_epoch < 1):
            raise ValueError(f"{owner}: steps_per_epoch must be a positive int or None, got {steps_per_epoch!r}")
        if sync not in ("global", "local"):
            raise ValueError(f"{owner}: sync must be 'global' or 'local', got {sync!r}")
        if eps is not None and not (_finite_number(eps) and eps > 0):
            raise ValueError(f"{owner}: eps must be a finite number > 0, got {eps!r}")
        self.kind, self.strength, self.num_classes, self.layers = kind, float(value), num_classes, layers
        self.embeddings, self.labels = embeddings, labels
        self.schedule, self.steps_per_epoch, self.eps = schedule, steps_per_epoch, eps
        self.check, self.track, self.sync = bool(check), bool(track), sync
        self.tokens, self.positive_part = tokens, positive_part

    @property
    def knob_name(self) -> str:
        return "alpha" if self.kind == "si" else "lambda"

    @property
    def score_name(self) -> str:
        return "si" if self.kind == "si" else "monoscore"

    def build(self, model: nn.Module, steps_per_epoch: int | None) -> SelectivityRegularizer:
        """The regularizer on ``model`` (layer names relative to it); a layer that matches
        nothing is a one-line :class:`~selectivity.LayerSelectionError` listing the model's modules."""
        common = dict(schedule=self.schedule, steps_per_epoch=self.steps_per_epoch or steps_per_epoch,
                      check=self.check, track=self.track, sync=self.sync, tokens=self.tokens,
                      positive_part=self.positive_part)
        try:
            if self.kind == "monoloss":
                return MonoLossRegularizer(model, self.strength, self.num_classes, self.layers,
                                           embeddings="labels" if self.embeddings == "labels" else "given",
                                           eps=self.eps or DEFAULT_MONO_EPS, **common)
            return SelectivityRegularizer(model, self.strength, self.num_classes, self.layers,
                                          eps=self.eps or DEFAULT_EPS, **common)
        except LayerSelectionError as err:
            raise self._layer_error(err, model) from None

    def meter(self, model: nn.Module, layers: LayerSpec) -> "ValidationMeter":
        """A validation meter of ``layers`` (the regularizer's; SI's eps: MonoLoss's is another threshold)."""
        eps = self.eps if (self.eps and self.kind == "si") else DEFAULT_EPS
        try:
            return ValidationMeter(model, self.num_classes, layers, eps, self.tokens, self.positive_part)
        except LayerSelectionError as err:
            raise self._layer_error(err, model) from None

    def _layer_error(self, err: LayerSelectionError, model: nn.Module) -> LayerSelectionError:
        return LayerSelectionError(f"{self.owner}: {err}; layer names are relative to the "
                                   f"{type(model).__name__}, whose modules are {module_names(model)}")

    # -- batches --------------------------------------------------------------------------
    def labels_of(self, batch, keys: tuple[str, ...] = LABEL_KEYS) -> Tensor:
        """The batch's (N,) labels: ``labels(batch)`` if given, else ``batch[1]`` of a tuple or
        list, else the first of ``keys`` in a dict. With ``check``, labels outside
        [0, num_classes) are a one-line error (one host sync)."""
        if self.labels is not None:
            y = self.labels(batch)
        elif isinstance(batch, Mapping):
            key = next((k for k in keys if k in batch), None)
            if key is None:
                raise ValueError(f"{self.owner}: cannot find the labels of a dict batch with keys "
                                 f"{sorted(map(str, batch))}: expected one of {list(keys)}; pass "
                                 "labels=lambda batch: ... (its (N,) class indices)")
            y = batch[key]
        elif isinstance(batch, (tuple, list)) and len(batch) >= 2:
            y = batch[1]
        else:
            raise ValueError(f"{self.owner}: cannot find the labels of a batch of type {type(batch).__name__}: "
                             f"expected an (x, y) tuple or a dict with {' / '.join(keys)}; pass "
                             "labels=lambda batch: ... (its (N,) class indices)")
        integer = isinstance(y, Tensor) and not (y.is_floating_point() or y.is_complex() or y.dtype == torch.bool)
        if not integer or y.ndim != 1:
            shape = f"{y.dtype} tensor of shape {tuple(y.shape)}" if isinstance(y, Tensor) else type(y).__name__
            raise ValueError(f"{self.owner}: the labels of a batch must be a 1-D integer tensor (one class index per "
                             f"sample), got a {shape}; pass labels=lambda batch: ... if these are not the labels")
        if self.check and y.numel():
            lo, hi = (int(v) for v in torch.stack([y.min(), y.max()]).tolist())
            if hi >= self.num_classes:
                raise ValueError(f"{self.owner}: num_classes is {self.num_classes} but a batch holds the label {hi}: "
                                 "num_classes must be larger than every label")
            if lo < 0:
                raise ValueError(f"{self.owner}: labels must be class indices >= 0, a batch holds {lo}")
        return y

    def embeddings_of(self, batch) -> tuple[Tensor, ...]:
        """``()`` for label embeddings, else ``(embeddings(batch),)``: the extra argument of ``loss``."""
        if self.embeddings == "labels":
            return ()
        e = self.embeddings(batch)
        if not isinstance(e, Tensor) or e.ndim != 2:
            got = f"shape {tuple(e.shape)}" if isinstance(e, Tensor) else type(e).__name__
            raise ValueError(f"{self.owner}: embeddings(batch) must return an (N, D) tensor, got {got}")
        return (e,)


def module_names(model: nn.Module) -> str:
    names = [n for n, _ in model.named_modules() if n]
    shown = ", ".join(names[:_MAX_NAMES_SHOWN])
    return f"[{shown}{f', ... ({len(names)} in all)' if len(names) > _MAX_NAMES_SHOWN else ''}]"


class StepLog:
    """What one training step logs, and the means over an interval (an epoch, a logging window).

    Keys (``score`` is ``si`` or ``monoscore``, ``knob`` is ``alpha`` or ``lambda``):
    ``selectivity/{knob}_now`` (the scheduled value the step trained with),
    ``selectivity/batch_{score}`` (the network score of the batch) and
    ``selectivity/batch_{score}/{layer}``. The score is logged while the knob is 0 too when
    the knob tracks it (``track=True``, the default); otherwise only the knob's value is.
    """

    def __init__(self, knob: Knob, layers: list[str]):
        self.knob_key = f"{PREFIX}{knob.knob_name}_now"
        self.score_key = f"{PREFIX}batch_{knob.score_name}"
        self.layer_keys = [f"{self.score_key}/{name}" for name in layers]
        self._sum: Tensor | None = None  # [knob, score, per layer...], summed on the device: no host sync
        self._scored = 0
        self._steps = 0
        self._knob_sum = 0.0

    def values(self, reg: SelectivityRegularizer, knob_now: float) -> dict[str, float | Tensor]:
        """This step's values (tensors stay on the device); adds them to the interval's sums."""
        out: dict[str, float | Tensor] = {self.knob_key: knob_now}
        self._steps += 1
        self._knob_sum += knob_now
        if reg.last_selectivity is not None:
            out[self.score_key] = reg.last_selectivity
            out.update(zip(self.layer_keys, reg.last_per_layer))
            both = torch.cat([reg.last_selectivity.reshape(1), reg.last_per_layer]).detach()
            self._sum = both if self._sum is None else self._sum + both
            self._scored += 1
        return out

    def interval_means(self) -> dict[str, float]:
        """Means since the last call (the knob over every step, the scores over the scored steps)."""
        out: dict[str, float] = {}
        if self._steps:
            out[self.knob_key] = self._knob_sum / self._steps
        if self._scored:
            means = (self._sum / self._scored).tolist()
            out.update(zip([self.score_key, *self.layer_keys], means))
        self._sum, self._scored, self._steps, self._knob_sum = None, 0, 0, 0.0
        return out


class ValidationMeter:
    """A :class:`~selectivity.SelectivityMeter` whose hooks capture only between :meth:`start`
    and :meth:`finish`: one validation pass, streamed over every batch (float64 sums).

    Under ``torch.distributed`` :meth:`finish` is a collective (the meter sums every rank's
    state), so every rank must call it. A sampler that pads the ranks to equal length
    (``DistributedSampler``) makes the padded samples count twice.
    """

    def __init__(self, model: nn.Module, num_classes: int, layers: LayerSpec, eps: float,
                 tokens: str | None, positive_part: bool | None):
        self.meter = SelectivityMeter(model, num_classes, layers, eps, tokens=tokens, positive_part=positive_part)
        self.meter.probe.enabled = False
        self.seen = 0

    @property
    def active(self) -> bool:
        return self.meter.probe.enabled

    def start(self) -> None:
        self.meter.reset()
        self.seen = 0
        self.meter.probe.enabled = True

    def update(self, labels: Tensor) -> None:
        """Add the last forward pass (the validation step's) with its labels."""
        acts = self.meter.probe.collect(batch_size=labels.shape[0])
        self.meter.update_activations(acts, labels)
        self.meter.probe.clear()
        self.seen += labels.shape[0]

    def finish(self) -> dict[str, float]:
        """``si``, ``si/{layer}``, ``si_live`` (mean SI of the live units), ``dead_fraction`` and
        ``monoscore`` (label embeddings) of the pass; {} when no rank saw a sample."""
        self.meter.probe.enabled = False
        if self.meter.counts is None and not is_distributed():
            return {}
        result = self.meter.compute()
        out = {"si": result.mean, **{f"si/{name}": value for name, value in result.per_layer.items()},
               "si_live": result.live_mean, "dead_fraction": result.dead_fraction,
               "monoscore": result.mean_monoscore}
        return {k: float(v) for k, v in out.items()}

    def close(self) -> None:
        self.meter.close()
