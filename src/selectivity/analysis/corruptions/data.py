"""Loaders for the released corrupted test sets: CIFAR-10-C and Tiny-ImageNet-C.

The maintainers recommend evaluating on these files rather than on corruptions
recomputed in memory (:func:`selectivity.analysis.corruptions.corrupt`), whose random
draws differ. Layouts (Hendrycks & Dietterich, 2019):

- CIFAR-10-C: ``<root>/<corruption>.npy``, uint8 (50000, 32, 32, 3), the 10,000 CIFAR-10
  test images (test-set order) at severity 1, then 2, ... 5; ``<root>/labels.npy``, the
  test labels tiled five times. CIFAR-100-C has the same layout.
- Tiny-ImageNet-C: ``<root>/<corruption>/<severity>/<wnid>/*.JPEG``, 64x64. Labels come
  from the wnid folders; give the training set's class list so that indices agree
  with the model's (the Zenodo ``frost`` folder holds 1000 class folders instead of
  200, a known defect; a fixed copy is Zenodo record 8206060).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .presets import corruption_names

SEVERITIES = 5


def _check_name_severity(name: str, severity: int) -> None:
    names = corruption_names("all")
    if name not in names:
        raise ValueError(f"name must be one of {list(names)}, got {name!r}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= SEVERITIES:
        raise ValueError(f"severity must be an integer from 1 to {SEVERITIES}, got {severity!r}")


def _to_output(images: np.ndarray, dtype: torch.dtype) -> Tensor:
    """uint8 (N, H, W, 3) -> (N, 3, H, W) of ``dtype``: uint8 as is, floats scaled to [0, 1]."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    if dtype == torch.uint8:
        return x
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be torch.uint8 or a float dtype, got {dtype}")
    return x.to(dtype) / 255


def load_cifar10c(
    root: str | Path, name: str, severity: int, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """One corruption at one severity of the released CIFAR-10-C (or CIFAR-100-C) files.

    The ``.npy`` files are memory-mapped (``allow_pickle=False``), so only the rows of the
    requested severity, one fifth of the file, are read.

    Args:
        root (str | Path): the folder holding ``<name>.npy`` and ``labels.npy``.
        name (str): a corruption name, e.g. ``"gaussian_noise"`` (15 benchmark + 4 extras).
        severity (int): 1 to 5.
        dtype (torch.dtype): ``torch.uint8`` for the stored bytes, or a float dtype for
            values in [0, 1]. Default: ``torch.float32``.

    Returns:
        ``(images, labels)``: images (M, 3, H, W) of ``dtype`` (M = 10,000 for the
        release), labels (M,) int64.

    Raises:
        FileNotFoundError: ``<name>.npy`` or ``labels.npy`` missing (both named).
        ValueError: bad ``name``/``severity``, or files of the wrong dtype or shape.
    """
    _check_name_severity(name, severity)
    root = Path(root)
    paths = {"images": root / f"{name}.npy", "labels": root / "labels.npy"}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"CIFAR-10-C files missing: {missing}")
    images = np.load(paths["images"], mmap_mode="r", allow_pickle=False)
    labels = np.load(paths["labels"], mmap_mode="r", allow_pickle=False)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3 or len(images) % SEVERITIES:
        raise ValueError(f"{paths['images']}: expected uint8 (5*M, H, W, 3) images, got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images) or labels.dtype.kind not in "iu":
        raise ValueError(f"{paths['labels']}: expected {len(images)} integer labels, got {labels.dtype} {labels.shape}")
    block = len(images) // SEVERITIES
    rows = slice((severity - 1) * block, severity * block)
    return _to_output(np.array(images[rows]), dtype), torch.from_numpy(labels[rows].astype(np.int64))


def load_tinyimagenet_c(
    root: str | Path,
    name: str,
    severity: int,
    classes: Sequence[str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """One corruption at one severity of the released Tiny-ImageNet-C images.

    Reads ``<root>/<name>/<severity>/<wnid>/*.JPEG`` (greyscale JPEGs become RGB), class
    folders in the order of ``classes``, files sorted by name inside each.

    Args:
        root (str | Path): the ``Tiny-ImageNet-C`` folder.
        name (str): a corruption name, e.g. ``"gaussian_noise"``.
        severity (int): 1 to 5.
        classes (Sequence[str] | None): the wnids in label order, usually the sorted 200
            wnids of the training set. Every one needs a folder, and a folder outside
            the list is an error. ``None``: the sorted folder names. Default: ``None``.
        dtype (torch.dtype): ``torch.uint8`` or a float dtype for values in [0, 1].
            Default: ``torch.float32``.

    Returns:
        ``(images, labels)``: images (M, 3, H, W) of ``dtype``, labels (M,) int64, the
        index of each image's wnid in ``classes``.

    Raises:
        FileNotFoundError: the severity folder, or a class folder of ``classes``, is missing.
        ValueError: bad ``name``/``severity``, folders outside ``classes``, a class folder
            without JPEGs, or images of different sizes.
    """
    _check_name_severity(name, severity)
    folder = Path(root) / name / str(severity)
    if not folder.is_dir():
        raise FileNotFoundError(f"Tiny-ImageNet-C folder missing: {folder}")
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    classes = found if classes is None else list(classes)
    missing = sorted(set(classes) - set(found))
    if missing:
        raise FileNotFoundError(f"{folder}: {len(missing)} class folders missing, e.g. {missing[:5]}")
    extra = sorted(set(found) - set(classes))
    if extra:
        raise ValueError(
            f"{folder}: {len(extra)} folders are not in classes, e.g. {extra[:5]} "
            "(the Zenodo frost release has 1000 class folders; see Zenodo record 8206060)"
        )
    images, labels = [], []
    for label, wnid in enumerate(classes):
        files = sorted(p for p in (folder / wnid).iterdir() if p.suffix.lower() in (".jpeg", ".jpg"))
        if not files:
            raise ValueError(f"{folder / wnid}: no JPEG images")
        for path in files:
            with Image.open(path) as im:
                images.append(np.asarray(im.convert("RGB")))
        labels += [label] * len(files)
    sizes = sorted({im.shape for im in images})
    if len(sizes) > 1:
        raise ValueError(f"{folder}: images of different sizes {sizes}")
    return _to_output(np.stack(images), dtype), torch.tensor(labels, dtype=torch.int64)
