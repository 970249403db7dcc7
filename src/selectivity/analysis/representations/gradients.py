r"""Input-unit gradients and how much they vary across samples and across units.

The input-unit gradient of unit u (a neuron, or a conv channel averaged over space, the unit
of the selectivity index) at sample i is

.. math:: g_{iu} = \nabla_x a_u(x_i) \in \mathbb{R}^D,

taken in the model's input space (images in [0, 1]), with the model in eval mode so samples
do not interact. Leavitt & Morcos (2020, "Linking average- and worst-case perturbation
robustness via class selectivity and dimensionality") report that it "is more variable across
samples and units in high-selectivity networks" and read this as units participating less
consistently, a larger attack surface. The statistic behind the figure is not confirmed here
(**open**); this module's choice, with :math:`n_{iu} = \|g_{iu}\|_2` and, where
:math:`n_{iu} > 0`, the direction :math:`\hat g_{iu} = g_{iu} / n_{iu}`:

- magnitude, across samples, per unit: :math:`\mathrm{CV}_u = \mathrm{std}_i(n_{iu}) /
  \mathrm{mean}_i(n_{iu})`; across units, per sample: :math:`\mathrm{CV}_i = \mathrm{std}_u
  (n_{iu}) / \mathrm{mean}_u(n_{iu})` (population std; a zero gradient, a silent ReLU unit,
  counts as magnitude 0, so a unit that answers few samples has a large CV).
  The coefficient of variation is scale-free, so networks whose activations differ in
  scale compare fairly.
- direction, across samples, per unit: :math:`V_u = 1 - \|\mathrm{mean}_{i: n_{iu}>0}\,
  \hat g_{iu}\|_2^2`; across units, per sample: :math:`V_i = 1 - \|\mathrm{mean}_{u:
  n_{iu}>0}\, \hat g_{iu}\|_2^2`. This is the total variance (trace of the covariance) of the
  unit-norm gradients: 0 when they all point the same way, near 1 when they spread over many
  directions. NaN with fewer than two non-zero gradients.

Layer summaries are the means over units (across samples) and over samples (across units),
ignoring NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ...core import Probe
from ...core.probe import LayerSpec, resolve_layers
from ..eval_mode import eval_mode

__all__ = ["GradientVariability", "gradient_variability", "input_unit_gradients", "variability_from_gradients"]


def _single_layer(model: nn.Module, layer: str | nn.Module) -> str:
    names = resolve_layers(model, layer)
    if len(names) != 1:
        raise ValueError(f"layer {layer!r} matches {len(names)} modules {names}: name exactly one")
    return names[0]


def _activations_with_graph(model: nn.Module, x: Tensor, name: str) -> tuple[Tensor, Tensor]:
    """(input with grad, (N, U) unit activations attached to the graph). Caller sets eval mode."""
    xg = x.detach().clone().requires_grad_(True)
    with Probe(model, [name], detach=False) as probe:
        acts = probe(xg)[name]
    if not acts.requires_grad:
        raise ValueError(f"layer {name!r} does not depend on the input through differentiable operations")
    return xg, acts


def _gradient_chunks(xg: Tensor, acts: Tensor, units: Tensor, chunk: int, vectorize: bool):
    """Yield (unit indices (K,), gradients (N, K, *input)) for chunks of ``units``."""
    n = acts.shape[0]
    for start in range(0, units.numel(), chunk):
        idx = units[start : start + chunk]
        last = start + chunk >= units.numel()
        if vectorize:
            # One backward pass per unit, vmapped: grad_outputs[k] is the one-hot of unit idx[k].
            go = torch.zeros(idx.numel(), n, acts.shape[1], dtype=acts.dtype, device=acts.device)
            go[torch.arange(idx.numel(), device=acts.device), :, idx] = 1
            (g,) = torch.autograd.grad(acts, xg, grad_outputs=go, retain_graph=not last, is_grads_batched=True)
            g = g.transpose(0, 1)
        else:
            g = torch.stack(
                [
                    torch.autograd.grad(acts[:, u].sum(), xg, retain_graph=not (last and k == idx.numel() - 1))[0]
                    for k, u in enumerate(idx.tolist())
                ],
                dim=1,
            )
        yield idx, g


def _check_x(x: Tensor) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty float batch (N, ...), got {getattr(x, 'shape', type(x).__name__)}")


def input_unit_gradients(
    model: nn.Module,
    x: Tensor,
    layer: str | nn.Module,
    units: Sequence[int] | Tensor | None = None,
    unit_chunk: int = 32,
    vectorize: bool = True,
) -> Tensor:
    r"""Per-sample gradient of each unit's activation with respect to the input.

    .. math:: G[i, k] = \nabla_{x} a_{u_k}(x_i), \qquad a_u = \text{spatial mean of channel } u

    Since the model runs in eval mode, :math:`a_u(x_i)` depends on :math:`x_i` only, and
    one backward pass of :math:`\sum_i a_u(x_i)` gives all N per-sample gradients of a unit.

    Args:
        model (nn.Module): the network (eval mode inside, modes restored; parameter
            ``.grad`` untouched).
        x (Tensor): (N, ...) inputs, e.g. (N, 3, 32, 32) images in [0, 1].
        layer (str | nn.Module): one module; its output (N, U) or (N, U, H, W).
        units (sequence of int | None): the units u_k; None for all U. Default: None.
        unit_chunk (int): units per batched backward pass (memory: unit_chunk x N x D).
            Default: 32.
        vectorize (bool): batch the backward passes of a chunk with
            ``autograd.grad(..., is_grads_batched=True)``; False loops over units (the
            reference). Default: True.

    Returns:
        Tensor: (N, K, *x.shape[1:]) gradients, K = len(units), on x's device.

    Example::

        >>> net = nn.Sequential(nn.Linear(2, 2))
        >>> with torch.no_grad():
        ...     _ = net[0].weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0]]))
        >>> input_unit_gradients(net, torch.zeros(3, 2), "0")[0]
        tensor([[ 1.,  2.],
                [ 0., -1.]])
    """
    _check_x(x)
    if not isinstance(unit_chunk, int) or unit_chunk < 1:
        raise ValueError(f"unit_chunk must be a positive int, got {unit_chunk!r}")
    name = _single_layer(model, layer)
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        xg, acts = _activations_with_graph(model, x, name)
        index = torch.arange(acts.shape[1]) if units is None else torch.as_tensor(units, dtype=torch.long).flatten()
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= acts.shape[1]):
            raise ValueError(f"layer {name!r} has {acts.shape[1]} units; got unit indices {index.tolist()}")
        parts = [g for _, g in _gradient_chunks(xg, acts, index.to(acts.device), unit_chunk, vectorize)]
    return torch.cat(parts, dim=1) if parts else x.new_zeros(x.shape[0], 0, *x.shape[1:])


@dataclass
class GradientVariability:
    """Variability of a layer's input-unit gradients (definitions in the module docstring).

    Attributes:
        norms: (N, U) gradient norms n_iu.
        cv_across_samples: (U,) CV of n_iu over samples, per unit (NaN: unit never has a gradient).
        cv_across_units: (N,) CV of n_iu over units, per sample.
        direction_var_across_samples: (U,) 1 - ||mean_i g^_iu||^2, per unit.
        direction_var_across_units: (N,) 1 - ||mean_u g^_iu||^2, per sample.
    """

    norms: Tensor = field(repr=False)
    cv_across_samples: Tensor = field(repr=False)
    cv_across_units: Tensor = field(repr=False)
    direction_var_across_samples: Tensor = field(repr=False)
    direction_var_across_units: Tensor = field(repr=False)

    def summary(self) -> dict[str, float]:
        """Layer means (NaN ignored) of the four statistics, plus the share of zero gradients."""
        return {
            "cv_across_samples": float(self.cv_across_samples.nanmean()),
            "cv_across_units": float(self.cv_across_units.nanmean()),
            "direction_var_across_samples": float(self.direction_var_across_samples.nanmean()),
            "direction_var_across_units": float(self.direction_var_across_units.nanmean()),
            "zero_gradient_share": float((self.norms == 0).double().mean()),
        }


def _cv(norms: Tensor, dim: int) -> Tensor:
    mean = norms.mean(dim=dim)
    std = norms.std(dim=dim, correction=0)
    return torch.where(
        mean > 0, std / mean.clamp_min(torch.finfo(mean.dtype).tiny), torch.full_like(mean, float("nan"))
    )


def _direction_var(direction_sum: Tensor, count: Tensor) -> Tensor:
    """1 - ||sum / count||^2 for rows with count >= 2, else NaN. direction_sum: (M, D)."""
    mean = direction_sum / count.clamp(min=1).unsqueeze(1)
    var = (1 - mean.square().sum(dim=1)).clamp(min=0.0)
    return torch.where(count >= 2, var, torch.full_like(var, float("nan")))


class _Accumulator:
    """Streaming state of one layer: norms (N, U), per-unit sums of unit-norm gradients (U, D)
    and their counts, and per-sample direction variances (N,)."""

    def __init__(self) -> None:
        self.norms: list[Tensor] = []
        self.unit_sum: Tensor | None = None
        self.unit_count: Tensor | None = None
        self.sample_var: list[Tensor] = []

    def add_batch(self, chunks) -> None:
        """Fold one batch of samples, given as (unit indices (K,), gradients (B, K, *input)) chunks."""
        norms, unit_sums, unit_counts = [], [], []
        sample_sum = sample_count = None
        for _, grads in chunks:
            g = grads.flatten(2).double()  # (B, K, D)
            n = g.norm(dim=2)
            direction = g / n.clamp_min(torch.finfo(g.dtype).tiny).unsqueeze(2)  # zero rows stay zero
            norms.append(n.cpu())
            unit_sums.append(direction.sum(dim=0).cpu())
            unit_counts.append((n > 0).sum(dim=0).cpu())
            s, c = direction.sum(dim=1), (n > 0).sum(dim=1)
            sample_sum = s if sample_sum is None else sample_sum + s
            sample_count = c if sample_count is None else sample_count + c
        unit_sum, unit_count = torch.cat(unit_sums), torch.cat(unit_counts)
        self.norms.append(torch.cat(norms, dim=1))
        self.unit_sum = unit_sum if self.unit_sum is None else self.unit_sum + unit_sum
        self.unit_count = unit_count if self.unit_count is None else self.unit_count + unit_count
        self.sample_var.append(_direction_var(sample_sum, sample_count).cpu())

    def result(self) -> GradientVariability:
        norms = torch.cat(self.norms)
        return GradientVariability(
            norms=norms,
            cv_across_samples=_cv(norms, dim=0),
            cv_across_units=_cv(norms, dim=1),
            direction_var_across_samples=_direction_var(self.unit_sum, self.unit_count),
            direction_var_across_units=torch.cat(self.sample_var),
        )


def variability_from_gradients(grads: Tensor) -> GradientVariability:
    """The statistics of the module docstring from precomputed gradients (N, U, *input)."""
    if not isinstance(grads, Tensor) or grads.ndim < 3:
        raise ValueError("grads must have shape (N, U, *input), as returned by input_unit_gradients")
    acc = _Accumulator()
    acc.add_batch([(torch.arange(grads.shape[1]), grads)])
    return acc.result()


def gradient_variability(
    model: nn.Module,
    x: Tensor,
    layers: LayerSpec = None,
    batch_size: int = 32,
    unit_chunk: int = 32,
    vectorize: bool = True,
) -> dict[str, GradientVariability]:
    """Input-unit gradient variability of each layer over the samples ``x``, streamed.

    Memory per step is unit_chunk x batch_size x D for the gradients, plus U x D float64
    for the per-unit direction sums; the gradients of all units are never held at once.

    Args:
        model (nn.Module): the network (eval mode inside, modes restored).
        x (Tensor): (N, ...) inputs in the model's input space.
        layers: module names or globs; None for the model's default selectivity layers.
        batch_size (int): samples per forward pass. Default: 32.
        unit_chunk (int): units per batched backward pass. Default: 32.
        vectorize (bool): batched backward passes (see :func:`input_unit_gradients`).

    Returns:
        dict: layer -> :class:`GradientVariability` (``.summary()`` for the layer means).
    """
    _check_x(x)
    for arg, value in (("batch_size", batch_size), ("unit_chunk", unit_chunk)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be a positive int, got {value!r}")
    names = resolve_layers(model, layers)
    device = next((t.device for t in (*model.parameters(), *model.buffers())), x.device)
    out = {}
    for name in names:
        acc = _Accumulator()
        for i in range(0, x.shape[0], batch_size):
            with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
                xg, acts = _activations_with_graph(model, x[i : i + batch_size].to(device), name)
                units = torch.arange(acts.shape[1], device=acts.device)
                acc.add_batch(_gradient_chunks(xg, acts, units, unit_chunk, vectorize))
        out[name] = acc.result()
    return out
