"""`selectivity measure --model ...`: any model from a factory + safetensors weights on an image folder."""

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from selectivity.analysis.measures import ALL_MEASURES
from selectivity.cli import main
from selectivity.data import DatasetError
from selectivity.data.imageset import open_image_set, resize_center_crop

COLORS = {"blue": (30, 30, 220), "green": (30, 200, 30), "red": (220, 30, 30)}  # sorted: labels 0, 1, 2
SIZES = [(16, 16), (20, 16), (24, 30)]  # (W, H): images of any size are resized and centre-cropped


def image_bytes(color, size, seed):
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(color)[None, None, :] + rng.integers(-25, 25, (size[1], size[0], 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_tree(root: Path, prefix="val/", per_class=6):
    for c, color in COLORS.items():
        folder = root / prefix / c
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (folder / f"{i}.png").write_bytes(image_bytes(color, SIZES[i % len(SIZES)], hash((c, i)) % 1000))
    return root


@pytest.fixture
def factory(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    from measure_factories import tiny_conv

    return tiny_conv


@pytest.fixture
def setup(tmp_path, factory):
    torch.manual_seed(0)
    weights = tmp_path / "tiny.safetensors"
    save_file(factory(num_classes=3, width=5).state_dict(), str(weights))
    return tmp_path, weights, write_tree(tmp_path / "images")


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def measure_argv(weights, data, out, *extra):
    return ["measure", "--model", "measure_factories:tiny_conv", "--set", "model.kwargs.width=5",
            "--weights", str(weights), "--data", str(data), "--out", str(out), "--size", "16",
            "--no-progress", *extra]


def test_measure_a_model_from_a_factory(setup, capsys):
    tmp, weights, data = setup
    code, out, err = run(measure_argv(weights, data, tmp / "out"), capsys)
    assert code == 0, err
    units = pd.read_csv(tmp / "out" / "unit_measures.csv")
    assert list(units.columns) == ["layer", "unit", "dead", "preferred_class", *ALL_MEASURES]
    assert units.groupby("layer").size().to_dict() == {"features.1": 5, "features.3": 5}
    assert units.si.between(0, 1).all() and units.auroc.between(0.5, 1).all()
    agreement = pd.read_csv(tmp / "out" / "measure_agreement.csv")
    assert set(agreement.layer) == {"features.1", "features.3"}
    page = (tmp / "out" / "exemplars.html").read_text()
    measures = len(ALL_MEASURES) - 1  # mi_shuffled is a baseline
    assert page.count("data:image/png;base64,") == measures * 4 * 8  # 4 units per measure, 8 images each
    assert page.count("<svg class=\"hist\"") == measures * 4 and "src='http" not in page
    summary = json.loads((tmp / "out" / "measure.json").read_text())
    assert summary["images"] == 18 and summary["classes"] == 3 and summary["input_size"] == 16


def test_layers_globs_and_a_zip_of_bare_class_folders(tmp_path, factory, capsys):
    weights = tmp_path / "w.safetensors"
    save_file(factory(num_classes=3, width=4).state_dict(), str(weights))
    tree = write_tree(tmp_path / "tree", prefix="imagenet_val/")
    archive = shutil.make_archive(str(tmp_path / "val"), "zip", tree)  # imagenet_val/<class>/<image>
    code, out, err = run(measure_argv(weights, archive, tmp_path / "out", "--layers", "features.3",
                                      "--measures", "si,auroc") + ["--set", "width=4"], capsys)
    assert code == 0, err
    units = pd.read_csv(tmp_path / "out" / "unit_measures.csv")
    assert list(units.columns) == ["layer", "unit", "dead", "preferred_class", "si", "auroc"]
    assert set(units.layer) == {"features.3"} and len(units) == 4


def test_bad_weights_give_one_clear_error(setup, factory, capsys):
    tmp, _, data = setup
    state = factory(num_classes=3, width=5).state_dict()
    state["extra.bias"] = torch.zeros(2)
    del state["fc.bias"]
    state["features.0.weight"] = torch.zeros(7, 3, 3, 3)
    bad = tmp / "bad.safetensors"
    save_file(state, str(bad))
    code, out, err = run(measure_argv(bad, data, tmp / "out"), capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert "missing 1: fc.bias" in err and "unexpected 1: extra.bias" in err
    assert "wrong shape 1: features.0.weight (7, 3, 3, 3) (model (5, 3, 3, 3))" in err
    pickled = tmp / "model.pt"
    torch.save(state, pickled)
    code, out, err = run(measure_argv(pickled, data, tmp / "out"), capsys)
    assert code == 2 and "not a readable .safetensors file" in err


@pytest.mark.parametrize("extra, match", [
    (["--layers", "nosuch.*"], "nosuch"),
    (["--measures", "si,grandmother"], "measures must be 'all'"),
    (["--std", "0,1,1"], "--std must be 1 or 3 positive numbers"),
    (["--split", "train"], "has no 'train' folder"),
    (["--crop-fraction", "1.5"], "argument --crop-fraction: expected a fraction in (0, 1], got '1.5'"),
])
def test_user_mistakes_exit_2(setup, capsys, extra, match):
    tmp, weights, data = setup
    try:
        code, _out, err = run(measure_argv(weights, data, tmp / "out", *extra), capsys)
    except SystemExit as exit_:  # argparse refuses the value itself, with exit 2
        code, (_out, err) = exit_.code, capsys.readouterr()
    assert code == 2 and match in err, err


def test_resize_center_crop_is_a_pure_tensor_function():
    image = torch.zeros(1, 3, 4, 8, dtype=torch.uint8)
    image[..., 2:6] = 200  # the middle half of a 4x8 image
    crop = resize_center_crop(image, 4)
    assert crop.shape == (1, 3, 4, 4) and crop.dtype == torch.uint8 and bool((crop == 200).all())
    assert resize_center_crop(image[..., :4], 4) is not None and torch.equal(resize_center_crop(image[..., :4], 4),
                                                                               image[..., :4])
    # shorter side 4 -> 8, then crop 6 of the centre: the bright half covers the middle 8 of 16 columns
    big = resize_center_crop(image.float(), 6, crop_fraction=0.75)
    assert big.shape == (1, 3, 6, 6) and big.dtype == torch.float32
    assert float(big[0, 0, 3, 3]) == pytest.approx(200, abs=1)


def test_open_image_set_layouts(tmp_path):
    write_tree(tmp_path / "a", prefix="train/")
    write_tree(tmp_path / "a", prefix="val/", per_class=2)
    images = open_image_set(tmp_path / "a")
    assert len(images) == 6 and images.classes == ["blue", "green", "red"]  # val preferred
    assert images.batch([0, 5], 10).shape == (2, 3, 10, 10)
    assert len(open_image_set(tmp_path / "a", "train")) == 18
    (tmp_path / "b" / "only").mkdir(parents=True)
    (tmp_path / "b" / "only" / "x.png").write_bytes(image_bytes((1, 2, 3), (4, 4), 0))
    (tmp_path / "b" / "README.txt").write_text("one class")
    with pytest.raises(DatasetError, match="one class folder"):
        open_image_set(tmp_path / "b")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def near(pixels, rgb, tol=6):
    return (np.abs(pixels - np.array(rgb)) <= tol).all(axis=-1)


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install -y chromium)")
def test_exemplar_page_thumbnails_and_charts_render_in_chromium(setup, capsys):
    tmp, weights, data = setup
    assert run(measure_argv(weights, data, tmp / "out"), capsys)[0] == 0
    shot = tmp / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp / 'profile'}", "--window-size=1100,900", f"--screenshot={shot}",
                    (tmp / "out" / "exemplars.html").as_uri()], check=True, capture_output=True, timeout=60)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    # The page itself is black, grey, white and red (bars); green and blue only come from the thumbnails.
    green = (g > 150) & (r < 90) & (b < 90)
    blue = (b > 150) & (r < 90) & (g < 90)
    assert green.sum() > 64 * 64 and blue.sum() > 64 * 64, (green.sum(), blue.sum())
    # The first unit's chart, found by its bars (#7f8c8d grey, #c0392b red: no thumbnail has these
    # colours), must carry text a reader can use: class names under the bars, values left of them.
    bars = near(pixels, (127, 140, 141)) | near(pixels, (192, 57, 43), tol=3)
    rows = np.flatnonzero(bars.sum(axis=1) >= 3)
    assert rows.size, "no bar chart on the first screen"
    band = rows[rows < rows[0] + 90]  # the first chart's bars
    ys, xs = np.nonzero(bars[band[0]: band[-1] + 1])
    left, right, floor = xs.min(), xs.max(), band[-1]
    ink = (np.abs(pixels - 250) > 60).any(axis=-1)  # anything drawn on the chart's near-white ground
    names = ink[floor + 3: floor + 45, left - 10: right + 10].sum()
    values = ink[band[0] - 6: floor + 6, max(0, left - 45): left - 4].sum()
    assert names > 60 and values > 20, (names, values)


@pytest.mark.slow  # trains one tiny epoch first (~5 s on 2 cores)
def test_measure_a_run_with_every_measure(tmp_path, tiny_overrides, capsys):
    run_dir = tmp_path / "run"
    sets = [a for o in tiny_overrides + ["train.epochs=1"] for a in ("--set", o)]
    code, out, err = run(["train", "demo", "--out", str(run_dir), "--no-progress"] + sets, capsys)
    assert code == 0, err
    code, out, err = run(["measure", str(run_dir), "--measures", "si,nope", "--no-progress"], capsys)
    assert code == 2 and "--measures" in err and "nope" in err and len(err.strip().splitlines()) == 1, err
    assert not (run_dir / "measure-cifar10-demo-test.csv").exists()  # refused before any work
    code, out, err = run(["measure", str(run_dir), "--measures", "all", "--no-progress"], capsys)
    assert code == 0, err
    units = pd.read_csv(run_dir / "unit_measures.csv")
    final = json.loads((run_dir / "final.json").read_text())
    layers = {k[3:] for k in final if k.startswith("si/")}
    assert set(units.layer) == layers and list(units.columns[4:]) == list(ALL_MEASURES)
    # SI is the same number the meter reports (the run's own per-unit table, on the whole test split)
    meter = pd.read_csv(run_dir / "measure-cifar10-demo-test.csv")
    np.testing.assert_allclose(units.si.to_numpy(), meter.si.to_numpy(), rtol=1e-5, atol=1e-7)
    agreement = pd.read_csv(run_dir / "measure_agreement.csv")
    assert set(agreement.layer) == layers and agreement.spearman.dropna().between(-1, 1).all()


@pytest.mark.parametrize("argv, match", [
    (["measure"], "needs a run directory, or --model"),
    (["measure", "somerun", "--weights", "w.safetensors"], "--weights only apply with --model"),
    (["measure", "somerun", "--split", "val"], "--split val is for --model"),
    (["measure", "somerun", "--sample", "100"], "--sample applies to --measures"),
    (["measure", "--model", "resnet20", "--data", "x"], "takes --weights FILE.safetensors and --data DIR"),
    (["measure", "somerun", "--measures", ""], "--measures names nothing: give at least one"),
    (["measure", "somerun", "--measures", " , "], "--measures names nothing"),
])
def test_measure_argument_mistakes_exit_2(argv, match, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2 and match in err, err


def test_open_image_set_reads_cifar_pickles_and_tiny_imagenet(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "data"))
    from builders import CIFAR_NAMES, make_cifar, make_tiny

    folder, expected = make_cifar(tmp_path / "c")
    images = open_image_set(folder.parent)
    assert images.classes == CIFAR_NAMES and images.labels.tolist() == expected["test"][1].tolist()
    assert torch.equal(images.batch([0, 1], 32), torch.from_numpy(expected["test"][0][:2]))
    assert images.batch([0], 16).shape == (1, 3, 16, 16)
    make_tiny(tmp_path / "t")
    tiny = open_image_set(tmp_path / "t", "val")  # Tiny ImageNet's val split, labels from its annotations
    assert tiny.classes == ["goldfish", "tabby", "school bus"] and tiny.labels.tolist() == [2, 0, 1, 0]
    assert tiny.batch([0, 3], 32).shape == (2, 3, 32, 32)


class Normalized(torch.nn.Module):
    """A fixed preprocessing step in front of the factory's network (layers ``net.features.*``)."""

    selectivity_layers = ("net.features.1", "net.features.3")

    def __init__(self, pre, net):
        super().__init__()
        self.pre, self.net = pre, net

    def forward(self, x):
        return self.net(self.pre(x))


def test_mean_and_std_normalize_the_unit_interval_images(setup, factory):
    from selectivity.models import Normalize
    from selectivity.commands.measure_any import measure_model

    tmp, _, data = setup
    net = factory(num_classes=3, width=5)
    mean, std = [0.2, 0.5, 0.4], [0.5, 0.25, 0.3]
    inside = measure_model(Normalized(Normalize(mean, std), net), data, tmp / "inside", size=16, progress=False)
    given = measure_model(Normalized(torch.nn.Identity(), net), data, tmp / "given", size=16, mean=mean, std=std,
                          progress=False)
    plain = measure_model(Normalized(torch.nn.Identity(), net), data, tmp / "plain", size=16, progress=False)
    read = [pd.read_csv(s["files"]["unit_measures"]) for s in (inside, given, plain)]
    pd.testing.assert_frame_equal(read[0], read[1], rtol=1e-5)
    assert not np.allclose(read[0].si, read[2].si)


# ----------------------------------------------------------------------------- known answers, dead units


def write_marked_tree(root: Path, split="val", per_class=200, marked=100):
    """3 colours x ``per_class`` 16x16 images; ``marked`` of the blue ones (class 0) carry a white 4x4 patch."""
    rng = np.random.default_rng(0)
    for c, color in COLORS.items():
        folder = root / split / c
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.array(color)[None, None, :] + rng.integers(-25, 25, (16, 16, 3)), 0, 255)
            if c == "blue" and i < marked:
                pixels[:4, :4] = 255
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    return root


def marker_weights(tmp_path, factory_module):
    weights = tmp_path / "marker.safetensors"
    save_file(factory_module.marker_net(3).state_dict(), str(weights))
    return weights


@pytest.fixture
def factories(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import measure_factories

    return measure_factories


def page_units(page: str) -> tuple[set, str]:
    """(layer, unit) of every unit shown in a "most selective" section, and the dead-unit list's text."""
    ranked, _, dead = page.partition("<h2 id='dead'>")
    import re

    return set(re.findall(r"<b>([^<]+) #(\d+)</b>", ranked)), dead


def test_known_answer_unit_has_precision_one_through_measure_model(tmp_path, factories, capsys):
    """A unit that fires on exactly 100 of the 600 images, all of class 0: its top 100 are class 0."""
    data = write_marked_tree(tmp_path / "images")
    weights = marker_weights(tmp_path, factories)
    code, out, err = run(["measure", "--model", "measure_factories:marker_net", "--weights", str(weights),
                          "--data", str(data), "--out", str(tmp_path / "out"), "--no-progress"], capsys)
    assert code == 0, err
    units = pd.read_csv(tmp_path / "out" / "unit_measures.csv")
    detector = units.iloc[0]
    assert detector.precision == 1.0 and detector.preferred_class == 0 and not detector.dead
    assert detector.top_class == pytest.approx(0.5) and detector.localist_gap == pytest.approx(0.0)
    assert units.dead.tolist() == [False, True, False]


def test_dead_units_are_never_ranked_and_are_counted_apart(tmp_path, factories, capsys):
    net = factories.tiny_conv(num_classes=3, width=5)
    with torch.no_grad():  # channels 1 and 3 of features.1 never answer; so does channel 0 of features.3
        for layer, channel in (("0", 1), ("0", 3), ("2", 0)):
            net.features[int(layer)].weight[channel] = 0.0
            net.features[int(layer)].bias[channel] = -1.0
    weights = tmp_path / "dead.safetensors"
    save_file(net.state_dict(), str(weights))
    data = write_tree(tmp_path / "images")
    code, out, err = run(measure_argv(weights, data, tmp_path / "out"), capsys)
    assert code == 0, err
    units = pd.read_csv(tmp_path / "out" / "unit_measures.csv")
    dead = {("features.1", 1), ("features.1", 3), ("features.3", 0)}
    assert set(zip(units.layer[units.dead], units.unit[units.dead])) == dead
    rows = units[units.dead]
    assert rows.preferred_class.isna().all()
    assert rows[["precision", "top_class", "localist_gap", "dprime"]].isna().all().all()
    page = (tmp_path / "out" / "exemplars.html").read_text()
    ranked, dead_list = page_units(page)
    assert ranked and not {(layer, int(u)) for layer, u in ranked} & dead
    assert "3 of 10 units are dead" in page
    assert "<li>features.1 (2): #1, #3</li>" in dead_list and "<li>features.3 (1): #0</li>" in dead_list
    # the summary of the run form: mean SI, dead fraction, mean SI of the live units
    summary = json.loads((tmp_path / "out" / "measure.json").read_text())
    assert summary["dead_fraction"] == pytest.approx(0.3) and summary["dead_units"] == 3
    live = units[~units.dead]
    per_layer_live = live.groupby("layer").si.mean()
    assert summary["mean_si_live"] == pytest.approx(per_layer_live.mean(), rel=1e-6)
    assert summary["mean_si"] == pytest.approx(units.groupby("layer").si.mean().mean(), rel=1e-6)
    assert "dead units 30.0%, mean SI of the live units" in out
    assert f"{summary['mean_si_live']:.4f}" in out and "network" in out


def test_sample_option_reports_its_standard_error(setup, capsys):
    tmp, weights, data = setup
    code, out, err = run(measure_argv(weights, data, tmp / "out", "--sample", "10"), capsys)
    assert code == 0, err
    summary = json.loads((tmp / "out" / "measure.json").read_text())
    assert summary["sampling"]["kept"] == 10 and summary["sampling"]["images"] == 18
    errors = summary["sampling"]["standard_error"]
    assert set(errors) == {"features.1", "features.3"} and set(errors["features.1"]) == {"auroc", "informedness",
                                                                                         "mi", "mi_shuffled"}
    assert "from a uniform sample of 10 of 18 images" in out
    code, out, err = run(measure_argv(weights, data, tmp / "exact"), capsys)
    assert json.loads((tmp / "exact" / "measure.json").read_text())["sampling"] is None
    assert "uniform sample" not in out
    code, out, err = run(measure_argv(weights, data, tmp / "bad", "--sample", "1"), capsys)
    assert code == 2 and "--sample: sample_size must be an int >= 2" in err


@pytest.mark.slow  # one tiny epoch (learning rate 1e-12: the weights stay the factory's) on 630 images
def test_known_answer_unit_has_precision_one_through_measure_run(tmp_path, factories, cache_dir, capsys):
    data = write_marked_tree(tmp_path / "images", split="test")
    write_marked_tree(tmp_path / "images", split="train", per_class=10, marked=0)
    run_dir = tmp_path / "run"
    sets = [f"data.cache_dir={cache_dir}", f"data.source={data}", "model.name=measure_factories:marker_net",
            "optim.lr=1e-12", "optim.weight_decay=0", "train.epochs=1", "train.batch_size=10", "train.threads=1",
            "regularizer.warmup_epochs=0"]
    code, out, err = run(["train", "demo", "--out", str(run_dir), "--no-progress", "--set", *sets], capsys)
    assert code == 0, err
    code, out, err = run(["measure", str(run_dir), "--measures", "si,nope", "--no-progress"], capsys)
    assert code == 2 and "--measures" in err and "nope" in err and len(err.strip().splitlines()) == 1, err
    assert not (run_dir / "measure-cifar10-demo-test.csv").exists()  # refused before any work
    code, out, err = run(["measure", str(run_dir), "--measures", "all", "--no-progress"], capsys)
    assert code == 0, err
    units = pd.read_csv(run_dir / "unit_measures.csv")
    assert units.precision[0] == 1.0 and units.dead.tolist() == [False, True, False]
    per_unit = pd.read_csv(run_dir / "si_per_unit.csv")  # written by training, with the same dead units
    assert per_unit.dead.tolist() == [False, True, False] and per_unit.preferred_class.isna().tolist() == [
        False, True, False]
    assert "dead units 33.3%" in out


# ----------------------------------------------------------------------------- what the page ranks and shows


def unit_block(page: str, layer: str, unit: int) -> str:
    """The first ``<div class='unit'>`` of (layer, unit) on the page."""
    start = page.index(f"<b>{layer} #{unit}</b>")
    return page[page.rindex("<div class='unit'>", 0, start): page.index("</svg></div>", start)]


def test_a_unit_that_fires_on_a_few_images_is_listed_apart_not_ranked(tmp_path, factories, capsys):
    """Unit 0 answers 3 of the 120 images (all blue): SI ~1 from three responses. It is not the most
    selective unit by any measure: it is listed apart with its count, and the threshold is stated."""
    data = write_marked_tree(tmp_path / "images", per_class=40, marked=3)
    weights = marker_weights(tmp_path, factories)
    argv = ["measure", "--model", "measure_factories:marker_net", "--weights", str(weights), "--data", str(data),
            "--no-progress"]
    code, out, err = run(argv + ["--out", str(tmp_path / "out")], capsys)
    assert code == 0, err
    units = pd.read_csv(tmp_path / "out" / "unit_measures.csv")
    assert units.si[0] > 0.99 and units.dead.tolist() == [False, True, False]
    page = (tmp_path / "out" / "exemplars.html").read_text()
    ranked, _ = page_units(page)
    assert ranked == {("detect", "2")}  # default: a tenth of an average class (4), at least the 8 slots
    assert "Ranked: units active (response above 0) on at least 8 images" in page
    assert "<li>detect (1): #0 (3)</li>" in page and "Rarely active units (1): active on fewer than 8" in page
    assert "ranks the units active on at least 8 images (--min-active); 1 rarely active unit is listed apart" in out
    summary = json.loads((tmp_path / "out" / "measure.json").read_text())
    assert summary["min_active"] == 8 and summary["rarely_active_units"] == 1
    # --min-active 2 ranks it; its slots hold only the 3 images it answers, and the page says so
    code, out, err = run(argv + ["--out", str(tmp_path / "low"), "--min-active", "2"], capsys)
    assert code == 0, err
    page = (tmp_path / "low" / "exemplars.html").read_text()
    assert page_units(page)[0] == {("detect", "0"), ("detect", "2")} and "id='rare'" not in page
    block = unit_block(page, "detect", 0)
    assert block.count("<img ") == 3 and block.count("alt='blue'") == 3
    assert "active on 3 images only: 3 of 8 exemplars" in block
    assert "active on 120 images<br>" in unit_block(page, "detect", 2) and unit_block(page, "detect", 2).count(
        "<img ") == 8


@pytest.mark.parametrize("value", ["0", "121", "-3"])
def test_min_active_outside_one_to_the_images_exits_2(tmp_path, factories, capsys, value):
    data = write_marked_tree(tmp_path / "images", per_class=40, marked=3)
    weights = marker_weights(tmp_path, factories)
    code, out, err = run(["measure", "--model", "measure_factories:marker_net", "--weights", str(weights), "--data",
                          str(data), "--no-progress", "--out", str(tmp_path / "out"), "--min-active", value], capsys)
    assert code == 2 and "--min-active must be a number of images from 1 to the 120 measured" in err, err
    assert not (tmp_path / "out").exists()


def test_min_active_applies_to_model_measuring_only(capsys):
    code, out, err = run(["measure", "somerun", "--min-active", "5"], capsys)
    assert code == 2 and "--min-active only apply with --model" in err, err


def test_default_min_active_is_a_tenth_of_a_class_and_fills_the_slots():
    from selectivity.commands.measure_any import default_min_active

    assert default_min_active(10_000, 10, 8) == 100  # CIFAR-10's test split
    assert default_min_active(1_000, 10, 8) == 10  # the demo's
    assert default_min_active(50_000, 1_000, 8) == 8  # ImageNet's validation split: the slots
    assert default_min_active(5, 2, 8) == 5  # never more than the images


def test_the_page_names_what_was_measured_and_explains_each_measure(setup, capsys):
    tmp, weights, data = setup
    assert run(measure_argv(weights, data, tmp / "out"), capsys)[0] == 0
    page = (tmp / "out" / "exemplars.html").read_text()
    title = f"Selective units of measure_factories:tiny_conv (tiny.safetensors) on {data}: 18 images"
    assert f"<title>{title}</title>" in page and f"<h1>{title}</h1>" in page
    assert f"weights {weights.resolve()}" in page and "3 classes, 16 px" in page
    import html as html_lib
    import re

    from selectivity.analysis.measures import MEASURES, ranked_measures

    for name in ranked_measures(ALL_MEASURES):
        about = html_lib.escape(MEASURES[name].description)
        assert about and page.index(f"<h2 id='{name}'>") < page.index(about), name
        assert about.endswith(".") and not re.search(r"[.;:!?]\s+[A-Z]", about), name  # one sentence


def test_the_class_chart_names_its_classes_and_has_a_scale():
    import re

    from selectivity.commands.exemplars import class_histogram_svg

    svg = class_histogram_svg(np.array([0.2, 1.37, 0.0]), ["cat", "dog", "ship"], preferred=1)
    texts = re.findall(r">([^<>]+)</text>", svg)
    assert {"cat", "dog", "ship", "mean response"} <= set(texts)
    ticks = {float(v): float(y) - 3 for y, v in re.findall(r'y="([\d.]+)" text-anchor="end">([-\d.e]+)</text>', svg)}
    assert sorted(ticks) == [0.0, 0.5, 1.0]  # round values up to the largest mean
    rects = re.findall(r'<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)" fill="(#\w+)">', svg)
    per_unit = ticks[0.0] - ticks[1.0]  # pixels per unit of response
    heights = [float(h) / per_unit for _, h, _ in rects]
    assert heights == pytest.approx([0.2, 1.37, 0.0], abs=0.01)  # the bars follow the scale
    assert [c for _, _, c in rects] == ["#7f8c8d", "#c0392b", "#7f8c8d"]
    # 200 classes: no room for names under the bars; a caption names the preferred class
    many = class_histogram_svg(np.linspace(0, 1, 200), [f"class {i}" for i in range(200)], preferred=199)
    assert "200 classes in the data&#x27;s order; red: class 199" in many or \
        "200 classes in the data's order; red: class 199" in many
    assert "class 3<" not in many
    # raw token responses can be negative: the axis reaches below 0 and the bar hangs from the 0 line
    low = class_histogram_svg(np.array([-0.5, 1.0]), ["a", "b"], preferred=1)
    values = [float(v) for v in re.findall(r'text-anchor="end">([-\d.e]+)</text>', low)]
    assert min(values) < 0 < max(values)
