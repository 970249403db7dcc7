"""A run's model and device from its config: the one place that turns ``model.*`` into a network.

Training builds its model here, and so does :func:`~selectivity.runs.open.open_run` when a
finished run is opened, so both get the same architecture, class count, normalization and token
rule. It sits above :mod:`selectivity.models` (which knows nothing of configs) and below
training.
"""

from __future__ import annotations

import torch

from ..config import Config, ConfigError
from ..data import DatasetSplit
from ..data.text import TextSplit, load_text_split, tokenize
from ..models import accepts_keyword, create_model
from ..models.hf import HFModelError, is_hf_name, text_tokenizer
from .weights import load_safetensors_weights

__all__ = ["build_model", "load_texts", "resolve_device"]


def resolve_device(name: str, what: str = "train.device") -> torch.device:
    """``train.device`` (or the option ``what``) as a torch device: ``auto`` is CUDA when present, else
    the CPU; a device this machine lacks, or a name torch does not know, is a one-line ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"{what} must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{what} is {name!r} but no CUDA device is available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"{what} is {name!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{what} is {name!r} but no MPS device is available")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{what} must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}")
    return device


def build_model(config: Config, data: DatasetSplit, *, start_weights: bool = True) -> torch.nn.Module:
    """The config's model for this data: class count and normalization from the data.

    ``model.weights`` (fine-tuning) is loaded when ``start_weights``; a caller that loads a run's
    own weights next passes False, so a run outlives the file it started from.
    """
    kwargs = dict(config.model.kwargs)
    if kwargs.get("num_classes", data.num_classes) != data.num_classes:
        raise ConfigError(
            f"model.kwargs.num_classes is {kwargs['num_classes']} but the data {data.name!r} has "
            f"{data.num_classes} classes"
        )
    kwargs["num_classes"] = data.num_classes
    try:
        # A model of one's own that takes no mean/std gets images in [0, 1] and normalizes itself (or not).
        for key, value in (("mean", getattr(data, "mean", None)), ("std", getattr(data, "std", None))):
            if value is not None and accepts_keyword(config.model.name, key):  # texts have no pixel statistics
                kwargs.setdefault(key, value)
        model = create_model(config.model.name, **kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"model {config.model.name!r}: {err}") from None
    if config.model.weights and start_weights:  # fine-tuning: start from these weights (one error lists every misfit)
        load_safetensors_weights(model, config.model.weights)
    # Every probe on this model (regularizer, meter, recorder, analyses) reduces token layers alike.
    model.selectivity_tokens = config.regularizer.tokens
    model.selectivity_positive_part = config.regularizer.positive_part
    if hasattr(data, "texts"):  # a TextSplit: two of its texts, tokenized
        probe = data.batch(range(min(2, len(data))))
    else:
        probe = data.images[:2].to(torch.get_default_dtype()) / 255
    model.eval()
    with torch.no_grad():
        outputs = model(probe).shape[-1]
    if outputs != data.num_classes:
        raise ConfigError(f"model {config.model.name!r} has {outputs} outputs but the data has {data.num_classes} classes")
    return model


def load_texts(config: Config, splits: tuple[str, ...] = ("train", "test"), source: str | None = None
               ) -> tuple[TextSplit, ...]:
    """The ``splits`` of the labelled texts ``source`` (default ``data.source``), tokenized by
    ``model.name``'s own tokenizer with ``data.max_length`` and ``data.truncation`` (each split's
    ``tokenization`` records them): what training feeds the model, and what a run is measured on."""
    d = config.data
    source = source or d.source
    if not is_hf_name(config.model.name):
        raise ConfigError(f"data.source {source} is labelled text: it needs a Hugging Face text model "
                          f"(model.name: hf:DIR), not {config.model.name!r}")
    try:
        tokenizer, most = text_tokenizer(config.model.name)
    except HFModelError as err:
        raise ConfigError(f"model.name: {err}") from None
    return tuple(tokenize(load_text_split(source, s, d.text_column, d.label_column), tokenizer, d.max_length,
                          d.truncation, most) for s in splits)
