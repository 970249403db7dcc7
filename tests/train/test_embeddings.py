"""MonoLoss with embeddings from a file or a frozen encoder (issue 17): the rows travel with the
images through loading, subsetting, shuffling, augmentation and data-parallel shards; bad files
are refused in one line before any training."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from selectivity.data import Augment, DeviceLoader, load_split
from selectivity.models import create_model
from selectivity.sweep.grid import run_id
from selectivity.config import ConfigError, config_to_dict, load_config
from selectivity.train.embeddings import encode_images, save_embeddings
from selectivity.train.stacked import train_stacked
from selectivity.data import take_per_class
from selectivity.train.trainer import load_data, train

EXACT = 1e-9
ENCODER = "tests.train.encoders:tiny_encoder"


def _tiny(cache_dir, *extra):
    """Two float64 epochs of the demo recipe on 200 images: MonoLoss with lambda 0.5 from the first step."""
    return [f"data.cache_dir={cache_dir}", "data.train_per_class=20", "data.test_limit=100", "train.epochs=2",
            "train.batch_size=50", "train.threads=1", "regularizer.warmup_epochs=0", "train.dtype=float64",
            "regularizer.kind=monoloss", "regularizer.lambda=0.5", *extra]


@pytest.fixture(scope="module")
def split(cache_dir):
    """The whole demo training split (5000 images), as data.source decodes it."""
    return load_split("demo", "train", cache_dir=cache_dir, progress=False)


def _file(path):
    return ["regularizer.embeddings=file", f"regularizer.embeddings_file={path}"]


def _relative_gap(a, b):
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    floats = [k for k in wa if wa[k].is_floating_point()]
    assert all(wa[k].dtype == torch.float64 for k in floats)
    return max(((wa[k] - wb[k]).norm() / wa[k].norm().clamp(min=1e-300)).item() for k in floats)


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# -- the whole path, checked against the label run -----------------------------------------------


def test_one_hot_rows_from_a_file_train_the_label_run_exactly_and_other_rows_train_another(tmp_path, cache_dir,
                                                                                            split):
    """One-hot rows of the labels, written by hand, in a safetensors file and (scaled by 3: the cosine
    does not see it) in a .npy file with its sidecar: the weights of the `labels` run to 1e-9 in
    float64. Random rows give other weights: the rows are really used."""
    onehot = F.one_hot(split.labels, 10).float()
    save_file({"embeddings": onehot}, str(tmp_path / "onehot.safetensors"), metadata={"data_sha256": split.checksum})
    np.save(tmp_path / "onehot.npy", 3.0 * onehot.numpy().astype(np.float64))
    (tmp_path / "onehot.npy.json").write_text(json.dumps({"data_sha256": split.checksum}))
    save_file({"embeddings": torch.randn(len(split.labels), 7, generator=torch.Generator().manual_seed(0))},
              str(tmp_path / "random.safetensors"), metadata={"data_sha256": split.checksum})

    labels = train(load_config("demo", _tiny(cache_dir)), tmp_path / "labels", progress=False)
    for name in ("onehot.safetensors", "onehot.npy", "random.safetensors"):
        final = train(load_config("demo", _tiny(cache_dir, *_file(tmp_path / name))), tmp_path / f"run-{name}",
                      progress=False)
        run = tmp_path / f"run-{name}"
        gap = _relative_gap(tmp_path / "labels" / "weights.safetensors", run / "weights.safetensors")
        scores = [r["batch_monoscore"] for r in _rows(run)]
        if name.startswith("onehot"):
            assert gap < EXACT, name
            assert scores == pytest.approx([r["batch_monoscore"] for r in _rows(tmp_path / "labels")], rel=EXACT)
            assert final["test_acc"] == labels["test_acc"]
        else:
            assert gap > 1e-6
        assert final["settings"]["regularizer.embeddings"] == "file"
        assert final["settings"]["regularizer.embeddings_file"] == str((tmp_path / name).resolve())


def test_a_stack_of_networks_with_given_rows_equals_each_run_alone_in_float64(tmp_path, cache_dir, split):
    """Each stacked network takes the rows of its own batch (its own seed's shuffle and crops)."""
    rows = torch.randn(len(split.labels), 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    save_embeddings(tmp_path / "rows.safetensors", rows, split)
    knobs = [("regularizer.lambda=0.5", "train.seed=0"), ("regularizer.lambda=-0.5", "train.seed=1")]
    configs = [load_config("demo", _tiny(cache_dir, *_file(tmp_path / "rows.safetensors"), *k)) for k in knobs]
    data = load_data(configs[0], progress=False)
    assert data[0].embeddings.dtype == torch.float64 and data[0].embeddings.shape == (200, 5)
    alone = [train(c, tmp_path / f"alone{i}", progress=False, data=data) for i, c in enumerate(configs)]
    stacked = train_stacked(configs, [tmp_path / f"stack{i}" for i in range(2)], progress=False, data=data)
    for i in range(2):
        assert _relative_gap(tmp_path / f"alone{i}" / "weights.safetensors",
                             tmp_path / f"stack{i}" / "weights.safetensors") < EXACT
        assert [r["batch_monoscore"] for r in _rows(tmp_path / f"stack{i}")] == \
            pytest.approx([r["batch_monoscore"] for r in _rows(tmp_path / f"alone{i}")], rel=EXACT)
        assert stacked[i]["lambda"] == alone[i]["lambda"]


# -- the frozen encoder ---------------------------------------------------------------------------


def _encoder_weights(path):
    torch.manual_seed(5)
    save_file(create_model(ENCODER, num_classes=10).state_dict(), str(path))
    return path


def test_an_encoders_rows_are_its_outputs_and_train_as_the_same_rows_from_a_file(tmp_path, cache_dir, split):
    weights = _encoder_weights(tmp_path / "encoder.safetensors")
    rows = encode_images(ENCODER, weights, split, batch_size=1000, progress=False)
    encoder = create_model(ENCODER, num_classes=10)
    encoder.load_state_dict(load_file(str(weights)))
    with torch.no_grad():  # by hand: every image in [0, 1], one image at a time for a few
        for i in (0, 1, 2345, 4999):
            assert torch.allclose(rows[i], encoder(split.images[i : i + 1].float() / 255)[0], atol=1e-6)
    assert rows.shape == (5000, 6) and rows.dtype == torch.float32
    save_embeddings(tmp_path / "rows.npy", rows, split)
    by_encoder = ["regularizer.embeddings=encoder", f"regularizer.encoder={ENCODER}",
                  f"regularizer.encoder_weights={weights}"]
    train(load_config("demo", _tiny(cache_dir, *by_encoder)), tmp_path / "encoder", progress=False)
    train(load_config("demo", _tiny(cache_dir, *_file(tmp_path / "rows.npy"))), tmp_path / "file", progress=False)
    assert _relative_gap(tmp_path / "encoder" / "weights.safetensors", tmp_path / "file" / "weights.safetensors") \
        < EXACT


def test_an_encoder_that_gives_no_rows_or_weights_that_do_not_fit_are_refused(tmp_path, cache_dir):
    maps = ["regularizer.embeddings=encoder", "regularizer.encoder=tests.train.encoders:feature_map_encoder",
            f"regularizer.encoder_weights={tmp_path / 'maps.safetensors'}"]
    torch.manual_seed(0)
    save_file(create_model(maps[1].split("=")[1], num_classes=10).state_dict(), str(tmp_path / "maps.safetensors"))
    with pytest.raises(ConfigError, match=r"returns \(256, 2, 32, 32\) for a batch of 256 images; expected \(B, D\)"):
        train(load_config("demo", _tiny(cache_dir, *maps)), tmp_path / "maps", progress=False)
    misfit = ["regularizer.embeddings=encoder", f"regularizer.encoder={ENCODER}",
              f"regularizer.encoder_weights={tmp_path / 'maps.safetensors'}"]  # the other encoder's weights
    with pytest.raises(ConfigError, match="regularizer.encoder_weights: weights .*maps.safetensors do not fit the "
                                          "model Sequential: missing 2: 2.bias, 2.weight; unexpected 2: bias, weight"):
        train(load_config("demo", _tiny(cache_dir, *misfit)), tmp_path / "misfit", progress=False)
    assert not (tmp_path / "maps").exists() and not (tmp_path / "misfit").exists()


# -- refusals -------------------------------------------------------------------------------------


def _refused(tmp_path, cache_dir, path, match):
    with pytest.raises(ConfigError, match=match) as err:
        train(load_config("demo", _tiny(cache_dir, *_file(path))), tmp_path / "run", progress=False)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert not (tmp_path / "run").exists()  # refused before any run directory or training


def test_a_file_of_other_images_or_another_size_is_refused_in_one_line_before_training(tmp_path, cache_dir, split):
    onehot = F.one_hot(split.labels, 10).float()
    other = "0" * 64
    save_file({"embeddings": onehot}, str(tmp_path / "other.safetensors"), metadata={"data_sha256": other})
    _refused(tmp_path, cache_dir, tmp_path / "other.safetensors",
             f"holds embeddings of the data with data_sha256 {other}; expected the training split of .*: "
             f"{split.checksum}")
    save_file({"embeddings": onehot[:-1]}, str(tmp_path / "short.safetensors"), metadata={"data_sha256": split.checksum})
    _refused(tmp_path, cache_dir, tmp_path / "short.safetensors",
             r"holds \(4999, 10\) values; expected one row per training image of .*: \(5000, D\)")
    save_file({"embeddings": onehot}, str(tmp_path / "bare.safetensors"))
    _refused(tmp_path, cache_dir, tmp_path / "bare.safetensors", f"has no data_sha256 metadata; expected .*{split.checksum}")
    save_file({"a": onehot, "b": onehot.clone()}, str(tmp_path / "two.safetensors"), metadata={"data_sha256": split.checksum})
    _refused(tmp_path, cache_dir, tmp_path / "two.safetensors", r"holds 2 tensors \(a, b\); expected one \(N, D\) tensor")
    zero = onehot.clone()
    zero[7] = 0
    save_embeddings(tmp_path / "zero.safetensors", zero, split)
    _refused(tmp_path, cache_dir, tmp_path / "zero.safetensors", r"has rows of norm 0 \(row 7\)")
    _refused(tmp_path, cache_dir, tmp_path / "missing.safetensors", "does not exist")
    (tmp_path / "rows.pt").write_bytes(b"")
    _refused(tmp_path, cache_dir, tmp_path / "rows.pt", "expected a .safetensors or .npy file")


def test_a_npy_file_needs_its_sidecar_and_a_pickle_is_never_loaded(tmp_path, cache_dir, split):
    rows = F.one_hot(split.labels, 10).numpy()
    np.save(tmp_path / "rows.npy", rows)
    _refused(tmp_path, cache_dir, tmp_path / "rows.npy", r"needs the sidecar .*rows.npy.json holding \{\"data_sha256\"")
    (tmp_path / "rows.npy.json").write_text(json.dumps({"data_sha256": "f" * 64}))
    _refused(tmp_path, cache_dir, tmp_path / "rows.npy", "holds embeddings of the data with data_sha256 f{64}")
    marker = tmp_path / "unpickled"

    class Bomb:  # unpickling it would run code: it must never happen
        def __reduce__(self):
            return (open, (str(marker), "w"))

    objects = np.empty(len(split.labels), dtype=object)
    objects[0] = Bomb()
    np.save(tmp_path / "objects.npy", objects, allow_pickle=True)
    (tmp_path / "objects.npy.json").write_text(json.dumps({"data_sha256": split.checksum}))
    _refused(tmp_path, cache_dir, tmp_path / "objects.npy", "holds pickled Python objects, which are never loaded")
    assert not marker.exists()


def test_the_command_line_exits_2_with_the_one_line_message(tmp_path, cache_dir, split):
    save_file({"embeddings": torch.ones(3, 2)}, str(tmp_path / "rows.safetensors"),
              metadata={"data_sha256": split.checksum})
    result = subprocess.run([sys.executable, "-m", "selectivity.cli", "train", "demo", "--out",
                             str(tmp_path / "run"), "--no-progress",
                             "--set", *_tiny(cache_dir, *_file(tmp_path / "rows.safetensors"))],
                            capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "expected one row per training image" in result.stderr
    assert not (tmp_path / "run").exists()


# -- the rows travel with their images ------------------------------------------------------------


def test_the_loader_yields_each_images_own_row_under_shuffle_augmentation_and_shards():
    """Image i is filled with the value i + 1, so a crop (zero padding, at most 4 of 8 pixels) or a
    flip keeps its maximum: every yielded image says which row it must come with."""
    n = 200
    images = torch.arange(1, n + 1, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 8, 8).contiguous()
    labels = torch.arange(n) % 10
    rows = torch.stack([torch.arange(n, dtype=torch.float64), torch.rand(n, dtype=torch.float64)], dim=1)
    split = dataclasses.make_dataclass("Split", ["images", "labels"])(images, labels)
    augment = Augment(crop_padding=4, flip=True)
    whole = DeviceLoader(split, 40, shuffle=True, drop_last=True, augment=augment, seed=3, embeddings=rows,
                         dtype=torch.float64)
    plain = DeviceLoader(split, 40, shuffle=True, drop_last=True, augment=augment, seed=3, dtype=torch.float64)
    shards = [DeviceLoader(split, 40, shuffle=True, drop_last=True, augment=augment, seed=3, embeddings=rows,
                           rank=r, world_size=2, dtype=torch.float64) for r in range(2)]
    for epoch in (0, 1):
        for loader in (whole, plain, *shards):
            loader.set_epoch(epoch)
        seen = []
        for (x, y, e), (x0, y0), (xa, ya, ea), (xb, yb, eb) in zip(whole, plain, *shards):
            index = (x.amax(dim=(1, 2, 3)) * 255).round().long() - 1  # the image each sample shows
            assert torch.equal(e, rows[index]) and torch.equal(y, labels[index])
            assert torch.equal(x, x0) and torch.equal(y, y0)  # rows change no image, crop or flip
            assert torch.equal(torch.cat([xa, xb]), x) and torch.equal(torch.cat([ea, eb]), e)
            seen.append(index)
        assert len(torch.cat(seen).unique()) == 200  # a shuffle, each image once per epoch
    with pytest.raises(ValueError, match=r"embeddings must be \(N, D\) with one row per image \(200\)"):
        DeviceLoader(split, 40, embeddings=rows[:-1])


def test_train_per_class_keeps_each_kept_images_own_row(tmp_path, cache_dir, split):
    toy = dataclasses.make_dataclass("Split", ["images", "labels", "embeddings"])(
        torch.arange(8).view(8, 1, 1, 1).to(torch.uint8), torch.tensor([2, 0, 2, 1, 0, 2, 0, 1]),
        torch.arange(8, dtype=torch.float64).view(8, 1) * torch.tensor([[1.0, -1.0]], dtype=torch.float64))
    kept = take_per_class(toy, 2)
    assert kept.images.flatten().tolist() == [0, 1, 2, 3, 4, 7]  # by hand: the first two of each class
    assert kept.embeddings[:, 0].tolist() == [0, 1, 2, 3, 4, 7] and kept.embeddings[:, 1].tolist() == [0, -1, -2, -3, -4, -7]
    # Through load_data: rows of the whole split, subset with the images.
    rows = torch.arange(len(split.labels), dtype=torch.float32).view(-1, 1) + 1
    save_embeddings(tmp_path / "index.safetensors", rows, split)
    train_split, _ = load_data(load_config("demo", _tiny(cache_dir, *_file(tmp_path / "index.safetensors"))),
                               progress=False)
    index = train_split.embeddings[:, 0].long() - 1
    assert len(index) == 200 and torch.equal(split.images[index], train_split.images)
    assert torch.equal(split.labels[index], train_split.labels)


# -- the config -----------------------------------------------------------------------------------


def test_the_embedding_keys_are_checked_and_leave_existing_run_ids_alone(tmp_path):
    data = config_to_dict(load_config("demo", ["regularizer.kind=monoloss", "regularizer.lambda=0.1"]))
    before = json.loads(json.dumps(data))
    for key in ("embeddings_file", "encoder", "encoder_weights"):
        del before["regularizer"][key]
    assert run_id(before) == run_id(data)
    mono = ["regularizer.kind=monoloss", "regularizer.lambda=0.1"]
    with pytest.raises(ConfigError, match="regularizer.embeddings is 'file' but regularizer.embeddings_file is not set"):
        load_config("demo", mono + ["regularizer.embeddings=file"])
    with pytest.raises(ConfigError, match="regularizer.embeddings is 'encoder' but regularizer.encoder_weights is not"):
        load_config("demo", mono + ["regularizer.embeddings=encoder", f"regularizer.encoder={ENCODER}"])
    with pytest.raises(ConfigError, match="regularizer.embeddings_file is set but regularizer.embeddings is 'labels'"):
        load_config("demo", mono + ["regularizer.embeddings_file=x.npy"])
    with pytest.raises(ConfigError, match=r"regularizer.embeddings must be one of \['labels', 'file', 'encoder'\]"):
        load_config("demo", mono + ["regularizer.embeddings=clip"])
    # An SI run (and plain training) takes no embeddings: its run id does not depend on them.
    si = load_config("demo", ["regularizer.alpha=-1", *_file("x.npy")])
    assert si.regularizer.embeddings == "labels" and si.regularizer.embeddings_file is None
    assert run_id(si) == run_id(load_config("demo", ["regularizer.alpha=-1"]))
    assert run_id(load_config("demo", ["regularizer.kind=monoloss", *_file("x.npy")])) == run_id(load_config("demo"))


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">i2", "<u2", ">i8"])
def test_npy_rows_of_any_byte_order_and_width_read_as_the_same_numbers(tmp_path, split, dtype):
    """A big-endian (or unsigned, or narrow) .npy file holds the same rows: read as those numbers."""
    from selectivity.train.embeddings import read_embeddings_file

    rows = (F.one_hot(split.labels, 10) * 3 + 1).numpy()
    path = tmp_path / "rows.npy"
    np.save(path, rows.astype(dtype))
    (tmp_path / "rows.npy.json").write_text(json.dumps({"data_sha256": split.checksum}))
    got = read_embeddings_file(path, split)
    assert torch.equal(got.double(), torch.from_numpy(rows).double())
