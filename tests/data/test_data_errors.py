"""Bad input: every error is a DatasetError whose one-line message names the bad path."""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from selectivity.data import DatasetError, RestrictedUnpickler, load_split
from selectivity.data.decode import decode_images
from selectivity.data.files import open_tree

from .builders import make_cifar, make_imagefolder, png_bytes, write_files, zip_folder


class _Evil:
    """Unpickling this runs os.system(command) under plain pickle.load."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_path(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_split(tmp_path / "nope", "train", cache_dir=tmp_path / "c")
    msg = _one_line(e)
    assert str(tmp_path / "nope") in msg and "does not exist" in msg
    assert "cifar-10-batches-py" in msg and "tiny-imagenet-200" in msg and "ImageFolder" in msg


@pytest.mark.parametrize("kind", ["empty folder", "folder of text", "zip of text", "not a zip", "tarball"])
def test_unknown_layout(tmp_path, kind):
    if kind == "empty folder":
        path = tmp_path / "empty"
        path.mkdir()
    elif kind == "folder of text":
        path = write_files(tmp_path / "texts", {"train/readme.txt": b"hi", "a/b/c.csv": b"1,2"})
    elif kind == "zip of text":
        path = zip_folder(write_files(tmp_path / "t", {"train/cat/x.txt": b"hi"}), tmp_path / "t.zip")
    elif kind == "not a zip":
        path = tmp_path / "data.bin"
        path.write_bytes(b"\x00" * 100)
    else:
        path = tmp_path / "cifar-10-python.tar.gz"
        path.write_bytes(b"\x1f\x8b" + b"\x00" * 100)
    with pytest.raises(DatasetError) as e:
        load_split(path, "train", cache_dir=tmp_path / "c")
    msg = _one_line(e)
    assert str(path) in msg
    if kind == "tarball":
        assert "extract it first" in msg
    elif kind != "not a zip":
        assert "no known layout" in msg and "expected" in msg


@pytest.mark.parametrize("as_zip", [False, True])
def test_undecodable_image_is_named(tmp_path, as_zip):
    folder, _, _ = make_imagefolder(tmp_path / "src")
    (folder / "train" / "dog" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    source = zip_folder(folder, tmp_path / "d.zip", wrap="top") if as_zip else folder
    with pytest.raises(DatasetError) as e:
        load_split(source, "train", cache_dir=tmp_path / "c", progress=False)
    msg = _one_line(e)
    assert "cannot decode image" in msg
    assert (f"{source}:top/train/dog/001.png" if as_zip else f"{folder}/train/dog/001.png") in msg


def test_truncated_jpeg_is_named(tmp_path):
    from .builders import jpeg_bytes

    good = jpeg_bytes(np.full((16, 16, 3), 128, np.uint8))
    folder = write_files(tmp_path / "f", {"train/a/0.jpg": good, "train/a/1.jpg": good[: len(good) // 2]})
    with pytest.raises(DatasetError, match=r"cannot decode image .*train/a/1\.jpg"):
        load_split(folder, "train", cache_dir=tmp_path / "c", progress=False)


def test_size_mismatch_is_named(tmp_path):
    folder, _, _ = make_imagefolder(tmp_path / "src")  # 8x8 images
    (folder / "train" / "zebra" / "000.png").write_bytes(png_bytes(np.zeros((9, 8, 3), np.uint8)))
    with pytest.raises(DatasetError) as e:
        load_split(folder, "train", cache_dir=tmp_path / "c", progress=False)
    msg = _one_line(e)
    assert "train/zebra/000.png is 8x9" in msg and "8x8" in msg


def test_bad_image_found_by_pool_worker(tmp_path):
    """The process-pool path reports the same error, naming the file, as the in-process path."""
    files = {f"train/c/{i:03d}.png": png_bytes(np.full((4, 4, 3), i, np.uint8)) for i in range(40)}
    files["train/c/033.png"] = b"not a png"
    tree = open_tree(write_files(tmp_path / "f", files))
    names = [n for n in tree.names if n.endswith(".png")]
    with pytest.raises(DatasetError, match=r"train/c/033\.png"):
        decode_images(tree, names, progress=False, workers=2)


def test_pool_and_serial_decode_agree(tmp_path):
    rng = np.random.default_rng(0)
    files = {f"train/c/{i:04d}.png": png_bytes(rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)) for i in range(1100)}
    folder = write_files(tmp_path / "f", files)
    z = zip_folder(folder, tmp_path / "f.zip")
    for source in (folder, z):
        tree = open_tree(source)
        serial = decode_images(tree, tree.names, progress=False, workers=1)
        pooled = decode_images(tree, tree.names, progress=False, workers=2)  # 2 chunks of <= 1024
        np.testing.assert_array_equal(serial, pooled)
        assert serial.shape == (1100, 3, 5, 6)


def test_missing_and_unknown_split(tmp_path):
    folder = write_files(tmp_path / "f", {"train/a/0.png": png_bytes(np.zeros((2, 2, 3), np.uint8))})
    with pytest.raises(DatasetError, match=r"has no 'test' split; it has \['train'\]"):
        load_split(folder, "test", cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(DatasetError, match="must be one of"):
        load_split(folder, "val", cache_dir=tmp_path / "c", progress=False)


# ------------------------------------------------------------------ restricted unpickler


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    folder, _ = make_cifar(tmp_path / "src")
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": _Evil(f"touch {marker}"), b"labels": [0]}, f, protocol=2)
    pickle.loads((folder / "test_batch").read_bytes())  # plain pickle runs the payload ...
    assert marker.exists()
    marker.unlink()
    with pytest.raises(DatasetError) as e:
        load_split(folder, "test", cache_dir=tmp_path / "c", progress=False, stats_from="test")
    msg = _one_line(e)
    assert "refusing to unpickle global" in msg and f"{os.system.__module__}.system" in msg
    assert str(folder / "test_batch") in msg
    assert not marker.exists()


@pytest.mark.parametrize("module,name", [("builtins", "eval"), ("subprocess", "Popen"),
                                         ("numpy", "load"), ("no_such_module_xyz", "anything")])
def test_unpickler_refuses_other_globals(module, name):
    payload = f"c{module}\n{name}\n.".encode()  # protocol 0 GLOBAL opcode, then STOP
    with pytest.raises(DatasetError, match=rf"refusing to unpickle global {module}\.{name}"):
        RestrictedUnpickler(io.BytesIO(payload), encoding="bytes").load()


def test_unpickler_refuses_non_latin1_codec():
    payload = pickle.dumps(b"abc", protocol=2).replace(b"latin1", b"rot_13")
    with pytest.raises(pickle.UnpicklingError, match="rot_13"):
        RestrictedUnpickler(io.BytesIO(payload), encoding="bytes").load()


@pytest.mark.parametrize("protocol", range(6))
def test_unpickler_rebuilds_arrays_at_every_protocol(protocol):
    obj = {b"data": np.arange(24, dtype=np.uint8).reshape(2, 12), b"labels": [1, 2], b"n": np.int64(7), b"s": b"x"}
    out = RestrictedUnpickler(io.BytesIO(pickle.dumps(obj, protocol=protocol)), encoding="bytes").load()
    np.testing.assert_array_equal(out[b"data"], obj[b"data"])
    assert out[b"labels"] == [1, 2] and out[b"n"] == 7 and out[b"s"] == b"x"


def test_zip_with_bad_member(tmp_path):
    """A zip member whose bytes fail the CRC check is named in the error."""
    z = tmp_path / "b.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("train/a/0.png", png_bytes(np.zeros((2, 2, 3), np.uint8)))
    raw = bytearray(z.read_bytes())
    raw[40] ^= 0xFF  # inside the stored member's data
    z.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=r"b\.zip:train/a/0\.png"):
        load_split(z, "train", cache_dir=tmp_path / "c", progress=False)
