"""Tiny datasets in each official layout, written by the tests themselves.

Each builder returns the path of what it wrote plus the exact arrays it expects back, so the
tests compare the loader against values computed independently of ``selectivity.data``.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

SHARED_DATA = Path(__file__).parents[2].parent / "shared" / "data"


def png_bytes(pixels: np.ndarray) -> bytes:
    """(H, W, 3) or (H, W) uint8 -> lossless PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def zip_folder(folder: Path, out: Path, wrap: str | None = None) -> Path:
    """Zip every file below ``folder``; ``wrap`` puts them under one top-level folder."""
    with zipfile.ZipFile(out, "w") as z:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                rel = f.relative_to(folder).as_posix()
                z.write(f, f"{wrap}/{rel}" if wrap else rel)
    return out


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


# ------------------------------------------------------------------ CIFAR-10 pickles

CIFAR_NAMES = ["airplane", "automobile", "bird"]


def make_cifar(root: Path, protocol: int = 2, per_batch: int = 3, n_test: int = 4, seed: int = 0):
    """Official ``cifar-10-batches-py/`` with random pixels; returns (folder, expected dict)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    expected = {}
    batches = {f"data_batch_{i}": per_batch for i in range(1, 6)} | {"test_batch": n_test}
    for name, n in batches.items():
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, len(CIFAR_NAMES), n)]
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=protocol)
        expected[name] = (data, labels)
    meta = {b"num_cases_per_batch": per_batch, b"label_names": [s.encode() for s in CIFAR_NAMES], b"num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=protocol)
    (folder / "readme.html").write_text("<html></html>")

    def split(s):
        keys = [f"data_batch_{i}" for i in range(1, 6)] if s == "train" else ["test_batch"]
        images = np.concatenate([expected[k][0] for k in keys]).reshape(-1, 3, 32, 32)
        labels = np.concatenate([expected[k][1] for k in keys]).astype(np.int64)
        return images, labels

    return folder, {"train": split("train"), "test": split("test")}


# ------------------------------------------------------------------ Tiny ImageNet

TINY_WNIDS = ["n02000002", "n01000001", "n03000003"]  # deliberately unsorted, as in the real file
TINY_WORDS = {"n01000001": "goldfish, Carassius auratus", "n02000002": "tabby, tabby cat",
              "n03000003": "school bus", "n09999999": "unused, extra line"}


def make_tiny(root: Path, seed: int = 0) -> tuple[Path, dict[str, bytes]]:
    """Official ``tiny-imagenet-200/`` layout (64x64 JPEGs, two of them greyscale)."""
    rng = np.random.default_rng(seed)
    files: dict[str, bytes] = {
        "wnids.txt": ("\n".join(TINY_WNIDS) + "\n").encode(),
        "words.txt": "".join(f"{k}\t{v}\n" for k, v in TINY_WORDS.items()).encode(),
    }
    for w in TINY_WNIDS:
        files[f"train/{w}/{w}_boxes.txt"] = b"x\t0\t0\t10\t10\n"
        for i in range(2):
            grey = w == "n02000002" and i == 1
            shape = (64, 64) if grey else (64, 64, 3)
            files[f"train/{w}/images/{w}_{i}.JPEG"] = jpeg_bytes(rng.integers(0, 256, shape, dtype=np.uint8))
    ann = []
    for i, w in enumerate(["n03000003", "n01000001", "n02000002", "n01000001"]):
        shape = (64, 64) if i == 2 else (64, 64, 3)
        files[f"val/images/val_{i}.JPEG"] = jpeg_bytes(rng.integers(0, 256, shape, dtype=np.uint8))
        ann.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63\n")
    files["val/val_annotations.txt"] = "".join(ann).encode()
    files["test/images/test_0.JPEG"] = jpeg_bytes(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    return write_files(root / "tiny-imagenet-200", files), files


# ------------------------------------------------------------------ ImageFolder

def make_imagefolder(root: Path, seed: int = 0, size: int = 8, test_dir: str = "test"):
    """``train/<class>/*.png`` and ``<test_dir>/<class>/*.png`` with exact random pixels.

    Class ``zebra`` exists only in train, so labels must come from the union of both splits.
    Returns (folder, {split: (images (N,3,H,W), labels, files)}, classes).
    """
    rng = np.random.default_rng(seed)
    layout = {"train": {"cat": 3, "dog": 2, "zebra": 1}, test_dir: {"dog": 2, "cat": 1}}
    classes = ["cat", "dog", "zebra"]
    files: dict[str, bytes] = {}
    expected = {}
    for split, counts in layout.items():
        items = []
        for cls, n in counts.items():
            for i in range(n):
                px = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                rel = f"{split}/{cls}/{i:03d}.png"
                files[rel] = png_bytes(px)
                items.append((rel, px, classes.index(cls)))
        items.sort()  # the loader reads files in sorted path order
        expected["train" if split == "train" else "test"] = (
            np.stack([px.transpose(2, 0, 1) for _, px, _ in items]),
            np.array([lab for _, _, lab in items], dtype=np.int64),
            [rel for rel, _, _ in items],
        )
    files["train/cat/notes.txt"] = b"not an image"
    files["train/dog/.DS_Store"] = b"\0\0junk"
    return write_files(root / "folder", files), expected, classes


