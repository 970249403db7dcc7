"""Weights of a model of one's own, from a ``.safetensors`` state dict, loaded strictly.

Used by ``selectivity measure --model``, by fine-tuning (``model.weights: FILE``) and by MonoLoss's
frozen encoder (``regularizer.embeddings: encoder``): one loader, one error that lists every key
that does not fit, so a file saved from another architecture is caught before any work. Only
safetensors is read: a pickle checkpoint could run code when loaded.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from .files import RunError
from .tensors import load_tensors

__all__ = ["WeightsError", "load_safetensors_weights"]

_LISTED = 8  # keys shown per kind in a weights error


class WeightsError(RunError):
    """Weights that do not fit the model (missing, unexpected or misshapen keys), or not safetensors."""


def _listing(kind: str, items: list[str]) -> str:
    more = f" (+{len(items) - _LISTED} more)" if len(items) > _LISTED else ""
    return f"{kind} {len(items)}: {', '.join(items[:_LISTED])}{more}"


def load_safetensors_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a ``.safetensors`` state dict into ``model`` strictly, or raise one :class:`WeightsError`
    that lists every missing key, unexpected key and shape mismatch. A ``model.`` prefix on
    every key (the layout of this tool's checkpoints) is dropped."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        tensors, _ = load_tensors(path)  # checksum verified when the file records one
    except RunError as err:
        raise WeightsError(f"weights {path} are not a readable .safetensors file ({err}); only safetensors is "
                           "accepted (convert a pickle checkpoint with safetensors.torch.save_file in a trusted "
                           "environment)") from None
    expected = model.state_dict()
    if tensors and all(k.startswith("model.") for k in tensors) and not any(k.startswith("model.") for k in expected):
        tensors = {k.removeprefix("model."): v for k, v in tensors.items()}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = sorted(f"{k} {tuple(tensors[k].shape)} (model {tuple(expected[k].shape)})"
                    for k in set(expected) & set(tensors) if tensors[k].shape != expected[k].shape)
    problems = [_listing(kind, items) for kind, items in
                (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)) if items]
    if problems:
        raise WeightsError(f"weights {path} do not fit the model {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(tensors, strict=True)
    return model
