"""MonoLoss's reference embeddings from a file or a frozen encoder: one row per training image.

``regularizer.embeddings`` says where a MonoLoss run's embeddings come from:

- ``labels`` (default): one-hot labels, made batch by batch; nothing is read here.
- ``file``: ``regularizer.embeddings_file``, a float (N, D) tensor with one row per image of the
  training split *as data.source decodes it* (before ``data.train_per_class``), in the split's
  order. A ``.safetensors`` file holds one tensor and the metadata ``data_sha256``: the split's
  checksum (:attr:`DatasetSplit.checksum`). A ``.npy`` file has no metadata, so it needs a
  sidecar ``FILE.npy.json`` holding ``{"data_sha256": ...}``; it is read with
  ``allow_pickle=False`` (a pickle is refused, never loaded). :func:`save_embeddings` writes either.
- ``encoder``: ``regularizer.encoder`` (a registered model or ``package.module:factory``, built
  as every model of the tool: ``factory(num_classes=C)``, plus the data's ``mean``/``std`` where
  it takes them) with strict safetensors ``regularizer.encoder_weights``, run once in eval mode
  without gradients over the training images in [0, 1]; its (B, D) outputs are the rows. A
  Hugging Face folder ``hf:DIR`` brings its own weights (``encoder_weights`` optional) and gives
  an image's pooled output, or a text's mean over its real tokens of the last hidden state
  (texts: :func:`encode_texts`).

Either way the rows are checked (one per image, finite, none of norm 0) before any training, and
a mistake is one :class:`ConfigError` line naming the file, what it holds and what was expected.
The trainer attaches the rows to the split (``DatasetSplit.embeddings``) before any subsetting,
so subsets, shuffles and data-parallel shards carry each image's own row.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import DatasetSplit
from ..data.text import TextSplit, length_batches, tokenize
from ..models import accepts_keyword, create_model
from ..models.hf import HFModelError, is_hf_name, load_hf
from ..runs import RunError, load_tensors, save_tensors
from ..runs.weights import load_safetensors_weights
from ..config import Config, ConfigError

__all__ = ["DATA_SHA256", "encode_images", "read_embeddings_file", "reference_embeddings", "save_embeddings"]

#: The metadata key (safetensors) or JSON key (.npy sidecar) holding the split's checksum.
DATA_SHA256 = "data_sha256"
SUFFIXES = (".safetensors", ".npy")


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def save_embeddings(path: str | Path, embeddings: torch.Tensor, split: DatasetSplit) -> Path:
    """Write ``embeddings`` (N, D), one row per image of ``split``, as ``regularizer.embeddings_file``
    reads it: ``.safetensors`` (key ``embeddings``, metadata ``data_sha256``) or ``.npy`` plus its
    JSON sidecar. Returns the path.

    Example::

        >>> split = load_split("demo", "train")                      # doctest: +SKIP
        >>> save_embeddings("emb.safetensors", my_rows, split)       # doctest: +SKIP
    """
    path = Path(path)
    embeddings = embeddings.detach().cpu()
    if path.suffix not in SUFFIXES:
        raise ValueError(f"{path}: expected a .safetensors or .npy path")
    if embeddings.ndim != 2 or embeddings.shape[0] != len(split.labels):
        raise ValueError(f"expected (N, D) embeddings with N = {len(split.labels)} images of {split.name}, "
                         f"got {tuple(embeddings.shape)}")
    if path.suffix == ".npy":
        np.save(path, embeddings.numpy(), allow_pickle=False)
        _sidecar(path).write_text(json.dumps({DATA_SHA256: split.checksum}) + "\n")
    else:
        save_tensors(path, {"embeddings": embeddings}, metadata={DATA_SHA256: split.checksum})
    return path


def _read_safetensors(path: Path) -> tuple[torch.Tensor, str | None]:
    try:
        tensors, metadata = load_tensors(path)
    except RunError as err:
        raise ConfigError(f"regularizer.embeddings_file {path} is not a readable safetensors file ({err})") from None
    if len(tensors) != 1:
        raise ConfigError(f"regularizer.embeddings_file {path} holds {len(tensors)} tensors "
                          f"({', '.join(sorted(tensors)) or 'none'}); expected one (N, D) tensor, e.g. 'embeddings'")
    return next(iter(tensors.values())), metadata.get(DATA_SHA256)


def _read_npy(path: Path) -> tuple[torch.Tensor, str | None]:
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err).lower() or "object arrays" in str(err).lower():
            raise ConfigError(f"regularizer.embeddings_file {path} holds pickled Python objects, which are never "
                              "loaded; expected a numeric (N, D) array") from None
        raise ConfigError(f"regularizer.embeddings_file {path} is not a readable .npy file ({err})") from None
    except OSError as err:
        raise ConfigError(f"cannot read regularizer.embeddings_file {path}: {err.strerror or err}") from None
    if not isinstance(array, np.ndarray) or not (np.issubdtype(array.dtype, np.floating)
                                                 or np.issubdtype(array.dtype, np.integer)):
        raise ConfigError(f"regularizer.embeddings_file {path} holds {getattr(array, 'dtype', type(array).__name__)} "
                          "values; expected a numeric (N, D) array")
    sidecar = _sidecar(path)
    try:
        digest = json.loads(sidecar.read_text(encoding="utf-8")).get(DATA_SHA256)
    except (OSError, ValueError, AttributeError):
        raise ConfigError(f"regularizer.embeddings_file {path} needs the sidecar {sidecar} holding "
                          f'{{"{DATA_SHA256}": "<sha256 of the training split>"}} (a .npy file has no metadata '
                          "to say which images its rows belong to)") from None
    # Native byte order (a big-endian file is as valid as any), integers as floats: torch reads neither
    # a foreign byte order nor every integer width.
    native = np.float64 if np.issubdtype(array.dtype, np.integer) else array.dtype.newbyteorder("=")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=native)), digest


def read_embeddings_file(path: str | Path, split: DatasetSplit) -> torch.Tensor:
    """The (N, D) rows of ``path`` for ``split`` (the whole training split), checked; ConfigError if not."""
    path = Path(path).expanduser()
    if path.suffix not in SUFFIXES:
        raise ConfigError(f"regularizer.embeddings_file {path}: expected a .safetensors or .npy file")
    if not path.is_file():
        raise ConfigError(f"regularizer.embeddings_file {path} does not exist")
    rows, digest = _read_safetensors(path) if path.suffix == ".safetensors" else _read_npy(path)
    if digest is None:
        raise ConfigError(f"regularizer.embeddings_file {path} has no {DATA_SHA256} metadata; expected the "
                          f"checksum of the training split of {split.source or split.name}: {split.checksum}")
    if digest != split.checksum:
        raise ConfigError(f"regularizer.embeddings_file {path} holds embeddings of the data with {DATA_SHA256} "
                          f"{digest}; expected the training split of {split.source or split.name}: {split.checksum}")
    return _checked(rows, split, f"regularizer.embeddings_file {path}")


def encode_images(name: str, weights: str | Path, split: DatasetSplit, device: torch.device | str = "cpu",
                  batch_size: int = 256, progress: bool = True) -> torch.Tensor:
    """A frozen encoder's (N, D) outputs over ``split``'s images in [0, 1] (eval mode, no gradients).

    Args:
        name (str): a registered model or ``package.module:factory`` (called with ``num_classes=``,
            and ``mean=``/``std=`` of the data where it takes them).
        weights: its ``.safetensors`` state dict, loaded strictly.
        split: the images, uint8 (N, 3, H, W).
        device, batch_size, progress: where, how many images at a time, a progress bar.

    Returns:
        Tensor: float32 (N, D) on the CPU, row i for image i.
    """
    if is_hf_name(name):  # the folder's own model and weights; its pooled output per image
        encoder = _hf_encoder(name, weights, "image").model
    else:
        kwargs = {}
        try:
            for key, value in (("mean", split.mean), ("std", split.std)):
                if accepts_keyword(name, key):
                    kwargs[key] = value
            encoder = create_model(name, split.num_classes, **kwargs)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"regularizer.encoder {name!r}: {err}") from None
        try:
            load_safetensors_weights(encoder, Path(weights).expanduser())
        except RunError as err:
            raise ConfigError(f"regularizer.encoder_weights: {err}") from None
    encoder = encoder.to(device, torch.float32).eval()
    images, rows = split.images, []
    with torch.inference_mode():
        for start in tqdm(range(0, len(images), batch_size), disable=not progress, desc=f"encoding with {name}",
                          unit="batch"):
            x = images[start : start + batch_size].to(device, torch.float32).div_(255)
            out = encoder(x)
            if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != len(x):
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ConfigError(f"regularizer.encoder {name!r} returns {shape} for a batch of {len(x)} images; "
                                  "expected (B, D) embeddings")
            rows.append(out.float().cpu())
    return _checked(torch.cat(rows), split, f"the embeddings of regularizer.encoder {name!r}")


def _hf_encoder(name: str, weights, kind: str):
    """``load_hf(name)`` of the wanted kind, with ``weights`` (optional) loaded strictly over the folder's."""
    try:
        loaded = load_hf(name)
    except HFModelError as err:
        raise ConfigError(f"regularizer.encoder: {err}") from None
    if loaded.kind != kind:
        raise ConfigError(f"regularizer.encoder {name!r} is a {loaded.kind} model; the training data are {kind}s")
    if weights:
        try:
            load_safetensors_weights(loaded.model, Path(weights).expanduser())
        except RunError as err:
            raise ConfigError(f"regularizer.encoder_weights: {err}") from None
    return loaded


def encode_texts(name: str, weights: str | Path | None, split: TextSplit, device: torch.device | str = "cpu",
                 batch_size: int = 64, progress: bool = True) -> torch.Tensor:
    """A frozen Hugging Face text encoder's (N, D) rows over ``split``'s texts: each text, tokenized by
    the encoder's own tokenizer (cut on the right to its maximum), is the mean over its real tokens of
    the last hidden state (sentence-transformers' embedding), or the logits of a classifier."""
    if not is_hf_name(name):
        raise ConfigError(f"regularizer.encoder {name!r}: texts are encoded by a Hugging Face text model (hf:DIR)")
    loaded = _hf_encoder(name, weights, "text")
    texts = tokenize(dataclasses.replace(split, input_ids=None), loaded.tokenizer, None, "right", loaded.max_length)
    encoder = loaded.model.to(device, torch.float32).eval()
    rows = torch.empty(0)
    with torch.inference_mode():
        for index in tqdm(length_batches(texts.lengths, batch_size), disable=not progress,
                          desc=f"encoding with {name}", unit="batch"):
            out = encoder(texts.batch(index).to(device)).float().cpu()
            if rows.numel() == 0:
                rows = torch.zeros(len(texts), out.shape[1])
            rows[index] = out
    return _checked(rows, split, f"the embeddings of regularizer.encoder {name!r}")


def _checked(rows: torch.Tensor, split: DatasetSplit, what: str) -> torch.Tensor:
    """``rows`` as floats, if they are (N, D) for the N images of ``split``, finite and of nonzero norm."""
    n = len(split.labels)
    if rows.ndim != 2 or rows.shape[0] != n or rows.shape[1] < 1:
        raise ConfigError(f"{what} holds {tuple(rows.shape)} values; expected one row per training image of "
                          f"{split.source or split.name}: ({n}, D)")
    if rows.dtype.is_complex or rows.dtype == torch.bool:
        raise ConfigError(f"{what} holds {rows.dtype} values; expected real numbers")
    rows = rows if rows.dtype == torch.float64 else rows.float()
    if not bool(torch.isfinite(rows).all()):
        raise ConfigError(f"{what} holds NaN or infinite values (row {int((~torch.isfinite(rows)).any(1).nonzero()[0])})")
    zero = (rows == 0).all(dim=1)
    if bool(zero.any()):
        raise ConfigError(f"{what} has rows of norm 0 (row {int(zero.nonzero()[0])}): the cosine of a zero "
                          "embedding is undefined")
    return rows


def reference_embeddings(config: Config, split: DatasetSplit, device: torch.device | str = "cpu",
                         progress: bool = True) -> torch.Tensor | None:
    """The (N, D) embedding rows of ``config`` for ``split`` (the whole training split); None for
    label embeddings (or a run that takes none)."""
    reg = config.regularizer
    if reg.kind != "monoloss" or reg.embeddings == "labels":
        return None
    if reg.embeddings == "file":
        return read_embeddings_file(reg.embeddings_file, split)
    if isinstance(split, TextSplit):
        return encode_texts(reg.encoder, reg.encoder_weights, split, device, progress=progress)
    return encode_images(reg.encoder, reg.encoder_weights, split, device, progress=progress)
