"""Hugging Face models from local folders: ``hf:DIR`` (or ``hf:ORG/NAME`` from the local cache).

DIR holds a model in the Hugging Face layout: ``config.json``, ``model.safetensors`` (or its
shards and ``model.safetensors.index.json``) and the tokenizer files (text) or
``preprocessor_config.json`` (images). Nothing is ever downloaded: ``HF_HUB_OFFLINE`` and
``TRANSFORMERS_OFFLINE`` are set before transformers is imported, every load passes
``local_files_only=True``, weights are read from safetensors only (a pickled
``pytorch_model.bin`` is refused), and a missing file is one :class:`HFModelError` line naming
the file to fetch. ``hf:ORG/NAME`` is looked up in the local Hugging Face cache
(``$HF_HUB_CACHE``, huggingface_hub's layout ``models--ORG--NAME/snapshots/<commit>``).

- :func:`load_hf` (measuring, MonoLoss's encoder): the folder's own model, the architecture
  that ``config.json`` names (``architectures``), else ``AutoModel``; and its tokenizer or
  image processor settings, in a :class:`HFModel`.
- :func:`hf_builder` (training, ``model.name: hf:DIR``): a classifier of the folder's weights
  with ``num_classes`` outputs, ``AutoModelForSequenceClassification`` or
  ``AutoModelForImageClassification`` (a head of another size, or none, starts afresh).

Calling convention (set up by :func:`adapt`, on the model itself, so its module names stay the
ones Hugging Face prints: ``encoder.layer.0.intermediate.intermediate_act_fn``): the model
called with one argument that has ``input_ids`` and ``attention_mask`` (a
:class:`~selectivity.data.text.TokenBatch`) or with images (N, 3, H, W) in [0, 1] (normalized
with the image processor's mean and std inside) returns one tensor: the logits of a
classifier; for a model without a head, a text's mean over its real tokens of the last hidden
state (the sentence embedding of sentence-transformers) or an image's pooled output. Called
with keywords (``model(**tokenizer(...))``) it is the Hugging Face model, unchanged.

The selectivity facts are set on the model: ``num_prefix_tokens`` (1 for a class token:
BERT's [CLS], RoBERTa's <s>, ViT's CLS; 0 for GPT-2), ``input_size`` (images) and, for CNNs
(ResNet, ConvNeXt), ``selectivity_layers`` (every residual layer of every stage). Transformers
keep the probe's default rule: the MLP activation of every layer.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["HFModel", "HFModelError", "adapt", "hf_builder", "hf_dir", "is_hf_name", "load_hf", "mlp_activations",
           "model_max_length", "text_tokenizer"]

PREFIX = "hf:"
#: The files a tokenizer may come in: one of these sets must be in the folder.
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.txt",), ("vocab.json", "merges.txt"), ("spiece.model",),
                   ("sentencepiece.bpe.model",), ("tokenizer.model",))
IMAGE_PROCESSOR = "preprocessor_config.json"


class HFModelError(ValueError):
    """A Hugging Face folder that cannot be loaded offline: a missing file, a pickle, no transformers."""


def is_hf_name(name: str) -> bool:
    """Whether ``name`` reads ``hf:DIR`` or ``hf:ORG/NAME``."""
    return isinstance(name, str) and name.startswith(PREFIX) and len(name) > len(PREFIX)


def _transformers():
    """transformers, imported with the hub switched offline (its constants are read at import)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        transformers = importlib.import_module("transformers")
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] in ("transformers", "tokenizers", "huggingface_hub"):
            raise HFModelError("hf: models need transformers, which is not installed: pip install 'selectivity[hf]' "
                               "(or pip install transformers)") from None
        raise
    transformers.utils.logging.disable_progress_bar()  # a bar per load of a few files says nothing
    return transformers


def _cache_dir() -> Path:
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(key):
            return Path(os.environ[key]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def hf_dir(name: str) -> Path:
    """The local folder of ``hf:DIR`` or ``hf:ORG/NAME`` (a snapshot of the local cache); never a download."""
    if not is_hf_name(name):
        raise HFModelError(f"model {name!r} should read 'hf:DIR' or 'hf:ORG/NAME'")
    spec = name[len(PREFIX):]
    path = Path(spec).expanduser()
    if path.is_dir():
        return path.resolve()
    parts = spec.split("/")
    if len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~")):
        repo = _cache_dir() / f"models--{parts[0]}--{parts[1]}"
        ref = repo / "refs" / "main"
        snapshots = repo / "snapshots"
        if ref.is_file() and (snapshots / ref.read_text().strip()).is_dir():
            return (snapshots / ref.read_text().strip()).resolve()
        found = sorted(p for p in snapshots.glob("*") if p.is_dir()) if snapshots.is_dir() else []
        if len(found) == 1:
            return found[0].resolve()
        raise HFModelError(f"model {name!r}: no folder {spec} here and no snapshot of {spec} in the local Hugging Face "
                           f"cache {_cache_dir()}; nothing is downloaded: fetch it where there is a network "
                           f"(huggingface-cli download {spec}) and copy the folder or the cache here")
    raise HFModelError(f"model {name!r}: {path} is not a folder; expected a Hugging Face model folder (config.json, "
                       "model.safetensors and the tokenizer or image processor files)")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise HFModelError(f"{path} is not readable JSON ({err})") from None
    if not isinstance(data, dict):
        raise HFModelError(f"{path} must hold a JSON object")
    return data


def _check_files(folder: Path) -> tuple[dict, str]:
    """config.json's content and the kind of model ("text" or "image"); HFModelError naming a missing file."""
    if not (folder / "config.json").is_file():
        raise HFModelError(f"{folder} has no config.json: fetch the model's config.json into it")
    config = _read_json(folder / "config.json")
    if not ((folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()):
        pickled = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt*")]
        if pickled:
            raise HFModelError(f"{folder} has {', '.join(sorted(pickled))} but no model.safetensors: pickled weights are "
                               "never loaded (they can run code); fetch model.safetensors")
        raise HFModelError(f"{folder} has no model.safetensors: fetch model.safetensors into it")
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(_read_json(index).get("weight_map", {}).values()))
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise HFModelError(f"{folder} lacks the weight shard {missing[0]}"
                               + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "") + ": fetch it")
    image = (folder / IMAGE_PROCESSOR).is_file() or "num_channels" in config
    if image:
        if not (folder / IMAGE_PROCESSOR).is_file():
            raise HFModelError(f"{folder} holds an image model but no {IMAGE_PROCESSOR} (its input size, mean and std): "
                               f"fetch {IMAGE_PROCESSOR}")
        return config, "image"
    if not any(all((folder / f).is_file() for f in files) for files in TOKENIZER_FILES):
        raise HFModelError(f"{folder} has no tokenizer files: fetch the model's tokenizer.json (or its vocabulary: "
                           "vocab.txt, vocab.json and merges.txt, or a sentencepiece model) and tokenizer_config.json")
    return config, "text"


@dataclass
class HFModel:
    """A loaded ``hf:`` folder: the model (adapted, eval mode) and how to feed it.

    Attributes:
        model: the Hugging Face model, adapted (see the module docstring).
        kind: ``"text"`` or ``"image"``.
        folder: where it was loaded from.
        architecture: the class built (``BertModel``, ``GPT2LMHeadModel``, ...).
        tokenizer: the model's own tokenizer (text), padding on the right.
        max_length: the most tokens the model takes (text).
        input_size, mean, std: the image processor's input side and normalization (images).
    """

    model: nn.Module
    kind: str
    folder: Path
    architecture: str
    tokenizer: Any = None
    max_length: int | None = None
    input_size: int | None = None
    mean: tuple = field(default=(0.0, 0.0, 0.0))
    std: tuple = field(default=(1.0, 1.0, 1.0))


def _load_tokenizer(folder: Path):
    transformers = _transformers()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError) as err:
        raise HFModelError(f"the tokenizer of {folder} cannot be loaded ({str(err).strip().splitlines()[0]}); "
                           "fetch its tokenizer.json and tokenizer_config.json") from None
    tokenizer.padding_side = "right"  # real tokens keep their positions 0..L-1 in every batch
    if tokenizer.pad_token is None:  # GPT-2 has none: pad with its end token (the mask says it is padding)
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if tokenizer.pad_token is None:
        raise HFModelError(f"the tokenizer of {folder} has no padding, end or unknown token to pad batches with")
    return tokenizer


def model_max_length(tokenizer, config) -> int:
    """The most tokens a text may have: the smaller of the tokenizer's model_max_length (where it says
    one) and the model's positions (RoBERTa's start after its padding index, so two fewer)."""
    limits = []
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < 1_000_000:
        limits.append(declared)
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            if "roberta" in getattr(config, "model_type", "") and getattr(config, "pad_token_id", None) is not None:
                value -= config.pad_token_id + 1
            limits.append(value)
            break
    if not limits:
        raise HFModelError("the model declares no maximum length (tokenizer model_max_length, max_position_embeddings)")
    return min(limits)


def _prefix_tokens(tokenizer) -> int:
    """How many special tokens the tokenizer puts before a text's own: 1 for [CLS] or <s>, 0 for GPT-2."""
    ids = tokenizer("a")["input_ids"]
    special = tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True)
    count = 0
    for flag in special:
        if not flag:
            break
        count += 1
    return count


def _image_settings(folder: Path) -> tuple[int, tuple, tuple]:
    settings = _read_json(folder / IMAGE_PROCESSOR)
    size = settings.get("crop_size") if settings.get("do_center_crop") else None
    size = size or settings.get("size") or 224
    if isinstance(size, dict):
        size = size.get("height") or size.get("shortest_edge") or size.get("width")
    mean = tuple(settings.get("image_mean") or (0.0, 0.0, 0.0)) if settings.get("do_normalize", True) else (0.0,) * 3
    std = tuple(settings.get("image_std") or (1.0, 1.0, 1.0)) if settings.get("do_normalize", True) else (1.0,) * 3
    return int(size), mean, std


def _from_pretrained(cls, folder: Path, **kwargs) -> nn.Module:
    try:
        return cls.from_pretrained(str(folder), local_files_only=True, use_safetensors=True, dtype=torch.float32,
                                   **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise HFModelError(f"{folder} cannot be loaded as {getattr(cls, '__name__', cls)}: "
                           f"{str(err).strip().splitlines()[0]}") from None


def load_hf(name: str) -> HFModel:
    """The model of ``hf:DIR`` as its folder has it (the architecture config.json names, else
    AutoModel), adapted, in eval mode, with its tokenizer or image settings. Offline only."""
    folder = hf_dir(name)
    config, kind = _check_files(folder)
    transformers = _transformers()
    architectures = config.get("architectures") or []
    cls = getattr(transformers, architectures[0], None) if architectures else None
    cls = cls or transformers.AutoModel
    model = _from_pretrained(cls, folder).eval()
    return _finish(model, folder, kind, type(model).__name__)


def _finish(model: nn.Module, folder: Path, kind: str, architecture: str) -> HFModel:
    if kind == "text":
        tokenizer = _load_tokenizer(folder)
        if getattr(model.config, "pad_token_id", None) is None:  # GPT-2's classifier finds the last token by it
            model.config.pad_token_id = tokenizer.pad_token_id
        loaded = HFModel(model, kind, folder, architecture, tokenizer=tokenizer,
                         max_length=model_max_length(tokenizer, model.config))
        model.num_prefix_tokens = _prefix_tokens(tokenizer)
        model.selectivity_tokenizer = tokenizer  # the data is tokenized with the model's own tokenizer
        model.selectivity_max_length = loaded.max_length
    else:
        size, mean, std = _image_settings(folder)
        loaded = HFModel(model, kind, folder, architecture, input_size=size, mean=mean, std=std)
        model.input_size = (3, size, size)
        model.input_normalization = (mean, std)
        if any(type(m).__name__.endswith("Embeddings") and hasattr(m, "cls_token") for m in model.modules()):
            model.num_prefix_tokens = 1  # ViT's class token
        cnn = _cnn_layers(model)
        if cnn:
            model.selectivity_layers = cnn
    adapt(model, kind, loaded.mean, loaded.std)
    return loaded


def _cnn_layers(model: nn.Module) -> list[str]:
    """A CNN's residual layers (HF ResNet, ConvNeXt: ``*.stages.*.layers.*``), when it has no attention."""
    names = [n for n, m in model.named_modules() if n]
    if any(type(m).__name__.lower().endswith("attention") for m in model.modules()):
        return []
    parts = [n.split(".") for n in names]
    return [n for n, p in zip(names, parts) if len(p) >= 4 and p[-4] == "stages" and p[-2] == "layers"]


def mlp_activations(model: nn.Module) -> list[str]:
    """The MLP activation modules of a transformer's layers (the probe's default rule)."""
    from ..core.probe import _mlp_activations, _transformer_blocks

    return _mlp_activations(model, _transformer_blocks(model))


def describe_blocks(model: nn.Module) -> str:
    """What the first transformer layer holds, for an error that says why no unit was found."""
    from ..core.probe import _transformer_blocks

    blocks = _transformer_blocks(model)
    if not blocks:
        return f"{type(model).__name__} has no layer with an attention module"
    first = model.get_submodule(blocks[0])
    held = [f"{n} ({type(m).__name__})" for n, m in first.named_modules() if n and not list(m.children())]
    return f"its layer {blocks[0]} holds {', '.join(held)}"


class _Adapter:
    """The pre-hook and hook that give an ``hf:`` model the tool's calling convention (see the module
    docstring); a keyword call passes through untouched."""

    def __init__(self, kind: str, mean, std):
        self.kind = kind
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.calls: list[tuple[dict, torch.Tensor | None]] = []  # the adapted calls in flight

    def before(self, module: nn.Module, args: tuple, kwargs: dict):
        if len(args) != 1:
            return None
        (x,) = args
        if self.kind == "text" and hasattr(x, "input_ids") and hasattr(x, "attention_mask"):
            adapted, mask = {**kwargs, "input_ids": x.input_ids, "attention_mask": x.attention_mask}, x.attention_mask
            args = ()
        elif self.kind == "image" and isinstance(x, torch.Tensor) and x.ndim == 4:
            adapted, mask = dict(kwargs), None
            args = ((x - self.mean.to(x)) / self.std.to(x),)
        else:
            return None
        del self.calls[:-8]  # calls that raised never reach after(); keep the list short
        self.calls.append((adapted, mask))
        return args, adapted

    def after(self, module: nn.Module, args: tuple, kwargs: dict, output):
        found = [i for i, (adapted, _) in enumerate(self.calls) if adapted is kwargs]
        if not found:
            return None  # a keyword call: the Hugging Face output as it is
        _, mask = self.calls.pop(found[-1])
        logits = getattr(output, "logits", None)
        if logits is not None:
            return logits
        if self.kind == "image":
            pooled = getattr(output, "pooler_output", None)
            if pooled is None:
                pooled = output.last_hidden_state.mean(dim=1)
            return pooled.flatten(1)
        hidden = output.last_hidden_state
        real = mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * real).sum(dim=1) / real.sum(dim=1).clamp(min=1)


def adapt(model: nn.Module, kind: str, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)) -> nn.Module:
    """Give ``model`` the tool's calling convention (once): one batch in, one tensor out."""
    if getattr(model, "_selectivity_adapter", None) is None:
        adapter = _Adapter(kind, mean, std)
        model.register_forward_pre_hook(adapter.before, with_kwargs=True)
        model.register_forward_hook(adapter.after, with_kwargs=True)
        model._selectivity_adapter = adapter
    return model


def text_tokenizer(name: str):
    """(tokenizer, the model's maximum length) of the text model ``hf:DIR``, without loading its weights."""
    folder = hf_dir(name)
    _, kind = _check_files(folder)
    if kind != "text":
        raise HFModelError(f"model {name!r} is an image model; labelled text needs a text model")
    transformers = _transformers()
    try:
        config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as err:
        raise HFModelError(f"{folder}/config.json cannot be read ({str(err).strip().splitlines()[0]})") from None
    tokenizer = _load_tokenizer(folder)
    return tokenizer, model_max_length(tokenizer, config)


def hf_builder(name: str):
    """The builder of ``hf:DIR`` for training: ``builder(num_classes)`` -> a classifier of the
    folder's weights with ``num_classes`` outputs (its head kept when it has that many, else new)."""
    folder = hf_dir(name)
    _, kind = _check_files(folder)

    def build(num_classes: int) -> nn.Module:
        transformers = _transformers()
        auto = (transformers.AutoModelForSequenceClassification if kind == "text"
                else transformers.AutoModelForImageClassification)
        model = _from_pretrained(auto, folder, num_labels=num_classes, ignore_mismatched_sizes=True)
        _finish(model, folder, kind, type(model).__name__)
        return model

    build.__name__ = "hf_" + folder.name.replace("-", "_")
    build.__qualname__ = build.__name__
    return build
