"""Tests of the released-file loaders on tiny fake CIFAR-10-C / Tiny-ImageNet-C folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from selectivity.analysis.corruptions import data as corruption_data
from selectivity.analysis.corruptions.data import load_cifar10c, load_tinyimagenet_c

M = 4  # images per severity in the fake CIFAR-10-C files


@pytest.fixture
def cifar_root(tmp_path):
    """``gaussian_noise.npy``: pixel value = 10 * severity + index in block; labels 0..M-1 tiled."""
    images = np.zeros((5 * M, 32, 32, 3), dtype=np.uint8)
    for s in range(5):
        for i in range(M):
            images[s * M + i] = 10 * (s + 1) + i
    np.save(tmp_path / "gaussian_noise.npy", images)
    np.save(tmp_path / "labels.npy", np.tile(np.arange(M, dtype=np.uint8), 5))
    return tmp_path


def test_cifar10c_reads_the_severity_block(cifar_root):
    images, labels = load_cifar10c(cifar_root, "gaussian_noise", 3)
    assert images.shape == (M, 3, 32, 32) and images.dtype == torch.float32
    expected = (30 + torch.arange(M)).float() / 255
    torch.testing.assert_close(images[:, 1, 5, 7], expected)
    assert labels.dtype == torch.int64 and labels.tolist() == list(range(M))


def test_cifar10c_uint8_and_memory_map(cifar_root, monkeypatch):
    calls = []
    real_load = np.load
    monkeypatch.setattr(corruption_data.np, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    images, _ = load_cifar10c(cifar_root, "gaussian_noise", 5, dtype=torch.uint8)
    assert images.dtype == torch.uint8 and images[:, :, 0, 0].tolist() == [[50 + i] * 3 for i in range(M)]
    assert calls and all(k == {"mmap_mode": "r", "allow_pickle": False} for k in calls)


def test_cifar10c_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"fog\.npy.*labels\.npy"):
        load_cifar10c(tmp_path, "fog", 1)


def test_cifar10c_rejects_bad_files(cifar_root):
    np.save(cifar_root / "fog.npy", np.zeros((5 * M, 32, 32, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="fog.npy: expected uint8"):
        load_cifar10c(cifar_root, "fog", 1)
    np.save(cifar_root / "snow.npy", np.zeros((7, 32, 32, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="snow.npy"):
        load_cifar10c(cifar_root, "snow", 1)
    np.save(cifar_root / "frost.npy", np.array([{"a": 1}] * 5, dtype=object))
    with pytest.raises(ValueError):  # pickled objects are refused (allow_pickle=False)
        load_cifar10c(cifar_root, "frost", 1)


@pytest.mark.parametrize("name, severity", [("blur", 1), ("fog", 0), ("fog", 6), ("fog", 1.0)])
def test_loaders_check_name_and_severity(cifar_root, name, severity):
    with pytest.raises(ValueError, match="name|severity"):
        load_cifar10c(cifar_root, name, severity)
    with pytest.raises(ValueError, match="name|severity"):
        load_tinyimagenet_c(cifar_root, name, severity)


@pytest.fixture
def tiny_root(tmp_path):
    """``Tiny-ImageNet-C/fog/2/<wnid>/`` for two wnids, two 64x64 JPEGs each (one greyscale)."""
    root = tmp_path / "Tiny-ImageNet-C"
    for k, wnid in enumerate(("n02", "n01")):
        folder = root / "fog" / "2" / wnid
        folder.mkdir(parents=True)
        Image.new("RGB", (64, 64), (200, 10 * k, 0)).save(folder / "b.JPEG", quality=95)
        Image.new("L", (64, 64), 100 + k).save(folder / "a.JPEG", quality=95)
    return root


def test_tinyimagenet_c_labels_from_sorted_wnids(tiny_root):
    images, labels = load_tinyimagenet_c(tiny_root, "fog", 2)
    assert images.shape == (4, 3, 64, 64) and images.dtype == torch.float32
    assert labels.tolist() == [0, 0, 1, 1]  # n01 first; a.JPEG before b.JPEG
    assert images[0, :, 32, 32].mul(255).round().tolist() == [101.0] * 3  # greyscale became RGB
    assert images[1, 0, 32, 32].mul(255).round().item() == pytest.approx(200, abs=2)


def test_tinyimagenet_c_follows_given_classes(tiny_root):
    images, labels = load_tinyimagenet_c(tiny_root, "fog", 2, classes=["n02", "n01"], dtype=torch.uint8)
    assert images.dtype == torch.uint8 and labels.tolist() == [0, 0, 1, 1]
    assert images[0, 0, 32, 32].item() == 100  # n02's greyscale image comes first now


def test_tinyimagenet_c_missing_and_extra_folders(tiny_root):
    with pytest.raises(FileNotFoundError, match="n03"):
        load_tinyimagenet_c(tiny_root, "fog", 2, classes=["n01", "n02", "n03"])
    with pytest.raises(ValueError, match=r"not in classes, e\.g\. \['n02'\]"):
        load_tinyimagenet_c(tiny_root, "fog", 2, classes=["n01"])
    with pytest.raises(FileNotFoundError, match=r"fog/3"):
        load_tinyimagenet_c(tiny_root, "fog", 3)
    (tiny_root / "fog" / "2" / "n04").mkdir()
    with pytest.raises(ValueError, match="n04: no JPEG images"):
        load_tinyimagenet_c(tiny_root, "fog", 2)
