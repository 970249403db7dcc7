"""tools/make_demo_data.py on a small synthetic source zip."""

from __future__ import annotations

import hashlib
import importlib.util
import zipfile
from pathlib import Path

import numpy as np
import torch

from selectivity.data import load_split

from .builders import jpeg_bytes

TOOL = Path(__file__).parents[2] / "tools" / "make_demo_data.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("make_demo_data", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_cifar_zip(path: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    members = {}
    for split, n in (("train", 12), ("test", 6)):
        for cls in ("cat", "dog", "frog"):
            for i in range(n):
                members[f"cifar10/{split}/{cls}/{i:04d}.jpg"] = jpeg_bytes(rng.integers(0, 256, (32, 32, 3), np.uint8))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return members


def test_make_demo_data(tmp_path, capsys):
    tool = load_tool()
    members = fake_cifar_zip(tmp_path / "src.zip")
    args = ["--source", str(tmp_path / "src.zip"), "--train-per-class", "5", "--test-per-class", "2"]
    assert tool.main(args + ["--out", str(tmp_path / "a.zip")]) == 0
    out = capsys.readouterr().out
    digest = hashlib.sha256((tmp_path / "a.zip").read_bytes()).hexdigest()
    assert digest in out and str((tmp_path / "a.zip").stat().st_size) in out
    tool.main(args + ["--out", str(tmp_path / "b.zip")])
    assert (tmp_path / "b.zip").read_bytes() == (tmp_path / "a.zip").read_bytes()  # deterministic
    tool.main(args + ["--out", str(tmp_path / "c.zip"), "--seed", "1"])
    with zipfile.ZipFile(tmp_path / "a.zip") as a, zipfile.ZipFile(tmp_path / "c.zip") as c:
        assert a.namelist() != c.namelist()  # the seed picks the images
        for info in a.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            assert a.read(info) == members["cifar10/" + info.filename]  # bytes copied unchanged
    for split, k in (("train", 5), ("test", 2)):
        s = load_split(tmp_path / "a.zip", split, cache_dir=tmp_path / "cache", progress=False)
        assert s.classes == ["cat", "dog", "frog"]
        assert torch.bincount(s.labels).tolist() == [k] * 3
