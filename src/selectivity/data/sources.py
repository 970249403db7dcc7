"""Dataset sources in their official layouts, found from a path and decoded to arrays.

Layouts (each as a folder or as a zip; the files may sit under one wrapping top-level
folder, e.g. ``cifar10/train/...`` in a zip):

- ``cifar10-python``: the official CIFAR-10 pickles, ``cifar-10-batches-py/`` with
  ``data_batch_1`` .. ``data_batch_5`` (train), ``test_batch`` (test) and ``batches.meta``.
  Read with :mod:`selectivity.data.safe_pickle`, never plain ``pickle.load``.
- ``tiny-imagenet``: ``tiny-imagenet-200/`` with ``wnids.txt``, ``words.txt``,
  ``train/<wnid>/images/*.JPEG`` and ``val/images/*.JPEG`` + ``val/val_annotations.txt``.
  Split ``'test'`` is the official *val* split (the official test split has no labels).
  Classes are the wnids in sorted order (what an ImageFolder over ``train/`` gives);
  ``classes`` holds the first name of each wnid in ``words.txt``, ``class_ids`` the wnids.
- ``imagefolder``: ``<split>/<class>/<image>`` for split ``train`` and ``test`` (``val``
  is used for ``'test'`` when there is no ``test/``). Images may sit deeper below the
  class folder. Classes are the sorted names of the class folders, over both splits
  together, so that a label means the same class in train and test. A class folder with no
  image, or a test class that train lacks, is an error (either would shift the labels).

The string ``"demo"`` names the bundled demo set (see :mod:`selectivity.data.bundled`);
to read a local folder called ``demo`` pass ``"./demo"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import bundled
from .decode import decode_images, is_image_name
from .errors import DatasetError
from .files import FileTree, open_tree, zip_fingerprint
from .safe_pickle import load_pickle

SPLITS = ("train", "test")
LAYOUTS = ("cifar10-python", "tiny-imagenet", "imagefolder")
EXPECTED = (
    "expected a folder or .zip holding CIFAR-10 python pickles (cifar-10-batches-py/: "
    "data_batch_1..5, test_batch, batches.meta), Tiny ImageNet (tiny-imagenet-200/: wnids.txt, "
    "train/<wnid>/images/, val/val_annotations.txt) or an ImageFolder tree (train|test/<class>/<image>)"
)
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


@dataclass
class Decoded:
    """One decoded split: images uint8 (N, 3, H, W), labels int64 (N,), class names and ids."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    class_ids: list[str]


@dataclass(frozen=True)
class SourceInfo:
    """What :func:`describe_source` finds at a path."""

    path: str
    name: str
    layout: str
    splits: tuple[str, ...]


class Source:
    """A dataset source: its path and name now; its file tree and layout when first needed.

    Opening the tree (walking a folder, parsing a zip's directory of 60,000 entries) and
    detecting the layout are deferred, so that a cache hit on a zip costs one sha256 of
    the file and nothing else.

    Args:
        source (str | Path): a folder, a ``.zip``, or ``"demo"``.
    """

    def __init__(self, source: str | Path):
        if str(source) == "demo":
            path = bundled.demo_path()
            if not path.is_file():
                raise DatasetError(
                    f"the bundled demo set {path} is missing; rebuild it with tools/make_demo_data.py"
                )
        else:
            path = Path(source).expanduser()
        if not path.exists():
            raise DatasetError(f"dataset source {path} does not exist; {EXPECTED}")
        if path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar")):
            raise DatasetError(f"dataset source {path} is a tar archive: extract it first; {EXPECTED}")
        self.path = path.resolve()
        self.name = self.path.name[: -len(".zip")] if self.path.name.endswith(".zip") else self.path.name
        self._tree: FileTree | None = None
        self._layout: tuple[str, str, tuple[str, ...]] | None = None
        self._fingerprint: dict[str, str] | None = None

    @property
    def tree(self) -> FileTree:
        """The folder or zip, opened on first use."""
        if self._tree is None:
            self._tree = open_tree(self.path)
        return self._tree

    def _detected(self) -> tuple[str, str, tuple[str, ...]]:
        if self._layout is None:
            names = self.tree.names
            for root in _candidate_roots(names):
                layout = _detect(names, root)
                if layout:
                    self._layout = (layout, root, _splits(layout, names, root))
                    break
            else:
                raise DatasetError(f"dataset source {self.path} is in no known layout; {EXPECTED}")
        return self._layout

    @property
    def layout(self) -> str:
        """``'cifar10-python'``, ``'tiny-imagenet'`` or ``'imagefolder'``."""
        return self._detected()[0]

    @property
    def root(self) -> str:
        """The folder inside the tree that holds the layout: ``''`` or ``'<top>/'``."""
        return self._detected()[1]

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits this source has, a subset of ``('train', 'test')``."""
        return self._detected()[2]

    def fingerprint(self) -> dict[str, str]:
        """``{'method', 'sha256'}`` of the source, computed once (see :mod:`.files`)."""
        if self._fingerprint is None:
            if self.path.is_file():
                self._fingerprint = zip_fingerprint(self.path)
            else:
                self._fingerprint = self.tree.fingerprint(contents=self.layout == "cifar10-python")
        return self._fingerprint

    def close(self) -> None:
        if self._tree is not None:
            self._tree.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _candidate_roots(names: list[str]) -> list[str]:
    """``''`` and, when everything sits in one top-level folder, that folder."""
    roots = [""]
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        roots.append(tops.pop() + "/")
    return roots


def _detect(names: list[str], root: str) -> str | None:
    present = set(names)
    if {root + "batches.meta", root + "test_batch", root + "data_batch_1"} <= present:
        return "cifar10-python"
    if root + "wnids.txt" in present:
        return "tiny-imagenet"
    for n in names:
        parts = n[len(root) :].split("/") if n.startswith(root) else []
        if len(parts) >= 3 and parts[0] in ("train", "test", "val") and is_image_name(n):
            return "imagefolder"
    return None


def _imagefolder_dir(names: list[str], root: str, split: str) -> str | None:
    """The folder that holds ``split``: ``train``, or ``test`` (else ``val``) for 'test'."""
    for folder in ("train",) if split == "train" else ("test", "val"):
        prefix = f"{root}{folder}/"
        if any(n.startswith(prefix) and n.count("/", len(prefix)) >= 1 and is_image_name(n) for n in names):
            return folder
    return None


def _splits(layout: str, names: list[str], root: str) -> tuple[str, ...]:
    present = set(names)
    if layout == "cifar10-python":
        return SPLITS
    if layout == "tiny-imagenet":
        has_train = any(n.startswith(root + "train/") for n in names)
        has_test = root + "val/val_annotations.txt" in present
        return tuple(s for s, ok in (("train", has_train), ("test", has_test)) if ok)
    return tuple(s for s in SPLITS if _imagefolder_dir(names, root, s))


def describe_source(source: str | Path) -> SourceInfo:
    """The layout, name and splits found at ``source`` (a folder, a .zip or ``"demo"``)."""
    with Source(source) as src:
        return SourceInfo(str(src.path), src.name, src.layout, src.splits)


def decode_split(src: Source, split: str, progress: bool = True) -> Decoded:
    """Read and decode one split of an opened source (no caching; see :func:`load_split`)."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected one of {SPLITS}")
    if split not in src.splits:
        raise DatasetError(
            f"dataset source {src.path} ({src.layout}) has no {split!r} split; it has {list(src.splits)}"
        )
    reader = {"cifar10-python": _read_cifar, "tiny-imagenet": _read_tiny, "imagefolder": _read_imagefolder}
    return reader[src.layout](src, split, progress)


# ---------------------------------------------------------------- CIFAR-10 python pickles


def _get(d: dict, key: str, where: str):
    """``d[b'key']`` as the official (Python 2) files have it, or ``d['key']``."""
    if not isinstance(d, dict):
        raise DatasetError(f"{where}: expected a pickled dict, found {type(d).__name__}")
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise DatasetError(f"{where}: the pickled dict has no key {key!r}")


def _read_cifar(src: Source, split: str, progress: bool) -> Decoded:
    tree, root = src.tree, src.root
    meta_where = tree.where(root + "batches.meta")
    names = [n.decode() if isinstance(n, bytes) else str(n)
             for n in _get(load_pickle(tree.read(root + "batches.meta"), meta_where), "label_names", meta_where)]
    files = _CIFAR_TRAIN if split == "train" else ("test_batch",)
    missing = [f for f in files if root + f not in tree.names]
    if missing:
        raise DatasetError(f"CIFAR-10 source {src.path} lacks {', '.join(missing)}; {EXPECTED}")
    images, labels = [], []
    for f in files:
        where = tree.where(root + f)
        batch = load_pickle(tree.read(root + f), where)
        data, lab = _get(batch, "data", where), np.asarray(_get(batch, "labels", where))
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DatasetError(f"{where}: b'data' must be a uint8 array (N, 3072), found "
                               f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
        if lab.shape != (len(data),) or not np.issubdtype(lab.dtype, np.integer):
            raise DatasetError(f"{where}: b'labels' must be {len(data)} integers, found shape {lab.shape}")
        if len(lab) and (lab.min() < 0 or lab.max() >= len(names)):
            raise DatasetError(f"{where}: labels must lie in [0, {len(names)}), found {lab.min()}..{lab.max()}")
        images.append(data.reshape(-1, 3, 32, 32))  # row-major R, G, B planes of 32x32
        labels.append(lab.astype(np.int64))
    return Decoded(np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels), names, list(names))


# ---------------------------------------------------------------- Tiny ImageNet


def _read_text(tree: FileTree, name: str) -> str:
    try:
        return tree.read(name).decode("utf-8")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{tree.where(name)} is not UTF-8 text: {e}") from None


def _read_tiny(src: Source, split: str, progress: bool) -> Decoded:
    tree, root = src.tree, src.root
    wnids = sorted(set(_read_text(tree, root + "wnids.txt").split()))
    if not wnids:
        raise DatasetError(f"{tree.where(root + 'wnids.txt')} lists no wnid")
    words: dict[str, str] = {}
    if root + "words.txt" in tree.names:
        for line in _read_text(tree, root + "words.txt").splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid.strip()] = text.split(",")[0].strip()
    classes = [words.get(w) or w for w in wnids]
    index = {w: i for i, w in enumerate(wnids)}
    files: list[str] = []
    labels: list[int] = []
    if split == "train":
        prefix = root + "train/"
        for n in tree.names:
            parts = n[len(prefix) :].split("/") if n.startswith(prefix) else []
            if len(parts) == 3 and parts[1] == "images" and is_image_name(n):
                if parts[0] not in index:
                    raise DatasetError(f"{tree.where(n)}: class folder {parts[0]} is not listed in wnids.txt")
                files.append(n)
                labels.append(index[parts[0]])
    else:
        ann = root + "val/val_annotations.txt"
        present = set(tree.names)
        for lineno, line in enumerate(_read_text(tree, ann).splitlines(), 1):
            fields = line.split("\t") if "\t" in line else line.split()
            if not line.strip():
                continue
            if len(fields) < 2 or fields[1] not in index:
                raise DatasetError(f"{tree.where(ann)} line {lineno}: expected '<file>\\t<wnid>...' "
                                   f"with a wnid from wnids.txt, found {line[:80]!r}")
            name = root + "val/images/" + fields[0]
            if name not in present:
                raise DatasetError(f"{tree.where(ann)} line {lineno}: image {tree.where(name)} does not exist")
            files.append(name)
            labels.append(index[fields[1]])
    if not files:
        raise DatasetError(f"Tiny ImageNet source {src.path} has no {split} images")
    images = decode_images(tree, files, progress, desc=f"decoding {src.name} {split}")
    return Decoded(images, np.asarray(labels, dtype=np.int64), classes, wnids)


# ---------------------------------------------------------------- ImageFolder


def _read_imagefolder(src: Source, split: str, progress: bool) -> Decoded:
    tree, root = src.tree, src.root
    folders = [f for f in (_imagefolder_dir(tree.names, root, s) for s in SPLITS) if f]
    by_folder: dict[str, list[tuple[str, str]]] = {f: [] for f in folders}
    for n in tree.names:
        parts = n[len(root) :].split("/") if n.startswith(root) else []
        if len(parts) >= 3 and parts[0] in by_folder and is_image_name(n):
            by_folder[parts[0]].append((parts[1], n))
    _check_class_folders(src, by_folder)
    classes = sorted({c for items in by_folder.values() for c, _ in items})
    index = {c: i for i, c in enumerate(classes)}
    items = by_folder[_imagefolder_dir(tree.names, root, split)]  # type: ignore[index]
    if not items:
        raise DatasetError(f"ImageFolder source {src.path} has no {split} images")
    files = [n for _, n in items]
    labels = np.asarray([index[c] for c, _ in items], dtype=np.int64)
    images = decode_images(tree, files, progress, desc=f"decoding {src.name} {split}")
    return Decoded(images, labels, classes, list(classes))


def _check_class_folders(src: Source, by_folder: dict[str, list[tuple[str, str]]]) -> None:
    """No empty class folder, and no test class that training never saw: both would shift labels."""
    found = {folder: {c for c, _ in items} for folder, items in by_folder.items()}
    for folder, classes in found.items():
        empty = sorted(src.tree.subfolders(f"{src.root}{folder}/") - classes)
        if empty:
            raise DatasetError(f"ImageFolder source {src.path}: class folder(s) "
                               f"{', '.join(f'{folder}/{c}' for c in empty)} hold no image; add images or remove them")
    if "train" in found and len(found) == 2:
        test = next(f for f in found if f != "train")
        unseen = sorted(found[test] - found["train"])
        if unseen:
            raise DatasetError(f"ImageFolder source {src.path}: {test}/ has class(es) {', '.join(unseen)} that train/ "
                               f"lacks (train/ has {', '.join(sorted(found['train']))}); the classes must match")
