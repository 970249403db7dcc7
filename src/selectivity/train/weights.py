"""Weights from a ``.safetensors`` file into a model, strictly: for measuring any model and for fine-tuning.

``load_weights_file`` is what ``selectivity measure --model NAME --weights FILE`` and the
config's ``model.weights: FILE`` (training starts from these weights) both call. A file that
does not fit the model is one :class:`WeightsError` listing every missing key, unexpected
key and shape mismatch, so a file saved from another architecture is caught before any work.
Only safetensors is read: a pickle checkpoint could run code when loaded.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..runs import RunError, load_tensors

__all__ = ["WeightsError", "load_weights_file"]

_LISTED = 8  # keys shown per kind in a weights error


class WeightsError(RunError):
    """Weights that do not fit the model (missing, unexpected or misshapen keys), or not safetensors."""


def _listing(kind: str, items: list[str]) -> str:
    more = f" (+{len(items) - _LISTED} more)" if len(items) > _LISTED else ""
    return f"{kind} {len(items)}: {', '.join(items[:_LISTED])}{more}"


def load_weights_file(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a ``.safetensors`` state dict into ``model`` strictly, or raise one :class:`WeightsError`
    that lists every missing key, unexpected key and shape mismatch. A ``model.`` prefix on
    every key (the layout of this tool's checkpoints) is dropped.

    Args:
        model (nn.Module): the network, built for these weights.
        path (str | Path): a safetensors file (checksum verified when the file records one).

    Returns:
        nn.Module: ``model``, its weights loaded.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        tensors, _ = load_tensors(path)
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
