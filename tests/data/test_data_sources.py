"""Each official layout, as a folder and as a zip, against values the tests computed themselves."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from .builders import CIFAR_NAMES, make_cifar, make_imagefolder, zip_folder
from selectivity.data import DatasetError, describe_source, load_split


def as_np(t: torch.Tensor) -> np.ndarray:
    return t.numpy()


# ------------------------------------------------------------------ CIFAR-10 pickles


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_pickles_round_trip(tmp_path, protocol):
    folder, expected = make_cifar(tmp_path / "src", protocol=protocol)
    for split in ("train", "test"):
        s = load_split(folder, split, cache_dir=tmp_path / "cache", progress=False)
        images, labels = expected[split]
        assert s.images.dtype == torch.uint8 and s.images.is_contiguous()
        assert s.images.shape == (len(labels), 3, 32, 32)
        np.testing.assert_array_equal(as_np(s.images), images)
        np.testing.assert_array_equal(as_np(s.labels), labels)
        assert s.labels.dtype == torch.int64
        assert s.classes == CIFAR_NAMES and s.num_classes == 3
        assert s.layout == "cifar10-python" and s.split == split


def test_cifar_channel_planes_are_row_major(tmp_path):
    """b'data' rows are 1024 R values, then 1024 G, then 1024 B, each plane row-major."""
    folder, expected = make_cifar(tmp_path / "src")
    s = load_split(folder, "test", cache_dir=tmp_path / "cache", progress=False)
    flat = expected["test"][0].reshape(-1, 3072)
    assert s.images[0, 1, 2, 5].item() == flat[0, 1024 + 2 * 32 + 5]
    assert s.images[1, 2, 31, 0].item() == flat[1, 2048 + 31 * 32]


def test_cifar_parent_folder_and_zip(tmp_path):
    """The folder that holds cifar-10-batches-py/, and a zip of it, work as well."""
    folder, expected = make_cifar(tmp_path / "src")
    z = zip_folder(folder, tmp_path / "cifar.zip", wrap="cifar-10-batches-py")
    for source in (folder.parent, z):
        s = load_split(source, "train", cache_dir=tmp_path / "cache", progress=False)
        np.testing.assert_array_equal(as_np(s.images), expected["train"][0])


def test_cifar_missing_batch(tmp_path):
    folder, _ = make_cifar(tmp_path / "src")
    (folder / "data_batch_3").unlink()
    test = load_split(folder, "test", cache_dir=tmp_path / "c", progress=False, stats_from="test")
    assert test.images.shape[0] == 4
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_split(folder, "train", cache_dir=tmp_path / "c", progress=False)


def test_cifar_bad_data_shape(tmp_path):
    import pickle

    folder, _ = make_cifar(tmp_path / "src")
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DatasetError, match=r"test_batch.*\(N, 3072\)"):
        load_split(folder, "test", cache_dir=tmp_path / "c", progress=False)


# ------------------------------------------------------------------ Tiny ImageNet


def reference_rgb(data: bytes) -> np.ndarray:
    """PIL's own decode, converted to RGB, as (3, H, W)."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).transpose(2, 0, 1)


@pytest.mark.parametrize("as_zip", [False, True])
def test_tiny_imagenet(tmp_path, tiny, as_zip):
    folder, files = tiny
    source = zip_folder(folder, tmp_path / "tiny.zip", wrap="tiny-imagenet-200") if as_zip else folder
    info = describe_source(source)
    assert info.layout == "tiny-imagenet" and info.splits == ("train", "test")

    train = load_split(source, "train", cache_dir=tmp_path / "cache", progress=False)
    assert train.class_ids == ["n01000001", "n02000002", "n03000003"]  # sorted wnids
    assert train.classes == ["goldfish", "tabby", "school bus"]  # first name in words.txt
    assert train.images.shape == (6, 3, 64, 64)
    want = [f"train/{w}/images/{w}_{i}.JPEG" for w in train.class_ids for i in range(2)]
    np.testing.assert_array_equal(as_np(train.images), np.stack([reference_rgb(files[f]) for f in want]))
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2]

    test = load_split(source, "test", cache_dir=tmp_path / "cache", progress=False)  # the official val split
    assert test.labels.tolist() == [2, 0, 1, 0]  # from val_annotations.txt, in file order
    want = [f"val/images/val_{i}.JPEG" for i in range(4)]
    np.testing.assert_array_equal(as_np(test.images), np.stack([reference_rgb(files[f]) for f in want]))


def test_tiny_greyscale_becomes_rgb(tiny, cache):
    folder, files = tiny
    test = load_split(folder, "test", cache_dir=cache, progress=False)
    grey = np.asarray(Image.open(io.BytesIO(files["val/images/val_2.JPEG"])))
    assert grey.ndim == 2  # the file really is single-channel
    for c in range(3):
        np.testing.assert_array_equal(as_np(test.images[2, c]), grey)


def test_tiny_unknown_wnid_in_annotations(tiny, cache):
    folder, _ = tiny
    ann = folder / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text() + "val_0.JPEG\tn04444444\t0\t0\t1\t1\n")
    with pytest.raises(DatasetError, match=r"val_annotations.txt line 5"):
        load_split(folder, "test", cache_dir=cache, progress=False)


# ------------------------------------------------------------------ ImageFolder


@pytest.mark.parametrize("kind", ["folder", "zip", "wrapped zip"])
def test_imagefolder_round_trip(tmp_path, imagefolder, kind):
    folder, expected, classes = imagefolder
    source = {
        "folder": folder,
        "zip": zip_folder(folder, tmp_path / "plain.zip"),
        "wrapped zip": zip_folder(folder, tmp_path / "wrapped.zip", wrap="cifar10"),
    }[kind]
    for split in ("train", "test"):
        s = load_split(source, split, cache_dir=tmp_path / "cache", progress=False)
        images, labels, _ = expected[split]
        np.testing.assert_array_equal(as_np(s.images), images)  # PNG: exact pixels
        np.testing.assert_array_equal(as_np(s.labels), labels)
        assert s.classes == classes == s.class_ids  # sorted union of both splits' class folders
        assert s.layout == "imagefolder"


def test_imagefolder_val_is_test(tmp_path):
    folder, expected, _ = make_imagefolder(tmp_path / "src", test_dir="val")
    s = load_split(folder, "test", cache_dir=tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(as_np(s.images), expected["test"][0])


def test_imagefolder_grey_and_rgba_become_rgb(tmp_path):
    from .builders import png_bytes, write_files

    grey = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    rgba = np.random.default_rng(1).integers(0, 256, (4, 4, 4), dtype=np.uint8)
    folder = write_files(tmp_path / "f", {"train/a/grey.png": png_bytes(grey), "train/b/rgba.png": png_bytes(rgba)})
    s = load_split(folder, "train", cache_dir=tmp_path / "c", progress=False)
    np.testing.assert_array_equal(as_np(s.images[0]), np.stack([grey] * 3))
    np.testing.assert_array_equal(as_np(s.images[1]), rgba[..., :3].transpose(2, 0, 1))


def test_demo_name_resolves_to_bundled_zip():
    info = describe_source("demo")
    assert info.layout == "imagefolder" and info.splits == ("train", "test")
    assert info.name == "cifar10-demo" and info.path.endswith("selectivity/data/demo/cifar10-demo.zip")
    with zipfile.ZipFile(info.path) as z:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
