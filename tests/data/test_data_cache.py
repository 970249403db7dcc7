"""The cache: hit without decoding, rebuild on a changed source or a corrupt file, manifest contents."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import safetensors.torch
import torch

import selectivity.data.sources as sources
from selectivity.data import DatasetError, channel_stats, default_cache_dir, load_split
from selectivity.data.cache import CACHE_FORMAT

from .builders import make_imagefolder, png_bytes, write_files, zip_folder


@pytest.fixture
def count_decodes(monkeypatch):
    """Wrap sources.decode_split and count (split) calls."""
    calls: list[str] = []
    real = sources.decode_split

    def counting(src, split, progress=True):
        calls.append(split)
        return real(src, split, progress)

    monkeypatch.setattr(sources, "decode_split", counting)
    return calls


def reference_stats(images: torch.Tensor):
    x = images.double() / 255
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3), unbiased=False).tolist()


def entry_files(cache, split):
    (entry,) = [p for p in cache.iterdir() if p.is_dir()]
    return entry / f"{split}.safetensors", entry / f"{split}.json"


def test_second_load_does_not_decode(imagefolder, cache, monkeypatch, count_decodes):
    folder, expected, _ = imagefolder
    first = load_split(folder, "train", cache_dir=cache, progress=False)
    assert count_decodes == ["train"]

    def fail(*a, **k):
        raise AssertionError("decoded although the cache is valid")

    monkeypatch.setattr(sources, "decode_split", fail)
    second = load_split(folder, "train", cache_dir=cache, progress=False)
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    np.testing.assert_array_equal(second.images.numpy(), expected["train"][0])
    assert second.images.is_contiguous() and second.classes == first.classes
    assert (second.mean, second.std) == (first.mean, first.std)


def test_zip_cache_hit_does_not_open_the_zip(tmp_path, imagefolder, cache, monkeypatch):
    """A hit on a zip needs the file's sha256 only, not its directory of members."""
    z = zip_folder(imagefolder[0], tmp_path / "d.zip")
    first = load_split(z, "test", cache_dir=cache, progress=False)  # caches train (statistics) and test

    def fail(path):
        raise AssertionError(f"opened {path} although the cache is valid")

    monkeypatch.setattr(sources, "open_tree", fail)
    second = load_split(z, "test", cache_dir=cache, progress=False)
    assert torch.equal(first.images, second.images) and second.mean == first.mean
    assert (second.layout, second.stats_from) == ("imagefolder", "train")


def test_manifest_contents(imagefolder, cache):
    folder, expected, classes = imagefolder
    s = load_split(folder, "test", cache_dir=cache, progress=False, stats_from="test")
    data, manifest_path = entry_files(cache, "test")
    m = json.loads(manifest_path.read_text())
    assert m["format"] == CACHE_FORMAT and m["source"] == str(folder.resolve())
    assert (m["layout"], m["split"], m["n"], m["height"], m["width"]) == ("imagefolder", "test", 3, 8, 8)
    assert m["classes"] == classes
    mean, std = reference_stats(torch.from_numpy(expected["test"][0]))
    np.testing.assert_allclose(m["mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(m["std"], std, rtol=1e-12)
    assert m["source_fingerprint"]["method"] == "sha256(paths+sizes+mtimes+ctimes)"
    tensors = safetensors.torch.load_file(data)  # a plain safetensors file, no pickle
    assert torch.equal(tensors["images"], s.images) and tensors["labels"].dtype == torch.int64
    assert not [p for p in data.parent.iterdir() if p.suffix == ".tmp"]  # temp files were moved into place


def test_zip_fingerprint_is_file_sha256(tmp_path, imagefolder, cache):
    import hashlib

    z = zip_folder(imagefolder[0], tmp_path / "d.zip")
    load_split(z, "train", cache_dir=cache, progress=False)
    m = json.loads(entry_files(cache, "train")[1].read_text())
    assert m["source_fingerprint"] == {"method": "sha256(zip file)", "sha256": hashlib.sha256(z.read_bytes()).hexdigest()}


def test_stats_come_from_train(imagefolder, cache, count_decodes):
    folder, expected, _ = imagefolder
    test = load_split(folder, "test", cache_dir=cache, progress=False)
    assert sorted(count_decodes) == ["test", "train"]  # train decoded (and cached) for its statistics
    mean, std = reference_stats(torch.from_numpy(expected["train"][0]))
    np.testing.assert_allclose(test.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(test.std, std, rtol=1e-12)
    assert test.stats_from == "train"
    own = load_split(folder, "test", cache_dir=cache, progress=False, stats_from="test")
    np.testing.assert_allclose(own.mean, reference_stats(torch.from_numpy(expected["test"][0]))[0], rtol=1e-12)
    load_split(folder, "train", cache_dir=cache, progress=False)
    assert sorted(count_decodes) == ["test", "train"]  # nothing decoded twice


def test_stats_fall_back_without_train(tmp_path, cache):
    px = np.random.default_rng(0).integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
    folder = write_files(tmp_path / "f", {f"test/a/{i}.png": png_bytes(p) for i, p in enumerate(px)})
    s = load_split(folder, "test", cache_dir=cache, progress=False)
    assert s.stats_from == "test"
    np.testing.assert_allclose(s.mean, reference_stats(torch.from_numpy(px.transpose(0, 3, 1, 2)))[0], rtol=1e-12)


def test_channel_stats_exact():
    images = np.random.default_rng(3).integers(0, 256, (7, 3, 5, 4), dtype=np.uint8)
    mean, std = channel_stats(images)
    ref_mean, ref_std = reference_stats(torch.from_numpy(images))
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12)
    np.testing.assert_allclose(std, ref_std, rtol=1e-12)


def test_changed_folder_rebuilds(imagefolder, cache, count_decodes):
    folder, expected, _ = imagefolder
    load_split(folder, "train", cache_dir=cache, progress=False)
    (folder / "train" / "cat" / "000.png").write_bytes(png_bytes(np.full((8, 8, 3), 7, np.uint8)))
    s = load_split(folder, "train", cache_dir=cache, progress=False)
    assert count_decodes == ["train", "train"]
    np.testing.assert_array_equal(s.images[0].numpy(), np.full((3, 8, 8), 7, np.uint8))
    np.testing.assert_array_equal(s.images[1:].numpy(), expected["train"][0][1:])


def test_edit_that_keeps_size_and_mtime_rebuilds(tmp_path, cache, count_decodes):
    """BMP files have a fixed size, so only the ctime tells the edit apart."""
    from PIL import Image

    rng = np.random.default_rng(0)
    path = tmp_path / "f" / "train" / "a" / "0.bmp"
    path.parent.mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(path)
    load_split(tmp_path / "f", "train", cache_dir=cache, progress=False)
    before = os.stat(path)
    new = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    Image.fromarray(new).save(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # hide the edit from the mtime
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    s = load_split(tmp_path / "f", "train", cache_dir=cache, progress=False)
    assert count_decodes == ["train", "train"]
    np.testing.assert_array_equal(s.images[0].numpy(), new.transpose(2, 0, 1))


def test_changed_zip_rebuilds(tmp_path, cache, count_decodes):
    folder, expected, _ = make_imagefolder(tmp_path / "a", seed=1)
    z = zip_folder(folder, tmp_path / "d.zip")
    first = load_split(z, "train", cache_dir=cache, progress=False)
    folder2, expected2, _ = make_imagefolder(tmp_path / "b", seed=2)
    zip_folder(folder2, z)  # same path, new contents
    second = load_split(z, "train", cache_dir=cache, progress=False)
    assert count_decodes == ["train", "train"]
    np.testing.assert_array_equal(first.images.numpy(), expected["train"][0])
    np.testing.assert_array_equal(second.images.numpy(), expected2["train"][0])


@pytest.mark.parametrize(
    "damage", ["flip a byte", "truncate", "delete", "garbage manifest", "manifest of other split", "manifest lacks keys"]
)
def test_corrupt_cache_is_rebuilt(imagefolder, cache, count_decodes, damage):
    folder, expected, _ = imagefolder
    load_split(folder, "train", cache_dir=cache, progress=False)
    data, manifest = entry_files(cache, "train")
    if damage == "flip a byte":
        raw = bytearray(data.read_bytes())
        raw[-5] ^= 0x01  # a pixel or label byte: the header still parses
        data.write_bytes(bytes(raw))
    elif damage == "truncate":
        data.write_bytes(data.read_bytes()[:50])
    elif damage == "delete":
        data.unlink()
    elif damage == "garbage manifest":
        manifest.write_text("{not json")
    elif damage == "manifest of other split":
        m = json.loads(manifest.read_text())
        manifest.write_text(json.dumps(m | {"split": "test"}))
    else:
        m = json.loads(manifest.read_text())
        del m["mean"]
        manifest.write_text(json.dumps(m))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = load_split(folder, "train", cache_dir=cache, progress=False)
    assert count_decodes == ["train", "train"]
    np.testing.assert_array_equal(s.images.numpy(), expected["train"][0])
    np.testing.assert_array_equal(s.labels.numpy(), expected["train"][1])
    noisy = damage in ("flip a byte", "truncate", "garbage manifest", "manifest lacks keys")
    named = data if damage in ("flip a byte", "truncate") else manifest
    assert any(str(named) in str(w.message) for w in caught) == noisy
    load_split(folder, "train", cache_dir=cache, progress=False)
    assert count_decodes == ["train", "train"]  # the rebuilt entry is valid again


def test_cache_dir_from_environment(imagefolder, tmp_path, monkeypatch):
    folder = imagefolder[0]
    monkeypatch.setenv("SELECTIVITY_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    load_split(folder, "train", progress=False)
    assert list((tmp_path / "env").glob("*/train.safetensors"))
    load_split(folder, "train", cache_dir=tmp_path / "explicit", progress=False)  # explicit wins
    assert list((tmp_path / "explicit").glob("*/train.safetensors"))
    monkeypatch.delenv("SELECTIVITY_CACHE")
    assert default_cache_dir() == default_cache_dir().home() / ".cache" / "selectivity"


def test_same_name_sources_do_not_collide(tmp_path, cache):
    a, ea, _ = make_imagefolder(tmp_path / "x", seed=1)  # both folders are called "folder"
    b, eb, _ = make_imagefolder(tmp_path / "y", seed=2)
    sa = load_split(a, "train", cache_dir=cache, progress=False)
    sb = load_split(b, "train", cache_dir=cache, progress=False)
    np.testing.assert_array_equal(sa.images.numpy(), ea["train"][0])
    np.testing.assert_array_equal(sb.images.numpy(), eb["train"][0])
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2


def test_unwritable_cache_dir(imagefolder, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should go")
    with pytest.raises(DatasetError, match="cannot write the dataset cache"):
        load_split(imagefolder[0], "train", cache_dir=blocker, progress=False)
