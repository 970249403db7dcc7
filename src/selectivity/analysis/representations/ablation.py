"""Unit ablation: accuracy as units are silenced, most selective first or in random order.

A unit is silenced by a forward hook that multiplies its module's output by a channel mask
(1 for kept units, 0 for ablated ones), broadcast over the spatial dimensions, so a conv
channel is zeroed at every position. This is the ablation of Morcos et al. 2018 and of
Leavitt & Morcos's control experiments: if class-selective units mattered most, silencing
them first should hurt more than silencing random units, and hurt their preferred class most.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ...core import SelectivityMeter
from ...core.probe import LayerSpec, resolve_layers
from ..eval_mode import eval_mode

__all__ = ["DEFAULT_FRACTIONS", "AblationCurve", "ablate_units", "ablated_accuracy", "ablation_curves"]

#: Shares of a layer's units ablated by default: 0, 0.1, ..., 1.0.
DEFAULT_FRACTIONS = tuple(i / 10 for i in range(11))


def _unit_index(units: Sequence[int] | Tensor, name: str) -> Tensor:
    index = torch.as_tensor(units if isinstance(units, Tensor) else list(units), dtype=torch.long).flatten()
    if bool((index < 0).any()):
        raise ValueError(f"unit indices of layer {name!r} must be non-negative, got {index.tolist()}")
    return index


def _mask_hook(name: str, index: Tensor):
    masks: dict[tuple, Tensor] = {}

    def hook(module: nn.Module, args, output):
        if not isinstance(output, Tensor) or output.ndim < 2:
            raise ValueError(f"layer {name!r} must output (N, U) or (N, U, *spatial) to ablate its units")
        units = output.shape[1]
        key = (units, output.dtype, output.device, output.ndim)
        if key not in masks:
            if index.numel() and int(index.max()) >= units:
                raise ValueError(f"layer {name!r} has {units} units; cannot ablate unit {int(index.max())}")
            mask = torch.ones(units, dtype=output.dtype, device=output.device)
            mask[index.to(output.device)] = 0
            masks[key] = mask.view(1, units, *([1] * (output.ndim - 2)))
        return output * masks[key]

    return hook


@contextmanager
def ablate_units(model: nn.Module, units: Mapping[str, Sequence[int] | Tensor]) -> Iterator[nn.Module]:
    r"""Silence units of named layers while the context is open.

    .. math:: \tilde a_{n,u,\dots} = m_u\, a_{n,u,\dots}, \qquad m_u = 0 \text{ if } u
        \text{ is ablated, else } 1

    Args:
        model (nn.Module): the network.
        units (Mapping[str, sequence of int]): layer name (or glob matching one module) ->
            indices of the units (channels) to zero along dim 1 of its output.

    Yields:
        nn.Module: the model, with the hooks in place. They are removed on exit, also when
        an error is raised (an index out of range raises ValueError at the first forward).

    Example::

        >>> net = nn.Sequential(nn.Identity())
        >>> with ablate_units(net, {"0": [1]}):
        ...     net(torch.ones(1, 3))
        tensor([[1., 0., 1.]])
    """
    handles = []
    try:
        modules = dict(model.named_modules())
        for spec, indices in units.items():
            names = resolve_layers(model, spec)
            if len(names) != 1:
                raise ValueError(f"layer {spec!r} matches {len(names)} modules {names}: name exactly one")
            index = _unit_index(indices, names[0])
            handles.append(modules[names[0]].register_forward_hook(_mask_hook(names[0], index)))
        yield model
    finally:
        for handle in handles:
            handle.remove()


def _device(model: nn.Module, x: Tensor) -> torch.device:
    return next((t.device for t in (*model.parameters(), *model.buffers())), x.device)


def _num_classes(model: nn.Module, x: Tensor) -> int:
    with eval_mode(model), torch.no_grad():
        return int(model(x[:1].to(_device(model, x))).shape[1])


def _predictions(model: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    device = _device(model, x)
    with torch.no_grad():
        return torch.cat(
            [model(x[i : i + batch_size].to(device)).argmax(dim=1).cpu() for i in range(0, len(x), batch_size)]
        )


def _accuracies(pred: Tensor, y: Tensor, num_classes: int) -> tuple[float, Tensor]:
    """Overall accuracy and (C,) per-class accuracy (NaN for classes without samples)."""
    correct = (pred == y).double()
    hits = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, y, correct)
    counts = torch.bincount(y, minlength=num_classes).double()
    per_class = torch.where(counts > 0, hits / counts.clamp(min=1), torch.full_like(hits, float("nan")))
    return float(correct.mean()), per_class


def ablated_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    units: Mapping[str, Sequence[int] | Tensor],
    num_classes: int | None = None,
    batch_size: int = 256,
) -> tuple[float, Tensor]:
    """Accuracy and (C,) per-class accuracy with ``units`` ablated (eval mode, no grad).

    ``num_classes`` defaults to the width of the model's output.
    """
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty and of equal length, got {len(x)} and {len(y)}")
    num_classes = _num_classes(model, x) if num_classes is None else num_classes
    with eval_mode(model), ablate_units(model, units):
        pred = _predictions(model, x, batch_size)
    return _accuracies(pred, y.cpu(), num_classes)


@dataclass
class AblationCurve:
    """Accuracy of one layer's ablation at each fraction of its units.

    Attributes:
        layer: module name.
        fractions: (F,) shares of the layer's units ablated.
        n_units: (F,) units ablated, round(fraction * U) (halves round up).
        selective: (F,) accuracy, units ablated from the highest SI down (ties: lower index first).
        random: (R, F) accuracy for R random orders (each a uniform permutation of the units).
        selective_per_class: (F, C) per-class accuracy for the selective order.
        random_per_class: (R, F, C) per-class accuracy for the random orders.
        clean: accuracy with nothing ablated; clean_per_class: (C,).
        si: (U,) the selectivity index that set the order.
    """

    layer: str
    fractions: Tensor
    n_units: Tensor
    selective: Tensor
    random: Tensor
    selective_per_class: Tensor = field(repr=False)
    random_per_class: Tensor = field(repr=False)
    clean: float
    clean_per_class: Tensor = field(repr=False)
    si: Tensor = field(repr=False)

    @property
    def random_mean(self) -> Tensor:
        """(F,) mean accuracy over the random orders."""
        return self.random.mean(dim=0)

    @property
    def random_std(self) -> Tensor:
        """(F,) standard deviation over the random orders (ddof 1; 0 with one order)."""
        return self.random.std(dim=0) if self.random.shape[0] > 1 else torch.zeros_like(self.random[0])

    @property
    def selective_class_drop(self) -> Tensor:
        """(F, C) clean per-class accuracy minus per-class accuracy, selective order."""
        return self.clean_per_class - self.selective_per_class

    @property
    def random_class_drop(self) -> Tensor:
        """(F, C) clean per-class accuracy minus the mean over random orders."""
        return self.clean_per_class - self.random_per_class.mean(dim=0)


def _counts(fractions: Sequence[float], units: int) -> Tensor:
    for f in fractions:
        if not 0.0 <= float(f) <= 1.0:
            raise ValueError(f"fractions must lie in [0, 1], got {f!r}")
    return torch.tensor([math.floor(float(f) * units + 0.5) for f in fractions], dtype=torch.long)


def _measure_si(model, x, y, layers, num_classes, batch_size) -> dict[str, Tensor]:
    device = _device(model, x)
    with eval_mode(model), SelectivityMeter(model, num_classes, layers) as meter:
        for i in range(0, len(x), batch_size):
            meter.update(x[i : i + batch_size].to(device), y[i : i + batch_size].to(device))
        return meter.compute().per_unit


def ablation_curves(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    layers: LayerSpec = None,
    si: Mapping[str, Tensor] | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    n_random: int = 5,
    num_classes: int | None = None,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
) -> dict[str, AblationCurve]:
    r"""Accuracy as a growing share of each layer's units is ablated, by SI and at random.

    For layer l with U units ordered by :math:`\pi` (SI descending, or a random permutation),
    at fraction f the first :math:`k = \mathrm{round}(fU)` units of :math:`\pi` are zeroed
    and the accuracy on (x, y) is measured; one layer at a time, the others intact.

    Args:
        model (nn.Module): the network (eval mode inside, modes restored).
        x (Tensor): (N, ...) inputs; y (Tensor): (N,) labels.
        layers: module names or globs; None for the model's default selectivity layers.
        si (Mapping[str, Tensor] | None): layer -> (U,) SI that sets the order (e.g. measured
            on the test set); None to measure it on (x, y). Default: None.
        fractions (sequence of float): shares in [0, 1]. Default: 0, 0.1, ..., 1.
        n_random (int): random orders per layer (the control). Default: 5.
        num_classes (int | None): C; None for the width of the model's output.
        batch_size (int): forward batch size. Default: 256.
        generator (torch.Generator | None): CPU generator for the random orders.

    Returns:
        dict: layer -> :class:`AblationCurve`, in layer order.
    """
    if not isinstance(n_random, int) or n_random < 0:
        raise ValueError(f"n_random must be a non-negative int, got {n_random!r}")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty and of equal length, got {len(x)} and {len(y)}")
    names = resolve_layers(model, layers)
    y = y.cpu()
    num_classes = _num_classes(model, x) if num_classes is None else num_classes
    if si is None:
        si = _measure_si(model, x, y, names, num_classes, batch_size)
    missing = [n for n in names if n not in si]
    if missing:
        raise ValueError(f"si has no values for layers {missing}")
    clean, clean_per_class = ablated_accuracy(model, x, y, {}, num_classes, batch_size)
    curves = {}
    for name in names:
        layer_si = torch.as_tensor(si[name]).flatten().double().cpu()
        units = layer_si.numel()
        counts = _counts(fractions, units)
        orders = [torch.argsort(layer_si, descending=True, stable=True)]
        orders += [torch.randperm(units, generator=generator) for _ in range(n_random)]
        acc = torch.empty(len(orders), len(counts), dtype=torch.float64)
        per_class = torch.empty(len(orders), len(counts), num_classes, dtype=torch.float64)
        for r, order in enumerate(orders):
            for j, k in enumerate(counts.tolist()):
                if k == 0:
                    acc[r, j], per_class[r, j] = clean, clean_per_class
                else:
                    acc[r, j], per_class[r, j] = ablated_accuracy(
                        model, x, y, {name: order[:k]}, num_classes, batch_size
                    )
        curves[name] = AblationCurve(
            layer=name,
            fractions=torch.tensor([float(f) for f in fractions], dtype=torch.float64),
            n_units=counts,
            selective=acc[0],
            random=acc[1:],
            selective_per_class=per_class[0],
            random_per_class=per_class[1:],
            clean=clean,
            clean_per_class=clean_per_class,
            si=layer_si,
        )
    return curves
