"""Real data from ../shared/data (skipped when absent) and the bundled demo set."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from selectivity.data import demo_path, describe_source, load_split

from .builders import SHARED_DATA

CIFAR_ZIP = SHARED_DATA / "cifar10-jpeg.zip"
TINY_ZIP = SHARED_DATA / "tiny-imagenet-200-subset.zip"
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

needs_cifar = pytest.mark.skipif(not CIFAR_ZIP.is_file(), reason=f"real data not found at {CIFAR_ZIP}")
needs_tiny = pytest.mark.skipif(not TINY_ZIP.is_file(), reason=f"real data not found at {TINY_ZIP}")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("real-cache")


def pil_chw(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).transpose(2, 0, 1)


@needs_cifar
def test_cifar_jpeg_zip_test_split(cache):
    # stats_from="test": statistics from the split itself, so the 50k train images stay undecoded
    s = load_split(CIFAR_ZIP, "test", cache_dir=cache, progress=False, stats_from="test")
    assert s.images.shape == (10_000, 3, 32, 32) and s.images.dtype == torch.uint8
    assert s.classes == CIFAR_CLASSES and s.num_classes == 10
    assert torch.bincount(s.labels, minlength=10).tolist() == [1000] * 10
    with zipfile.ZipFile(CIFAR_ZIP) as z:
        members = sorted(n for n in z.namelist() if n.startswith("cifar10/test/"))
        for i in (0, 4321, 9999):  # images in sorted member order; label from the folder name
            assert s.labels[i].item() == CIFAR_CLASSES.index(members[i].split("/")[2])
            np.testing.assert_array_equal(s.images[i].numpy(), pil_chw(z.read(members[i])))
    assert all(0.35 < m < 0.55 for m in s.mean) and all(0.2 < v < 0.3 for v in s.std)


@needs_tiny
def test_tiny_imagenet_subset_test_split(cache):
    assert describe_source(TINY_ZIP).layout == "tiny-imagenet"
    s = load_split(TINY_ZIP, "test", cache_dir=cache, progress=False, stats_from="test")
    assert s.images.shape == (10_000, 3, 64, 64)
    assert s.num_classes == 200 and len(set(s.class_ids)) == 200 and s.class_ids == sorted(s.class_ids)
    assert torch.bincount(s.labels, minlength=200).tolist() == [50] * 200  # official val: 50 per class
    with zipfile.ZipFile(TINY_ZIP) as z:
        root = "tiny-imagenet-200/"
        lines = z.read(root + "val/val_annotations.txt").decode().splitlines()
        words = dict(line.split("\t", 1) for line in z.read(root + "words.txt").decode().splitlines())
        for i in range(0, 10_000, 97):
            fname, wnid = lines[i].split("\t")[:2]
            assert s.class_ids[s.labels[i]] == wnid
            assert s.classes[s.labels[i]] == words[wnid].split(",")[0].strip()
            np.testing.assert_array_equal(s.images[i].numpy(), pil_chw(z.read(root + "val/images/" + fname)))
        grey = []  # greyscale JPEGs (mode L): header only, no decode
        for i, line in enumerate(lines):
            data = z.read(root + "val/images/" + line.split("\t")[0])
            if Image.open(io.BytesIO(data)).mode == "L":
                grey.append((i, np.asarray(Image.open(io.BytesIO(data)))))
        assert grey, "the val split should hold greyscale JPEGs"
        for i, pixels in grey:
            for c in range(3):
                np.testing.assert_array_equal(s.images[i, c].numpy(), pixels)
    assert s.classes[s.class_ids.index("n01443537")] == "goldfish"


def test_demo_set(cache):
    size = demo_path().stat().st_size
    assert size < 8 * 2**20
    train = load_split("demo", "train", cache_dir=cache, progress=False)
    test = load_split("demo", "test", cache_dir=cache, progress=False)
    assert train.images.shape == (5000, 3, 32, 32) and test.images.shape == (1000, 3, 32, 32)
    assert train.classes == test.classes == CIFAR_CLASSES
    assert torch.bincount(train.labels, minlength=10).tolist() == [500] * 10
    assert torch.bincount(test.labels, minlength=10).tolist() == [100] * 10
    assert test.mean == train.mean and test.stats_from == "train"


@needs_cifar
def test_demo_bytes_are_copied_unchanged():
    with zipfile.ZipFile(demo_path()) as demo, zipfile.ZipFile(CIFAR_ZIP) as full:
        infos = demo.infolist()
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        for info in infos[::250]:
            assert demo.read(info) == full.read("cifar10/" + info.filename)
