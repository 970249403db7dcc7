"""Data that does not match: the classes of train and test, empty class folders, measure --data."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from selectivity.data import DatasetError, load_split

from .conftest import builders


def _folder(root, layout, seed=0):
    """An ImageFolder tree: ``{split: {class: n images}}`` of 8x8 PNGs; a class of 0 is an empty folder."""
    rng = np.random.default_rng(seed)
    files = {}
    for split, classes in layout.items():
        for cls, n in classes.items():
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                files[f"{split}/{cls}/{i}.png"] = builders.png_bytes(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    return builders.write_files(root, files)


def _train_args(data, out, cache):
    return ["train", "demo", "--data", data, "--out", out, "--no-progress",
            "--set", f"data.cache_dir={cache}", "train.epochs=1", "train.batch_size=6", "train.threads=1",
            "regularizer.warmup_epochs=0", "data.test_limit=null", "data.train_per_class=null"]


def test_train_and_test_classes_differ(tmp_path, cli, one_line):
    data = _folder(tmp_path / "abd", {"train": {"a": 3, "b": 3, "c": 3}, "test": {"a": 2, "b": 2, "d": 2}})
    code, _, err = cli(_train_args(data, tmp_path / "run", tmp_path / "cache"))
    line = one_line(err)
    assert code == 2 and str(data) in line and "test/ has class(es) d that train/ lacks (train/ has a, b, c)" in line
    assert not (tmp_path / "run" / "weights.safetensors").exists()


def test_a_test_split_with_fewer_classes_is_still_fine(tmp_path):
    data = _folder(tmp_path / "sub", {"train": {"a": 2, "b": 2, "c": 1}, "test": {"a": 1, "c": 1}})
    split = load_split(data, "test", cache_dir=tmp_path / "cache", progress=False)
    assert split.classes == ["a", "b", "c"] and split.labels.tolist() == [0, 2]


@pytest.mark.parametrize("split", ["train", "test"])
def test_an_empty_class_folder_is_named(tmp_path, split, cli, one_line):
    layout = {"train": {"a": 3, "b": 3}, "test": {"a": 2, "b": 2}}
    layout[split]["e"] = 0
    data = _folder(tmp_path / "empty", layout)
    code, _, err = cli(_train_args(data, tmp_path / "run", tmp_path / "cache"))
    assert code == 2 and f"class folder(s) {split}/e hold no image" in one_line(err) and str(data) in err


def test_an_empty_class_folder_in_a_zip_is_named(tmp_path):
    data = _folder(tmp_path / "src", {"train": {"a": 2, "b": 2}, "test": {"a": 1, "b": 1}})
    archive = builders.zip_folder(data, tmp_path / "set.zip")
    with zipfile.ZipFile(archive, "a") as z:
        z.writestr("train/zzz/", b"")  # a folder entry with nothing below it
    with pytest.raises(DatasetError, match="train/zzz hold no image"):
        load_split(archive, "train", cache_dir=tmp_path / "cache", progress=False)


def test_measure_on_data_with_another_class_count(tmp_path, cli, one_line):
    three = _folder(tmp_path / "three", {"train": {"a": 4, "b": 4, "c": 4}, "test": {"a": 2, "b": 2, "c": 2}})
    two = _folder(tmp_path / "two", {"train": {"a": 2, "b": 2}, "test": {"a": 2, "b": 2}}, seed=1)
    run = tmp_path / "run"
    code, _, err = cli(_train_args(three, run, tmp_path / "cache"))
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code, _, err = cli(["measure", run, "--data", two, "--no-progress"])
    line = one_line(err)
    assert code == 2 and f"{run} was trained on 3 classes but the data 'two' has 2" in line
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # finished work intact


def test_a_zip_bomb_is_refused_before_any_member_is_inflated(tmp_path, cli, one_line, monkeypatch):
    """A member of 64 MiB of zeros stored in ~64 KB (a 1000x ratio) is refused when the zip is opened, by
    its declared sizes: nothing is decoded, cached or trained, and the error is one line naming it."""
    data = _folder(tmp_path / "src", {"train": {"a": 2, "b": 2}, "test": {"a": 1, "b": 1}})
    archive = builders.zip_folder(data, tmp_path / "set.zip")
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("train/a/bomb.png", b"\0" * (64 * 2**20))
    inflated = []
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda self, name, pwd=None: inflated.append(name) or b"")
    code, _, err = cli(_train_args(archive, tmp_path / "run", tmp_path / "cache"))
    line = one_line(err)
    assert code == 2 and "member train/a/bomb.png inflates" in line and "decompression bomb" in line
    assert inflated == [] and not (tmp_path / "run").exists() and not any((tmp_path / "cache").rglob("*.safetensors"))


def test_a_member_larger_than_any_datasets_file_is_refused(tmp_path, monkeypatch):
    from selectivity.data import files

    data = _folder(tmp_path / "src", {"train": {"a": 2, "b": 2}, "test": {"a": 1, "b": 1}})
    archive = builders.zip_folder(data, tmp_path / "set.zip")
    monkeypatch.setattr(files, "MAX_MEMBER_BYTES", 100)  # the PNGs here are a few hundred bytes
    with pytest.raises(DatasetError, match=r"inflates to 0 MiB, more than the 0 MiB a dataset's file may take"):
        load_split(archive, "train", cache_dir=tmp_path / "cache", progress=False)
