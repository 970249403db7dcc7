"""Labelled images of any size for measuring a trained model: listed once, decoded per batch.

:func:`open_image_set` accepts, as a folder or a ``.zip`` (optionally under one wrapping
top-level folder):

- class folders directly: ``<class>/<image>`` (e.g. an ImageNet-style validation folder
  sorted into ``<wnid>/*.JPEG``, the layout the usual ``valprep.sh`` makes);
- an ImageFolder tree with splits: ``train|test|val/<class>/<image>``; the split asked for
  (default: ``val``, else ``test``, else ``train``);
- CIFAR-10 python pickles or Tiny ImageNet (the layouts of :mod:`.sources`; split
  ``test``, Tiny ImageNet's official val).

Images may differ in size: each batch is decoded, resized so its shorter side is
``size / crop_fraction`` and centre-cropped to ``size`` x ``size`` (:func:`resize_center_crop`).
Classes are the sorted class-folder names. Nothing is cached and nothing is kept in memory
beyond one batch (CIFAR and Tiny ImageNet, small, are decoded at once).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .decode import decode_image, is_image_name
from .errors import DatasetError
from .files import open_tree
from .sources import Source, decode_split

__all__ = ["ImageSet", "open_image_set", "resize_center_crop"]

_SPLIT_FOLDERS = ("val", "test", "train")


def resize_center_crop(images: Tensor, size: int, crop_fraction: float = 1.0) -> Tensor:
    """Resize (N, 3, H, W) images so the shorter side is ``round(size / crop_fraction)``, crop the centre.

    Bilinear with antialiasing; uint8 in, uint8 out (float in, float out). ``crop_fraction``
    1.0 (default) keeps the whole shorter side; 0.875 is the usual ImageNet evaluation
    (resize to 256, crop 224). Images already ``size`` x ``size`` with fraction 1 are returned as is.
    """
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    if not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction must lie in (0, 1], got {crop_fraction}")
    h, w = images.shape[-2:]
    short = max(size, round(size / crop_fraction))
    if min(h, w) != short:
        scale = short / min(h, w)
        new = (max(size, round(h * scale)), max(size, round(w * scale)))
        x = images.float()
        x = F.interpolate(x, size=new, mode="bilinear", antialias=True, align_corners=False)
        images = x.round().clamp(0, 255).to(torch.uint8) if images.dtype == torch.uint8 else x.to(images.dtype)
        h, w = new
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top : top + size, left : left + size]


class ImageSet:
    """Labelled images: ``labels`` (N,) int64, ``classes`` (names), ``names`` (where each image is),
    and :meth:`batch` (decode, resize, crop) -> uint8 (n, 3, size, size)."""

    def __init__(self, path: Path, names: list[str], labels: np.ndarray, classes: list[str], tree=None,
                 arrays: np.ndarray | None = None):
        self.path, self.names, self.classes = path, names, classes
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self._tree, self._arrays = tree, arrays

    def __len__(self) -> int:
        return len(self.names)

    def batch(self, indices, size: int, crop_fraction: float = 1.0) -> Tensor:
        """Images ``indices`` as uint8 (n, 3, size, size)."""
        if self._arrays is not None:
            return resize_center_crop(torch.from_numpy(self._arrays[list(indices)]), size, crop_fraction)
        out = []
        for i in indices:
            name = self.names[i]
            img = torch.from_numpy(decode_image(self._tree.read(name), self._tree.where(name)).copy())
            out.append(resize_center_crop(img.permute(2, 0, 1).unsqueeze(0), size, crop_fraction))
        return torch.cat(out)

    def first_image_size(self) -> tuple[int, int]:
        """(H, W) of the first image, before any resizing."""
        if self._arrays is not None:
            return tuple(self._arrays.shape[-2:])
        name = self.names[0]
        return decode_image(self._tree.read(name), self._tree.where(name)).shape[:2]

    def close(self) -> None:
        if self._tree is not None:
            self._tree.close()


def _common_root(names: list[str]) -> str:
    """One wrapping top-level folder (not itself a split folder), or ``''``."""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) != 1 or not all("/" in n for n in names) or next(iter(tops)) in _SPLIT_FOLDERS:
        return ""
    return tops.pop() + "/"


def open_image_set(path: str | Path, split: str | None = None) -> ImageSet:
    """List the labelled images at ``path`` (see the module docstring for the layouts); ``"demo"`` is
    the bundled CIFAR-10 demo set."""
    if str(path) == "demo":
        from .bundled import demo_path

        path = demo_path()
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"image data {path} does not exist; expected a folder or .zip of <class>/<image> "
                           "or (train|val|test)/<class>/<image>")
    tree = open_tree(path)
    images = [n for n in tree.names if is_image_name(n)]
    root = _common_root(tree.names) if tree.names else ""
    if not images:
        tree.close()
        with Source(path) as src:  # CIFAR-10 pickles or Tiny ImageNet, else its clear error
            decoded = decode_split(src, split or "test", progress=False)
        names = [f"{path}#{i}" for i in range(len(decoded.labels))]
        return ImageSet(path, names, decoded.labels, decoded.classes, arrays=decoded.images)
    if root + "wnids.txt" in tree.names:  # Tiny ImageNet: labels of val come from its annotations
        tree.close()
        with Source(path) as src:
            decoded = decode_split(src, "test" if split in (None, "val") else split, progress=False)
        names = [f"{path}#{i}" for i in range(len(decoded.labels))]
        return ImageSet(path, names, decoded.labels, decoded.classes, arrays=decoded.images)
    rel = [(n, n[len(root) :].split("/")) for n in images if n.startswith(root)]
    split_folders = {parts[0] for _, parts in rel if len(parts) >= 3 and parts[0] in _SPLIT_FOLDERS}
    if split_folders:
        if split is not None and split not in split_folders:
            tree.close()
            raise DatasetError(f"image data {path} has no {split!r} folder; it has {sorted(split_folders)}")
        chosen = split or next(f for f in _SPLIT_FOLDERS if f in split_folders)
        items = [(parts[1], n) for n, parts in rel if len(parts) >= 3 and parts[0] == chosen]
    else:
        items = [(parts[0], n) for n, parts in rel if len(parts) >= 2]
    if not items:
        tree.close()
        raise DatasetError(f"image data {path} has no images in class folders; expected <class>/<image> "
                           "or (train|val|test)/<class>/<image>")
    classes = sorted({c for c, _ in items})
    if len(classes) < 2:
        tree.close()
        raise DatasetError(f"image data {path} has one class folder ({classes[0]!r}); selectivity needs at least 2")
    index = {c: i for i, c in enumerate(classes)}
    labels = np.asarray([index[c] for c, _ in items], dtype=np.int64)
    return ImageSet(path, [n for _, n in items], labels, classes, tree=tree)
