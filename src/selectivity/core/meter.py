"""SelectivityMeter: class selectivity of every unit, streamed over a whole dataset."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .distributed import collective, is_distributed
from .functional import (DEFAULT_EPS, NO_CONTRAST_WARNING, _check_inputs, _class_sums, _means_from_sums,
                         _selectivity_from_sums)
from .monoscore import _moments_from_sums, _score_from_moments
from .probe import LayerSpec, Probe, unit_activations

__all__ = ["SelectivityMeter", "SelectivityResult", "dead_unit_summary"]

NEGATIVE_WARNING = (
    "layer {name!r} has negative activations: SI assumes non-negative responses (measure after the "
    "ReLU), so its values may fall outside [0, 1]"
)


@dataclass
class SelectivityResult:
    """Selectivity of a network, as computed by :class:`SelectivityMeter`.

    Attributes:
        per_unit: layer name -> (U,) SI of each unit (float64, on the CPU).
        per_layer: layer name -> mean SI over the layer's units.
        mean: network selectivity, the mean over layers of the layer means.
        class_means: layer name -> (C, U) class-conditional means (NaN rows: absent classes).
        counts: (C,) samples seen per class.
        dead: layer name -> (U,) bool, True for a unit with no response > 0 on the data.
            A dead unit has SI 0: :attr:`dead_fraction` and :attr:`live_mean` keep "silent"
            apart from "not selective" (see :func:`dead_unit_summary`).
        monoscore: layer name -> (U,) MonoScore with label embeddings (the activation-weighted
            share of same-class pairs, :func:`~selectivity.core.monoscore.monoscore`), exact over
            the whole data; NaN for an inactive unit (constant, a dead unit among them).
    """

    per_unit: dict[str, Tensor]
    per_layer: dict[str, float]
    mean: float
    class_means: dict[str, Tensor] = field(repr=False)
    counts: Tensor = field(repr=False)
    dead: dict[str, Tensor] = field(default_factory=dict, repr=False)
    monoscore: dict[str, Tensor] = field(default_factory=dict, repr=False)

    @property
    def mean_monoscore(self) -> float:
        """Network MonoScore: the mean over layers of each layer's mean over its active units
        (layers with no active unit left out; NaN when no unit is active)."""
        layers = [float(m[~torch.isnan(m)].mean()) for m in self.monoscore.values() if bool((~torch.isnan(m)).any())]
        return sum(layers) / len(layers) if layers else float("nan")

    @property
    def dead_summary(self) -> dict:
        """:func:`dead_unit_summary` of this result."""
        return dead_unit_summary(self.per_unit, self.dead)

    @property
    def dead_fraction(self) -> float:
        """Fraction of all units (over all layers) that never respond above 0."""
        return self.dead_summary["dead_fraction"]

    @property
    def live_mean(self) -> float:
        """Network SI over live units only: mean over layers of the layer's live-unit mean SI."""
        return self.dead_summary["live_mean"]

    def to_frame(self):
        """One row per unit (the columns of ``si_per_unit.csv``):

        - layer, layer_index, unit: where the unit is.
        - si: its selectivity index (0 for a dead unit: it answers every class alike, with nothing).
        - preferred_class: the argmax of its class means; empty (NA) for a dead unit, which has none.
        - mu_max: its largest class mean.
        - dead: True for a unit with no response above 0 on the data (see :attr:`dead`).
        """
        import pandas as pd

        frames = []
        for index, (name, si) in enumerate(self.per_unit.items()):
            means = self.class_means[name].nan_to_num(nan=float("-inf"))
            mu_max, preferred = means.max(dim=0)
            dead = self.dead[name].to(torch.bool) if name in self.dead else torch.zeros(si.numel(), dtype=torch.bool)
            preferred = pd.array(preferred.numpy(), dtype="Int64")
            preferred[dead.numpy()] = pd.NA
            frames.append(
                pd.DataFrame(
                    {
                        "layer": name,
                        "layer_index": index,
                        "unit": range(si.numel()),
                        "si": si.numpy(),
                        "preferred_class": preferred,
                        "mu_max": mu_max.numpy(),
                        "dead": dead.numpy(),
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)


def dead_unit_summary(per_unit: dict[str, Tensor], dead: dict[str, Tensor]) -> dict:
    """Dead units and the SI of the live ones, per layer and overall.

    Args:
        per_unit: layer -> (U,) SI. dead: layer -> (U,) bool (no response > 0 on the data).

    Returns:
        dict: ``per_layer_dead_fraction`` and ``per_layer_live_mean`` (layer -> float; NaN
        for a layer with no live unit), ``dead_fraction`` (dead units / all units) and
        ``live_mean`` (mean over the layers that have live units of their live mean, the
        live counterpart of :attr:`SelectivityResult.mean`; NaN when every unit is dead).
    """
    if set(dead) != set(per_unit):
        raise ValueError(f"dead units are known for layers {sorted(dead)}, SI for {sorted(per_unit)}")
    dead_fraction, live_mean = {}, {}
    for name, si in per_unit.items():
        mask = dead[name].to(torch.bool)
        dead_fraction[name] = float(mask.double().mean())
        live = si[~mask]
        live_mean[name] = float(live.double().mean()) if live.numel() else float("nan")
    total = sum(d.numel() for d in dead.values())
    live_layers = [v for v in live_mean.values() if v == v]
    return {
        "per_layer_dead_fraction": dead_fraction,
        "per_layer_live_mean": live_mean,
        "dead_fraction": sum(int(d.sum()) for d in dead.values()) / total if total else float("nan"),
        "live_mean": sum(live_layers) / len(live_layers) if live_layers else float("nan"),
    }


class SelectivityMeter:
    r"""Stream a dataset through a model and compute the selectivity of every unit.

    The state is fixed-shape float64: per layer the class sums (C, U) and the number of
    responses > 0 of each unit (U,) (a unit with none is dead), and the class counts
    (C,) shared by all layers. ``update`` only adds, ``compute`` only divides, so streaming
    in any batch sizes gives the numbers of one full batch, and states of several processes
    sum (:meth:`merge`, or an all-reduce under ``torch.distributed``).

    .. math:: SI = \frac{\mu_{max} - \mu_{-max}}{\mu_{max} + \mu_{-max} + \epsilon}

    Args:
        model (nn.Module | None): the network; None to feed activations yourself with
            :meth:`update_activations`.
        num_classes (int): C.
        layers: module names, glob patterns or modules; None for the model's default layers
            (residual block outputs). Default: None.
        eps (float): SI's guard against 0/0. Default: 1e-7.
        tokens, positive_part: how a transformer's token layers become units (see
            :class:`~selectivity.core.probe.Probe`); None: the model's setting, else all
            tokens and each token's positive part. Default: None.

    The meter does not change the model's mode: call ``model.eval()`` first to measure a
    trained network as the papers do.

    Example::

        >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
        >>> meter = SelectivityMeter(net, num_classes=2, layers="1")
        >>> meter.update_activations({"1": torch.tensor([[1.0, 1.0], [0.0, 1.0]])}, torch.tensor([0, 1]))
        >>> meter.compute().per_unit["1"].round(decimals=4)
        tensor([1., 0.], dtype=torch.float64)
    """

    def __init__(self, model: nn.Module | None, num_classes: int, layers: LayerSpec = None, eps: float = DEFAULT_EPS,
                 *, tokens: str | None = None, positive_part: bool | None = None):
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        self.num_classes = num_classes
        self.eps = eps
        self.model = model
        self.probe = (Probe(model, layers, detach=True, tokens=tokens, positive_part=positive_part)
                      if model is not None else None)
        self.layers: list[str] | None = list(self.probe.layers) if self.probe else None
        self.sums: dict[str, Tensor] = {}
        self.positive: dict[str, Tensor] = {}
        # For MonoScore (label embeddings): each unit's min, max and sum of squares.
        self.lo: dict[str, Tensor] = {}
        self.hi: dict[str, Tensor] = {}
        self.sumsq: dict[str, Tensor] = {}
        self.counts: Tensor | None = None
        self._warned_negative: set[str] = set()
        self._warned_no_contrast = False

    # -- update -------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, x: Tensor, y: Tensor, mask: Tensor | None = None) -> None:
        """Run the model on a batch (without grad) and add its activations to the state."""
        if self.probe is None:
            raise RuntimeError("this meter has no model: use update_activations(acts, labels)")
        self.model(x)
        self.update_activations(self.probe.collect(batch_size=y.shape[0]), y, mask)

    @torch.no_grad()
    def update_activations(self, acts: dict[str, Tensor] | Tensor, labels: Tensor, mask: Tensor | None = None) -> None:
        """Add precomputed activations: a dict layer -> (N, U) or (N, U, H, W), or one tensor.

        ``mask`` (bool (N,)): the samples to count; False for the repeats a padding sampler
        (``DistributedSampler``) adds so that every rank has as many batches, which would
        otherwise be counted twice.
        """
        if isinstance(acts, Tensor):
            if self.layers is not None and len(self.layers) != 1:
                raise ValueError(f"this meter measures {len(self.layers)} layers: pass a dict layer -> activations")
            acts = {self.layers[0] if self.layers else "layer": acts}
        if self.layers is None:
            self.layers = list(acts)
        if set(acts) != set(self.layers):
            raise ValueError(f"activations are for layers {sorted(acts)}, expected {sorted(self.layers)}")
        labels = labels.to(next(iter(acts.values())).device)
        if mask is not None:
            if mask.dtype != torch.bool or mask.shape != labels.shape:
                raise ValueError(f"mask must be a bool tensor of shape {tuple(labels.shape)}, "
                                 f"got {mask.dtype} {tuple(mask.shape)}")
            mask = mask.to(labels.device)
            labels = labels[mask]
        for name in self.layers:
            unit_acts = acts[name] if acts[name].ndim == 2 else unit_activations(acts[name], name)
            if mask is not None:
                unit_acts = unit_acts[mask]
            _check_inputs(unit_acts, labels, self.num_classes)
            self._warn_if_negative(name, unit_acts)
            sums, counts = _class_sums(unit_acts, labels, self.num_classes, dtype=torch.float64)
            if name not in self.sums:
                self.sums[name] = torch.zeros_like(sums)
            elif self.sums[name].shape != sums.shape:
                raise ValueError(
                    f"layer {name!r} has {sums.shape[1]} units in this batch but {self.sums[name].shape[1]} before"
                )
            self.sums[name] += sums
            positive = (unit_acts > 0).sum(dim=0, dtype=torch.float64)
            self.positive[name] = self.positive[name] + positive if name in self.positive else positive
            if unit_acts.shape[0]:
                x = unit_acts.to(torch.float64)
                lo, hi, sumsq = x.amin(dim=0), x.amax(dim=0), (x * x).sum(dim=0)
                if name in self.lo:
                    lo, hi, sumsq = (torch.minimum(self.lo[name], lo), torch.maximum(self.hi[name], hi),
                                     self.sumsq[name] + sumsq)
                self.lo[name], self.hi[name], self.sumsq[name] = lo, hi, sumsq
        if self.counts is None:
            self.counts = torch.zeros_like(counts)
        self.counts += counts

    def _warn_if_negative(self, name: str, unit_acts: Tensor) -> None:
        if name in self._warned_negative or not bool((unit_acts < 0).any()):
            return
        self._warned_negative.add(name)
        warnings.warn(NEGATIVE_WARNING.format(name=name), RuntimeWarning, stacklevel=4)

    # -- state --------------------------------------------------------------------------
    def merge(self, other: "SelectivityMeter") -> None:
        """Add another meter's state to this one (shards of one dataset)."""
        if other.counts is None:
            return
        if self.counts is None:
            self.layers = list(other.layers)
            self.sums = {n: torch.zeros_like(s) for n, s in other.sums.items()}
            self.positive = {n: torch.zeros_like(p) for n, p in other.positive.items()}
            self.counts = torch.zeros_like(other.counts)
        if set(other.sums) != set(self.sums):
            raise ValueError(f"cannot merge meters of layers {sorted(other.sums)} into {sorted(self.sums)}")
        for name, s in other.sums.items():
            self.sums[name] += s.to(self.sums[name].device)
            self.positive[name] += other.positive[name].to(self.positive[name].device)
            if name in other.lo:
                device = self.sums[name].device
                lo, hi, sumsq = (other.lo[name].to(device), other.hi[name].to(device), other.sumsq[name].to(device))
                if name in self.lo:
                    lo, hi, sumsq = (torch.minimum(self.lo[name], lo), torch.maximum(self.hi[name], hi),
                                     self.sumsq[name] + sumsq)
                self.lo[name], self.hi[name], self.sumsq[name] = lo, hi, sumsq
        self.counts += other.counts.to(self.counts.device)

    def _reduced_state(self, timeout: float | None):
        """(sums, counts, positive, (lo, hi, sumsq)) over all ranks when torch.distributed is running (copies)."""
        if not is_distributed():
            if self.counts is None:
                raise RuntimeError("the meter has seen no data: call update() first")
            return self.sums, self.counts, self.positive, (self.lo, self.hi, self.sumsq)
        with collective("SelectivityMeter.compute()", timeout):
            # A rank that saw no sample still joins: it learns the shapes from the others.
            mine = None if self.counts is None else {n: s.shape[1] for n, s in self.sums.items()}
            shapes = [None] * dist.get_world_size()
            dist.all_gather_object(shapes, (self.layers, mine))
            known = [(layers, units) for layers, units in shapes if units is not None]
            if not known:
                raise ValueError("the meter has seen no data on any rank: call update() first")
            layers, units = known[0]
            if self.counts is None:
                self.layers = list(layers)
                device = _collective_device()
                sums = {n: torch.zeros(self.num_classes, units[n], dtype=torch.float64, device=device) for n in layers}
                positive = {n: torch.zeros(units[n], dtype=torch.float64, device=device) for n in layers}
                counts = torch.zeros(self.num_classes, dtype=torch.float64, device=device)
            else:
                sums = dict(self.sums)
                positive = dict(self.positive)
                counts = self.counts
            names = list(layers)
            z = dict(dtype=torch.float64, device=counts.device)
            # A rank that saw no sample holds the identities of min, max and sum.
            sumsq = {n: self.sumsq.get(n, torch.zeros(units[n], **z)) for n in names}
            lo = torch.cat([self.lo.get(n, torch.full((units[n],), float("inf"), **z)) for n in names])
            hi = torch.cat([self.hi.get(n, torch.full((units[n],), float("-inf"), **z)) for n in names])
            # Every other part is a sum: one all-reduce for all layers, their positive counts,
            # sums of squares and the counts; then one MIN and one MAX for the extremes.
            pieces = [*(sums[n] for n in names), *(positive[n] for n in names), *(sumsq[n] for n in names), counts]
            flat = torch.cat([t.flatten() for t in pieces])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            dist.all_reduce(lo, op=dist.ReduceOp.MIN)
            dist.all_reduce(hi, op=dist.ReduceOp.MAX)
            parts = [p.view_as(t) for p, t in zip(flat.split([t.numel() for t in pieces]), pieces)]
            k, sizes = len(names), [units[n] for n in names]
            extremes = (dict(zip(names, lo.split(sizes))), dict(zip(names, hi.split(sizes))),
                        dict(zip(names, parts[2 * k:3 * k])))
            return dict(zip(names, parts[:k])), parts[-1], dict(zip(names, parts[k:2 * k])), extremes

    def compute(self, timeout: float | None = None) -> SelectivityResult:
        """Divide: per-unit SI, per-layer means and the network mean (summed over ranks).

        Under ``torch.distributed`` this is a collective: every rank must call it, also a rank
        that saw no sample. A rank calling it alone raises
        :class:`~selectivity.core.distributed.CollectiveError` after ``timeout`` seconds
        (default: the process group's timeout) instead of hanging.
        """
        sums, counts, positive, (lo, hi, sumsq) = self._reduced_state(timeout)
        present = int((counts > 0).sum())
        if present < 2 and not self._warned_no_contrast:
            self._warned_no_contrast = True
            warnings.warn(NO_CONTRAST_WARNING.format(where=f"the data seen ({int(counts.sum())} samples)", n=present),
                          RuntimeWarning, stacklevel=2)
        per_unit = {n: _selectivity_from_sums(sums[n], counts, self.eps).cpu() for n in self.layers}
        per_layer = {n: float(si.mean()) for n, si in per_unit.items()}
        means = {n: _means_from_sums(sums[n], counts).cpu() for n in self.layers}
        return SelectivityResult(
            per_unit=per_unit,
            per_layer=per_layer,
            mean=sum(per_layer.values()) / len(per_layer),
            class_means=means,
            counts=counts.cpu(),
            dead={n: (positive[n] == 0).cpu() for n in self.layers},
            monoscore={n: _score_from_moments(*_moments_from_sums(sums[n], counts, sums[n].sum(dim=0), sumsq[n],
                                                                  counts.sum(), lo[n], hi[n])).cpu()
                       for n in self.layers},
        )

    def reset(self) -> None:
        """Forget everything seen; layers and hooks stay."""
        self.sums = {}
        self.positive = {}
        self.lo, self.hi, self.sumsq = {}, {}, {}
        self.counts = None
        if self.probe is not None:
            self.probe.clear()

    def close(self) -> None:
        """Remove the hooks from the model."""
        if self.probe is not None:
            self.probe.close()

    def __enter__(self) -> "SelectivityMeter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _collective_device() -> torch.device:
    """Where the tensors of this process group's collectives live (NCCL: this rank's GPU)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
