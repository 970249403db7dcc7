"""Decode each split once, keep it as uint8 arrays on disk, load it back in well under a second.

A cache entry is two files in ``<cache_dir>/<source name>-<hash of its path>/``:

- ``<split>.safetensors``: ``images`` uint8 (N, 3, H, W) and ``labels`` int64 (N,)
- ``<split>.json``: the manifest: source path, layout, split, N, H, W, classes, class ids,
  per-channel mean/std of this split's pixels in [0, 1], the source fingerprint (see
  :mod:`selectivity.data.files`), the sha256 of the safetensors file and the cache format.

An entry is used only when its manifest matches the source's current fingerprint, the
split and :data:`CACHE_FORMAT`, and the data file's sha256 matches the
manifest; anything else (changed source, missing, truncated or corrupt file) rebuilds it,
with a warning when a file was corrupt. Both files are written to a temporary name and
moved into place with ``os.replace``, data first, so a reader never sees half a file and a
crash between the two leaves an entry that fails its check and is rebuilt.

Default cache dir: ``$SELECTIVITY_CACHE``, else ``~/.cache/selectivity``; ``cache_dir=`` wins.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save_file
import torch

from . import sources
from .errors import DatasetError
from .files import sha256_file
from .sources import SPLITS, Decoded, Source

CACHE_FORMAT = 1
_MANIFEST_KEYS = ("layout", "n", "height", "width", "classes", "class_ids", "mean", "std", "data_sha256")
log = logging.getLogger(__name__)


@dataclass(repr=False, eq=False)
class DatasetSplit:
    """One split, decoded: ``images`` uint8 (N, 3, H, W) contiguous, ``labels`` int64 (N,).

    ``mean`` and ``std`` are the per-channel mean and (population) standard deviation of the
    pixels scaled to [0, 1], over the split named by ``stats_from``: the *train* split of the
    same source by default, also for a test split, because the model normalizes its input
    with them in its first layer (the loader yields unnormalized [0, 1] pixels). When a
    source has no train split they come from the split itself, and ``stats_from`` says so.

    Attributes:
        images (Tensor): uint8 (N, 3, H, W), contiguous, on the CPU.
        labels (Tensor): int64 (N,), values in [0, num_classes).
        classes (list[str]): human-readable class names, index = label.
        mean (tuple[float, float, float]): per-channel pixel mean in [0, 1].
        std (tuple[float, float, float]): per-channel pixel standard deviation in [0, 1].
        name (str): the source's name (its file or folder name without ``.zip``).
        source (str): absolute path of the source.
        split (str): ``'train'`` or ``'test'``.
        layout (str): ``'cifar10-python'``, ``'tiny-imagenet'`` or ``'imagefolder'``.
        class_ids (list[str]): the classes as the source names them (wnids, folder names).
        stats_from (str): the split ``mean`` and ``std`` were computed on.
        checksum (str): sha256 of the decoded split (images and labels as cached).
        embeddings (Tensor | None): float (N, D), one reference embedding per image, in the images'
            order (MonoLoss's embeddings from a file or an encoder, attached by the trainer); None: none.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str
    source: str
    split: str = "train"
    layout: str = ""
    class_ids: list[str] = field(default_factory=list)
    stats_from: str = "train"
    checksum: str = ""  # sha256 of the decoded split: what identifies the data, wherever it lies
    embeddings: torch.Tensor | None = None  # rows follow the images through every subset

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        return (f"DatasetSplit(name={self.name!r}, split={self.split!r}, n={n}, size={h}x{w}, "
                f"num_classes={self.num_classes}, layout={self.layout!r})")


def channel_stats(images: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and population std of uint8 pixels scaled to [0, 1].

    mean_c = sum_v count_c(v) * v/255 / n,  std_c = sqrt(sum_v count_c(v) * (v/255 - mean_c)^2 / n),
    exact in float64 from a 256-bin histogram per channel. images: uint8 (N, 3, H, W).
    """
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = np.bincount(images[:, c].reshape(-1), minlength=256).astype(np.float64)
        n = counts.sum()
        mean = float(counts @ values / n)
        means.append(mean)
        stds.append(float(np.sqrt(counts @ (values - mean) ** 2 / n)))
    return tuple(means), tuple(stds)  # type: ignore[return-value]


def default_cache_dir() -> Path:
    """``$SELECTIVITY_CACHE`` if set, else ``~/.cache/selectivity``."""
    env = os.environ.get("SELECTIVITY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "selectivity"


def entry_dir(cache_dir: Path, src: Source) -> Path:
    """The folder holding a source's cache entries: ``<name>-<sha256(path)[:12]>``."""
    key = hashlib.sha256(str(src.path).encode()).hexdigest()[:12]
    return cache_dir / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', src.name)}-{key}"


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)``, then ``os.replace`` the temporary file onto ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0o600; the cache may be shared
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_manifest(path: Path, src: Source, split: str) -> dict | None:
    """The manifest if it belongs to the current source and split, else None."""
    try:
        manifest = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as e:
        warnings.warn(f"cache manifest {path} is unreadable ({e}); rebuilding it", stacklevel=4)
        return None
    want = {"format": CACHE_FORMAT, "split": split, "source_fingerprint": src.fingerprint()}
    if not isinstance(manifest, dict) or any(manifest.get(k) != v for k, v in want.items()):
        log.info("cache %s is stale (source or format changed); rebuilding", path)
        return None
    missing = [k for k in _MANIFEST_KEYS if k not in manifest]
    if missing:
        warnings.warn(f"cache manifest {path} lacks {missing}; rebuilding it", stacklevel=4)
        return None
    return manifest


def _read_data(path: Path, manifest: dict) -> dict[str, torch.Tensor] | None:
    """The cached tensors if the file matches the manifest's sha256 and shapes, else None."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        if hashlib.sha256(raw).hexdigest() != manifest["data_sha256"]:
            raise ValueError("sha256 differs from the manifest")
        tensors = load_safetensors_bytes(raw)
        n, h, w = manifest["n"], manifest["height"], manifest["width"]
        images, labels = tensors["images"], tensors["labels"]
        if images.dtype != torch.uint8 or tuple(images.shape) != (n, 3, h, w):
            raise ValueError(f"images are {images.dtype} {tuple(images.shape)}")
        if labels.dtype != torch.int64 or tuple(labels.shape) != (n,):
            raise ValueError(f"labels are {labels.dtype} {tuple(labels.shape)}")
    except Exception as e:
        warnings.warn(f"cache file {path} is corrupt ({e}); rebuilding it", stacklevel=4)
        return None
    return tensors


def _build(src: Source, split: str, folder: Path, progress: bool) -> tuple[dict, dict[str, torch.Tensor]]:
    decoded: Decoded = sources.decode_split(src, split, progress=progress)
    n, _, h, w = decoded.images.shape
    tensors = {"images": torch.from_numpy(decoded.images), "labels": torch.from_numpy(decoded.labels)}
    mean, std = channel_stats(decoded.images)
    data_path = folder / f"{split}.safetensors"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(data_path, lambda tmp: save_file(tensors, tmp))
        manifest = {
            "format": CACHE_FORMAT,
            "source": str(src.path),
            "name": src.name,
            "layout": src.layout,
            "split": split,
            "n": int(n),
            "height": int(h),
            "width": int(w),
            "classes": decoded.classes,
            "class_ids": decoded.class_ids,
            "mean": list(mean),
            "std": list(std),
            "source_fingerprint": src.fingerprint(),
            "data_file": data_path.name,
            "data_sha256": sha256_file(data_path),
        }
        text = json.dumps(manifest, indent=1)
        _atomic_write(folder / f"{split}.json", lambda tmp: Path(tmp).write_text(text))
    except OSError as e:
        raise DatasetError(
            f"cannot write the dataset cache in {folder}: {e}; pass cache_dir= or set SELECTIVITY_CACHE"
        ) from None
    return manifest, tensors


def _cached(src: Source, split: str, folder: Path) -> tuple[dict | None, dict[str, torch.Tensor] | None]:
    """(manifest, tensors) of a valid cache entry, or Nones. Needs only the source's fingerprint."""
    manifest = _read_manifest(folder / f"{split}.json", src, split)
    if manifest is None:
        return None, None
    return manifest, _read_data(folder / f"{split}.safetensors", manifest)


def _require_split(src: Source, split: str) -> None:
    if split not in src.splits:
        raise DatasetError(
            f"dataset source {src.path} ({src.layout}) has no {split!r} split; it has {list(src.splits)}"
        )


def load_split(
    source: str | Path,
    split: str,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    stats_from: str = "train",
) -> DatasetSplit:
    """Load one split of a dataset source, decoding it only when its cache entry is missing or stale.

    Args:
        source (str | Path): a folder or ``.zip`` in a known layout (see
            :mod:`selectivity.data.sources`), or ``"demo"`` for the bundled demo set.
        split (str): ``'train'`` or ``'test'`` (Tiny ImageNet: its labelled val split).
        cache_dir (str | Path | None): where decoded splits live; None uses
            :func:`default_cache_dir`. Default: None
        progress (bool): show a progress bar while decoding. Default: True
        stats_from (str): the split whose pixel mean/std fill ``mean``/``std``: ``'train'``
            (decoded and cached too, if it is not yet) or ``'test'``; falls back to ``split``
            itself when the source lacks it. Default: "train"

    Returns:
        DatasetSplit: images uint8 (N, 3, H, W), labels int64 (N,), classes, mean, std.

    Raises:
        DatasetError: missing path, unknown layout, missing split, undecodable image.
    """
    if split not in SPLITS or stats_from not in SPLITS:
        raise DatasetError(f"split and stats_from must be one of {SPLITS}, got {split!r} and {stats_from!r}")
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    with Source(source) as src:
        folder = entry_dir(root, src)
        manifest, tensors = _cached(src, split, folder)
        if manifest is None or tensors is None:
            _require_split(src, split)
            manifest, tensors = _build(src, split, folder, progress)
        stats = manifest if stats_from == split else _read_manifest(folder / f"{stats_from}.json", src, stats_from)
        if stats is None:  # the statistics' split is not cached (yet)
            if stats_from in src.splits:
                stats = _build(src, stats_from, folder, progress)[0]
            else:
                stats, stats_from = manifest, split
    return DatasetSplit(
        images=tensors["images"],
        labels=tensors["labels"],
        classes=list(manifest["classes"]),
        mean=tuple(stats["mean"]),  # type: ignore[arg-type]
        std=tuple(stats["std"]),  # type: ignore[arg-type]
        name=src.name,
        source=str(src.path),
        split=split,
        layout=manifest["layout"],
        class_ids=list(manifest["class_ids"]),
        stats_from=stats_from,
        checksum=manifest["data_sha256"],
    )
