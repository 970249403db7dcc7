"""Non-finite outputs: a model that returns NaN or inf is an error, never a prediction.

``argmax`` of a row of NaN is class 0, so a broken model would score the share of class 0 as its
accuracy. Every evaluation checks its logits (:func:`check_finite_logits`) and names the first
layer, in the order of the forward pass, whose output stops being finite, so the user knows where
the network broke (weights, an input, an operation).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["NonFiniteOutputError", "check_finite_logits", "first_non_finite_layer"]


class NonFiniteOutputError(ValueError):
    """The model's output holds NaN or inf on some images."""


def _outputs(value):
    """The tensors of a module's output (a tensor, a tuple or list, or a dict of them)."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _outputs(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _outputs(v)]
    return []


@torch.no_grad()
def first_non_finite_layer(model: nn.Module, x: Tensor) -> str | None:
    """The name of the first module, in the order the forward pass runs them, whose output holds a
    NaN or an inf on ``x``; '' for the model's input itself; None when every output is finite."""
    if not torch.isfinite(x).all():
        return ""
    seen: list[str] = []
    handles = []

    def hook(name):
        def record(module, args, output):
            if not seen and any(t.is_floating_point() and not torch.isfinite(t).all() for t in _outputs(output)):
                seen.append(name)
        return record

    try:
        for name, module in model.named_modules():
            handles.append(module.register_forward_hook(hook(name or "(the model's output)")))
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return seen[0] if seen else None


def check_finite_logits(model: nn.Module, x: Tensor, logits: Tensor, where: str = "") -> None:
    """Raise :class:`NonFiniteOutputError` when ``logits`` (the model's output on ``x``) holds NaN or inf,
    naming how many images and the first non-finite layer; ``where`` says which evaluation it was."""
    bad = ~torch.isfinite(logits).reshape(logits.shape[0], -1).all(dim=1)
    if not bad.any():
        return
    rows = torch.nonzero(bad).flatten()
    layer = first_non_finite_layer(model, x[rows[:8]])
    at = ("the input images themselves" if layer == "" else
          f"first non-finite output at layer {layer!r}" if layer else "no layer output is non-finite on a rerun")
    kinds = "NaN" if torch.isnan(logits).any() else "inf"
    raise NonFiniteOutputError(f"the model returns {kinds} logits on {int(bad.sum())} of {logits.shape[0]} images"
                               f"{f' ({where})' if where else ''}: {at}; a prediction needs finite logits")
