"""Decoding image files to one uint8 array (N, 3, H, W), optionally over a process pool.

Every image becomes RGB (greyscale ``L``, palette ``P``, ``RGBA`` ... via ``convert('RGB')``;
alpha is dropped). All images of one call must share the first image's size. Errors name
the image inside its source (``/data/x.zip:train/cat/0001.jpg``).

For large splits the work is spread over a ``fork`` process pool (Linux), one worker per
available core: each worker reopens the folder or zip itself (a forked zip file handle
shares its file offset with the parent, so it must not be reused), decodes a chunk and
sends the chunk's array back. Decoding a 32x32 JPEG costs about 90 us, so the pool only
starts above :data:`POOL_MIN_IMAGES` images. (Python >= 3.12 warns when it forks a process
that runs threads, e.g. torch's; the workers only decode images, which is safe.)
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image
from tqdm import tqdm

from .errors import DatasetError
from .files import FileTree, open_tree

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}
)
POOL_MIN_IMAGES = 4096
_CHUNK = 1024


def is_image_name(name: str) -> bool:
    """True when the file name ends in a known image suffix (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Encoded image bytes -> uint8 array (H, W, 3). ``where`` names the file in errors."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            rgb = im.convert("RGB") if im.mode != "RGB" else im
            rgb.load()
            return np.asarray(rgb, dtype=np.uint8)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError ...
        raise DatasetError(f"cannot decode image {where}: {type(e).__name__}: {e}") from None


def _decode_into(tree: FileTree, names: list[str], out: np.ndarray, size: tuple[int, int], first: str) -> None:
    h, w = size
    for i, name in enumerate(names):
        img = decode_image(tree.read(name), tree.where(name))
        if img.shape[:2] != (h, w):
            raise DatasetError(
                f"image {tree.where(name)} is {img.shape[1]}x{img.shape[0]} but the split's first "
                f"image {first} is {w}x{h}; all images of a split must have the same size"
            )
        out[i] = img.transpose(2, 0, 1)


_worker_tree: FileTree | None = None


def _init_worker(kind: str, path: str) -> None:
    global _worker_tree
    _worker_tree = open_tree(path, scan=False)
    assert _worker_tree.kind == kind


def _decode_chunk(names: list[str], size: tuple[int, int], first: str) -> np.ndarray:
    assert _worker_tree is not None
    out = np.empty((len(names), 3, *size), dtype=np.uint8)
    _decode_into(_worker_tree, names, out, size, first)
    return out


def default_workers() -> int:
    """Cores this process may use (``sched_getaffinity`` where the OS has it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def decode_images(
    tree: FileTree,
    names: list[str],
    progress: bool = True,
    desc: str = "decoding",
    workers: int | None = None,
) -> np.ndarray:
    """Decode ``names`` from ``tree`` into a new uint8 array (N, 3, H, W), in the order given.

    Args:
        tree (FileTree): the folder or zip holding the files.
        names (list[str]): relative paths inside ``tree``; must not be empty.
        progress (bool): show a tqdm bar. Default: True
        desc (str): the bar's label. Default: "decoding"
        workers (int | None): processes to decode with; None uses every available core when
            there are at least ``POOL_MIN_IMAGES`` images, else 1. Default: None
    """
    if not names:
        raise DatasetError(f"no images to decode in {tree.path}")
    first_img = decode_image(tree.read(names[0]), tree.where(names[0]))
    size = first_img.shape[:2]
    first = tree.where(names[0])
    out = np.empty((len(names), 3, *size), dtype=np.uint8)
    if workers is None:
        workers = default_workers() if len(names) >= POOL_MIN_IMAGES else 1
    with tqdm(total=len(names), desc=desc, unit="img", disable=not progress) as bar:
        if workers <= 1:
            for start in range(0, len(names), _CHUNK):
                chunk = names[start : start + _CHUNK]
                _decode_into(tree, chunk, out[start : start + len(chunk)], size, first)
                bar.update(len(chunk))
            return out
        # fork on Linux: no re-import of torch in the workers; elsewhere the platform default.
        ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
        chunks = [names[s : s + _CHUNK] for s in range(0, len(names), _CHUNK)]
        pool = ProcessPoolExecutor(min(workers, len(chunks)), mp_context=ctx, initializer=_init_worker, initargs=tree.spec())
        try:
            start = 0
            for arr in pool.map(_decode_chunk, chunks, [size] * len(chunks), [first] * len(chunks)):
                out[start : start + len(arr)] = arr
                start += len(arr)
                bar.update(len(arr))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return out
