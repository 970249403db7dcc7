"""Tests of selectivity.analysis.corruptions.

Real images come from ../shared/data (CIFAR-10 test JPEGs, Tiny ImageNet val JPEGs); the
tests that need them skip when the zips are absent. Reference implementations are written
here, independently, from the formulas of the original generator scripts
(hendrycks/robustness make_cifar_c.py, make_tinyimagenet_c.py) and of the library calls
they make; those needing scipy skip without it.
"""

from __future__ import annotations

import doctest
import importlib.util
import io
import itertools
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from selectivity.analysis import corruptions
from selectivity.analysis.corruptions import (
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    PRESETS,
    blur,
    corrupt,
    corruption_names,
    digital,
    ops,
    spatter,
    weather,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
HAS_FROST = importlib.util.find_spec("imagecorruptions") is not None
FROST_SKIP = "frost needs the frost photos of the optional imagecorruptions package (pip install imagecorruptions)"
ALL = CORRUPTIONS + EXTRA_CORRUPTIONS
DETERMINISTIC = {
    "defocus_blur",
    "zoom_blur",
    "gaussian_blur",
    "brightness",
    "contrast",
    "saturate",
    "pixelate",
    "jpeg_compression",
}
# corruptions.md 1.6: with the published constants these do not move steadily away from the clean image
NOT_MONOTONE = {"elastic_transform", "saturate", "spatter", "glass_blur", "frost", "motion_blur"}
PRESET_NAMES = tuple(PRESETS)


def _decode_zip(zip_name: str, prefix: str, suffix: str, count: int) -> torch.Tensor:
    path = DATA / zip_name
    if not path.is_file():
        pytest.skip(f"real images absent: {path} not found")
    with zipfile.ZipFile(path) as z:
        names = sorted(n for n in z.namelist() if n.startswith(prefix) and n.endswith(suffix))
        names = names[:: len(names) // count][:count]  # spread over the classes
        arrays = [np.asarray(Image.open(io.BytesIO(z.read(n))).convert("RGB")) for n in names]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


@pytest.fixture(scope="module")
def real_images() -> dict[str, torch.Tensor]:
    """16 CIFAR-10 test images (32 px) and 16 Tiny ImageNet val images (64 px), by preset."""
    return {
        "cifar10-c": _decode_zip("cifar10-jpeg.zip", "cifar10/test/", ".jpg", 16),
        "tinyimagenet-c": _decode_zip("tiny-imagenet-200-subset.zip", "tiny-imagenet-200/val/images/", ".JPEG", 16),
    }


@pytest.fixture(scope="module")
def corrupted(real_images) -> dict[tuple[str, str], list[torch.Tensor]]:
    """(preset, name) -> the five severities of the corruption of the preset's real images, seed 0."""
    out = {}
    for preset, x in real_images.items():
        for name in ALL:
            if name == "frost" and not HAS_FROST:
                continue
            out[preset, name] = [corrupt(x, name, s, preset, generator=0) for s in range(1, 6)]
    return out


def _distances(real_images, corrupted, preset: str, name: str) -> list[float]:
    """Mean absolute difference from the clean images at severities 1..5."""
    if (preset, name) not in corrupted:
        pytest.skip(FROST_SKIP)
    x = real_images[preset]
    return [(y - x).abs().mean().item() for y in corrupted[preset, name]]


# ---------------------------------------------------------------- names and presets


def test_names_and_presets():
    assert len(CORRUPTIONS) == 15 and len(EXTRA_CORRUPTIONS) == 4
    assert corruption_names() == CORRUPTIONS
    assert corruption_names("extra") == EXTRA_CORRUPTIONS
    assert corruption_names("all") == CORRUPTIONS + EXTRA_CORRUPTIONS
    with pytest.raises(ValueError, match="kind"):
        corruption_names("common")
    for preset in PRESETS.values():
        assert set(preset) == set(ALL)
        assert all(len(levels) == 5 for levels in preset.values())


def test_published_constants_spot_checks():
    cifar, tiny = PRESETS["cifar10-c"], PRESETS["tinyimagenet-c"]
    assert cifar["gaussian_noise"] == (0.04, 0.06, 0.08, 0.09, 0.10)
    assert tiny["gaussian_noise"] == (0.04, 0.08, 0.12, 0.15, 0.18)
    assert cifar["jpeg_compression"] == (80, 65, 58, 50, 40)
    assert tiny["jpeg_compression"] == (65, 58, 50, 40, 25)
    assert [s[-1] for s in tiny["snow"]] == [0.8, 0.8, 0.7, 0.65, 0.6]
    assert cifar["zoom_blur"][4] == tuple(np.arange(1, 1.26, 0.01).tolist())
    # np.arange's float steps overshoot: severities 1 and 2 end at 1.06 and 1.11, not 1.05 and 1.10
    assert [len(z) for z in cifar["zoom_blur"]] == [7, 12, 16, 21, 26]
    assert cifar["zoom_blur"][0][-1] == pytest.approx(1.06)


def test_docstring_examples():
    for module in (corruptions.api, corruptions.presets):
        failed, _ = doctest.testmod(module, extraglobs={"torch": torch})
        assert failed == 0, module.__name__


# ---------------------------------------------------------------- every corruption on real images


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_output_contract_on_real_images(real_images, corrupted, preset):
    x = real_images[preset]
    for name in ALL:
        if (preset, name) not in corrupted:
            continue
        for severity, y in enumerate(corrupted[preset, name], 1):
            where = f"{preset} {name} severity {severity}"
            assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device, where
            assert torch.isfinite(y).all(), where
            assert y.min() >= 0 and y.max() <= 1, where
            assert (y - x).abs().mean() > 1e-3, f"{where} leaves the images unchanged"


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("name", sorted(set(ALL) - NOT_MONOTONE))
def test_grows_with_severity(real_images, corrupted, preset, name):
    d = _distances(real_images, corrupted, preset, name)
    assert all(a < b for a, b in itertools.pairwise(d)), f"{name}: {d}"


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_elastic_gets_closer_with_severity(real_images, corrupted, preset):
    d = _distances(real_images, corrupted, preset, "elastic_transform")
    assert d[4] < d[0], d  # affine jitter shrinks from severity 1 to 5 while the warp grows


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_saturate_lowers_then_raises_saturation(real_images, corrupted, preset):
    x = real_images[preset]
    sat = ops.rgb_to_hsv(x)[:, 1].mean()
    levels = [ops.rgb_to_hsv(y)[:, 1].mean() for y in corrupted[preset, "saturate"]]
    assert levels[0] < sat and levels[1] < levels[0], levels
    assert all(level > sat for level in levels[2:]), levels


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_spatter_is_water_then_mud(real_images, corrupted, preset):
    x = real_images[preset]
    out = corrupted[preset, "spatter"]
    for y in out[:3]:  # water only adds a pale colour
        assert (y >= x - 1e-6).all() and (y > x + 1 / 255).any()
    for y in out[3:]:  # mud blends toward dark brown
        assert y.mean() < x.mean()


def test_glass_blur_cifar_shape(real_images, corrupted):
    d = _distances(real_images, corrupted, "cifar10-c", "glass_blur")
    assert max(d[:3]) < 1.1 * min(d[:3]), d  # about flat over severities 1-3
    assert d[4] < d[3], d  # dips from 4 to 5


def test_frost_cifar_peaks_near_severity_3(real_images, corrupted):
    d = _distances(real_images, corrupted, "cifar10-c", "frost")
    assert d[2] > d[0] and d[2] > d[4], d


def test_motion_blur_cifar_flat_from_3_to_4(real_images, corrupted):
    d = _distances(real_images, corrupted, "cifar10-c", "motion_blur")
    assert d[0] < d[1] < d[2] and d[3] < d[4], d
    assert abs(d[3] - d[2]) < 0.1 * d[2], d


# ---------------------------------------------------------------- noise statistics on mid-grey images


def _grey(level: float) -> torch.Tensor:
    return torch.full((16, 3, 64, 64), level)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_gaussian_noise_std_matches_constant(preset):
    x = _grey(0.5)
    for severity, c in enumerate(PRESETS[preset]["gaussian_noise"], 1):
        noise = corrupt(x, "gaussian_noise", severity, preset, generator=severity) - x
        assert abs(noise.mean().item()) < 2e-3
        assert noise.std().item() == pytest.approx(c, rel=0.02), (severity, c)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_shot_noise_is_poisson(preset):
    level = 0.25
    x = _grey(level)
    for severity, c in enumerate(PRESETS[preset]["shot_noise"], 1):
        y = corrupt(x, "shot_noise", severity, preset, generator=severity).double()
        counts = y * c  # Poisson(level * c) photon counts
        assert torch.allclose(counts, counts.round(), atol=1e-3)
        assert y.mean().item() == pytest.approx(level, rel=0.01)
        assert y.var().item() == pytest.approx(level / c, rel=0.03)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_impulse_noise_fraction(preset):
    x = _grey(0.5)
    n = x.numel()
    for severity, c in enumerate(PRESETS[preset]["impulse_noise"], 1):
        y = corrupt(x, "impulse_noise", severity, preset, generator=severity)
        salt, pepper = (y == 1).sum().item(), (y == 0).sum().item()
        assert salt + pepper == (y != x).sum().item()
        assert abs((salt + pepper) / n - c) < 5 * math.sqrt(c * (1 - c) / n), (severity, c)
        assert salt / (salt + pepper) == pytest.approx(0.5, abs=5 * math.sqrt(0.25 / (salt + pepper)))


def test_speckle_noise_scales_with_pixel():
    x = torch.cat([torch.full((8, 3, 64, 64), 0.2), torch.full((8, 3, 64, 64), 0.4)])
    c = PRESETS["cifar10-c"]["speckle_noise"][4]
    noise = corrupt(x, "speckle_noise", 5, generator=1) - x
    assert noise[:8].std().item() == pytest.approx(0.2 * c, rel=0.02)
    assert noise[8:].std().item() == pytest.approx(0.4 * c, rel=0.02)


# ---------------------------------------------------------------- deterministic corruptions vs references


def _random_images(n=3, h=20, w=24, seed=0) -> torch.Tensor:
    return torch.rand((n, 3, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_contrast_formula():
    x = _random_images()
    for severity, c in enumerate(PRESETS["cifar10-c"]["contrast"], 1):
        a = x.numpy()
        m = a.mean(axis=(2, 3), keepdims=True)
        expected = np.clip((a - m) * c + m, 0, 1)
        np.testing.assert_allclose(corrupt(x, "contrast", severity).numpy(), expected, atol=1e-12)


def test_brightness_by_hand():
    x = torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    x[0, :, 0, 0] = torch.tensor([0.5, 0.25, 0.0])  # V = 0.5 -> 0.8 scales the pixel by 1.6
    x[0, :, 0, 1] = torch.tensor([0.9, 0.6, 0.3])  # V = 0.9 -> 1 (clipped): scale 1 / 0.9
    y = corrupt(x, "brightness", 5)  # c = 0.3
    torch.testing.assert_close(y[0, :, 0, 0], torch.tensor([0.8, 0.4, 0.0], dtype=torch.float64))
    torch.testing.assert_close(y[0, :, 0, 1], torch.tensor([1.0, 0.6 / 0.9, 0.3 / 0.9], dtype=torch.float64))
    torch.testing.assert_close(y[0, :, 1, 1], torch.full((3,), 0.3, dtype=torch.float64))  # black -> grey


def test_hsv_corruptions_match_matplotlib():
    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv

    x = _random_images()
    hsv = rgb_to_hsv(x.permute(0, 2, 3, 1).numpy())
    for preset in PRESET_NAMES:
        for severity in range(1, 6):
            c = PRESETS[preset]["brightness"][severity - 1]
            b = hsv.copy()
            b[..., 2] = np.clip(b[..., 2] + c, 0, 1)
            got = corrupt(x, "brightness", severity, preset).permute(0, 2, 3, 1).numpy()
            np.testing.assert_allclose(got, np.clip(hsv_to_rgb(b), 0, 1), atol=1e-12)
            a, off = PRESETS[preset]["saturate"][severity - 1]
            s = hsv.copy()
            s[..., 1] = np.clip(s[..., 1] * a + off, 0, 1)
            got = corrupt(x, "saturate", severity, preset).permute(0, 2, 3, 1).numpy()
            np.testing.assert_allclose(got, np.clip(hsv_to_rgb(s), 0, 1), atol=1e-12)


def test_hsv_round_trip():
    x = _random_images()
    torch.testing.assert_close(ops.hsv_to_rgb(ops.rgb_to_hsv(x)), x)


def test_pixelate_matches_pil_box_resize():
    for preset, side in (("cifar10-c", 32), ("tinyimagenet-c", 64)):
        x = _random_images(2, side, side).float()
        for severity, c in enumerate(PRESETS[preset]["pixelate"], 1):
            small = int(side * c)
            expected = np.empty(x.shape, dtype=np.float32)
            for i in range(2):
                for ch in range(3):
                    im = Image.fromarray(x[i, ch].numpy(), mode="F")
                    im = im.resize((small, small), Image.BOX).resize((side, side), Image.BOX)
                    expected[i, ch] = np.asarray(im)
            got = corrupt(x, "pixelate", severity, preset).numpy()
            np.testing.assert_allclose(got, np.clip(expected, 0, 1), atol=1e-5)


def test_jpeg_matches_pil_round_trip():
    x = (torch.randint(0, 256, (2, 3, 32, 32), generator=torch.Generator().manual_seed(0)).float()) / 255
    y = corrupt(x, "jpeg_compression", 5)  # quality 40
    for i in range(2):
        buf = io.BytesIO()
        Image.fromarray((x[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(buf, "JPEG", quality=40)
        expected = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255
        np.testing.assert_allclose(y[i].permute(1, 2, 0).numpy(), expected, atol=1e-6)


def test_gaussian_blur_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage", reason="scipy is needed for this cross-check")
    x = _random_images()
    for preset in PRESET_NAMES:
        for severity, sigma in enumerate(PRESETS[preset]["gaussian_blur"], 1):
            expected = ndimage.gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode="nearest", truncate=4.0)
            np.testing.assert_allclose(corrupt(x, "gaussian_blur", severity, preset).numpy(), expected, atol=1e-12)


def _reference_disk(radius: float, alias_blur: float) -> np.ndarray:
    """The originals' disk(): 17x17 disk, normalised, then OpenCV GaussianBlur 3x3 (reflect-101)."""
    ndimage = pytest.importorskip("scipy.ndimage", reason="scipy is needed for this cross-check")
    t = np.arange(-8, 9)
    d = (t[:, None] ** 2 + t[None, :] ** 2 <= radius**2).astype(np.float64)
    d /= d.sum()
    g = np.exp(-((np.arange(3) - 1.0) ** 2) / (2 * alias_blur**2))
    g /= g.sum()
    return ndimage.correlate(d, np.outer(g, g), mode="mirror")


def test_defocus_blur_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage", reason="scipy is needed for this cross-check")
    x = _random_images(2, 32, 32)
    for preset in PRESET_NAMES:
        for severity, (radius, alias) in enumerate(PRESETS[preset]["defocus_blur"], 1):
            k = _reference_disk(radius, alias)
            expected = np.stack(
                [np.stack([ndimage.correlate(x[i, c].numpy(), k, mode="mirror") for c in range(3)]) for i in range(2)]
            )
            got = corrupt(x, "defocus_blur", severity, preset).numpy()
            np.testing.assert_allclose(got, np.clip(expected, 0, 1), atol=1e-10)


def test_zoom_blur_matches_scipy_zoom():
    ndimage = pytest.importorskip("scipy.ndimage", reason="scipy is needed for this cross-check")

    def clipped_zoom(img, z):  # make_cifar_c.py's clipped_zoom on one (H, W) channel
        h = img.shape[0]
        ch = int(np.ceil(h / z))
        top = (h - ch) // 2
        out = ndimage.zoom(img[top : top + ch, top : top + ch], z, order=1)
        trim = (out.shape[0] - h) // 2
        return out[trim : trim + h, trim : trim + h]

    for preset, side in (("cifar10-c", 32), ("tinyimagenet-c", 64)):
        x = _random_images(1, side, side)
        for severity in (1, 5):
            zooms = PRESETS[preset]["zoom_blur"][severity - 1]
            a = x[0].numpy()
            expected = np.stack([(c + sum(clipped_zoom(c, z) for z in zooms)) / (len(zooms) + 1) for c in a])
            np.testing.assert_allclose(corrupt(x, "zoom_blur", severity, preset)[0].numpy(), expected, atol=1e-10)


def test_elastic_warp_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage", reason="scipy is needed for this cross-check")
    g = torch.Generator().manual_seed(1)
    x = _random_images(2, 32, 32)
    points = torch.tensor([[26.0, 26.0], [26.0, 6.0], [6.0, 6.0]], dtype=torch.float64)
    moved = points + 4 * torch.rand((2, 3, 2), generator=g, dtype=torch.float64) - 2
    dx = 3 * torch.rand((2, 32, 32), generator=g, dtype=torch.float64) - 1.5
    dy = 3 * torch.rand((2, 32, 32), generator=g, dtype=torch.float64) - 1.5
    got = digital.elastic_warp(x, points, moved, dx, dy).numpy()
    rows, cols = np.mgrid[0:32, 0:32].astype(np.float64)
    for i in range(2):
        # inverse affine in (x, y), rewritten for scipy's (row, col) order
        a = np.linalg.solve(np.c_[moved[i].numpy(), np.ones(3)], points.numpy()).T
        matrix = np.array([[a[1, 1], a[1, 0]], [a[0, 1], a[0, 0]]])
        offset = np.array([a[1, 2], a[0, 2]])
        for c in range(3):
            warped = ndimage.affine_transform(x[i, c].numpy(), matrix, offset, order=1, mode="mirror")
            coords = [rows + dy[i].numpy(), cols + dx[i].numpy()]
            expected = ndimage.map_coordinates(warped, coords, order=1, mode="reflect")
            np.testing.assert_allclose(got[i, c], expected, atol=1e-6)


# ---------------------------------------------------------------- vectorised loops vs the originals' loops


def _sequential_shuffle(x: np.ndarray, shifts: np.ndarray, d: int) -> np.ndarray:
    """The originals' glass-blur loop on one (H, W, C) image, with the numpy 'swap' as written."""
    x = x.copy()
    h, w = x.shape[:2]
    for hh in range(h - d, d, -1):
        for ww in range(w - d, d, -1):
            dx, dy = shifts[hh - d - 1, ww - d - 1]
            hp, wp = hh + dy, ww + dx
            x[hh, ww], x[hp, wp] = x[hp, wp], x[hh, ww]
    return x


@pytest.mark.parametrize("d", [1, 2, 3])
def test_local_shuffle_equals_sequential_loop(d):
    g = torch.Generator().manual_seed(d)
    x = torch.rand((3, 3, 14, 17), generator=g, dtype=torch.float64)
    shifts = torch.randint(-d, d, (3, 14 - 2 * d, 17 - 2 * d, 2), generator=g)
    got = blur.local_shuffle(x, shifts, d)
    for i in range(3):
        expected = _sequential_shuffle(x[i].permute(1, 2, 0).numpy(), shifts[i].numpy(), d)
        np.testing.assert_array_equal(got[i].permute(1, 2, 0).numpy(), expected)


def _imagemagick_motion_blur(img: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick MotionBlurImage on one (H, W) channel, written as its C loop."""
    width = 2 * math.ceil(radius) + 1
    k = np.exp(-(np.arange(width) ** 2) / (2 * sigma**2))
    k /= k.sum()
    px, py = width * math.sin(math.radians(angle)), width * math.cos(math.radians(angle))
    hyp = math.hypot(px, py)
    h, w = img.shape
    out = np.zeros_like(img)
    for y in range(h):
        for x in range(w):
            for i in range(width):
                u = min(max(x + math.ceil(i * py / hyp - 0.5), 0), w - 1)
                v = min(max(y + math.ceil(i * px / hyp - 0.5), 0), h - 1)
                out[y, x] += k[i] * img[v, u]
    return out


def test_motion_blur_matches_imagemagick_loop():
    x = _random_images(4, 12, 13)
    angles = torch.tensor([-45.0, -10.3, 30.0, -100.0], dtype=torch.float64)  # the last as in snow
    got = ops.motion_blur(x, 4, 1.5, angles)
    for i in range(4):
        for c in range(3):
            expected = _imagemagick_motion_blur(x[i, c].numpy(), 4, 1.5, angles[i].item())
            np.testing.assert_allclose(got[i, c].numpy(), expected, atol=1e-12)


# ---------------------------------------------------------------- spatter's OpenCV steps


def test_canny_marks_one_side_of_a_step():
    img = torch.zeros(1, 1, 10, 12)
    img[..., 6:] = 255
    edges = spatter.canny(img, 50, 150)[0, 0]
    assert edges.any(0).nonzero().flatten().tolist() == [5] and edges[:, 5].all()  # gradient ties go to the left pixel
    assert not spatter.canny(torch.full((1, 1, 10, 12), 100.0), 50, 150).any()


def test_chamfer_distance_is_shortest_mask_path():
    zero = torch.zeros(1, 1, 9, 11, dtype=torch.bool)
    zero[0, 0, 2, 3] = zero[0, 0, 7, 9] = True
    got = spatter.chamfer_distance(zero, 100)[0, 0].numpy()
    steps = [(dy, dx, cost) for dy, dx, cost in spatter._CHAMFER]
    dist = np.where(zero[0, 0].numpy(), 0.0, np.inf)
    for _ in range(100):  # Bellman-Ford over the mask's moves
        for y in range(9):
            for x in range(11):
                for dy, dx, cost in steps:
                    if 0 <= y + dy < 9 and 0 <= x + dx < 11:
                        dist[y, x] = min(dist[y, x], dist[y + dy, x + dx] + cost)
    np.testing.assert_allclose(got, dist, rtol=1e-6)
    assert got[2, 4] == 1 and got[3, 4] == pytest.approx(1.4) and got[3, 5] == pytest.approx(2.1969)


def test_equalize_hist_formula():
    img = torch.tensor([[3.0, 3.0, 5.0, 9.0], [9.0, 9.0, 9.0, 20.0]]).view(1, 1, 2, 4)
    got = spatter.equalize_hist(img)[0, 0]
    # levels 3 (x2), 5, 9 (x4), 20; cdf above the darkest level over 8 - 2 pixels
    expected = torch.tensor([[0.0, 0.0, round(255 / 6), round(255 * 5 / 6)], [212.0, 212.0, 212.0, 255.0]])
    torch.testing.assert_close(got, expected)
    flat = spatter.equalize_hist(torch.full((1, 1, 2, 2), 7.0))
    assert (flat == 7).all()


def test_plasma_fractal_range():
    m = weather.plasma_fractal(3, 32, 2.0, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert m.shape == (3, 32, 32)
    assert m.dtype == torch.float64
    assert torch.equal(m.amin((1, 2)), torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(m.amax((1, 2)), torch.ones(3, dtype=torch.float64))


# ---------------------------------------------------------------- determinism, dtypes, frost


@pytest.mark.parametrize("name", ALL)
def test_seeded_determinism(name):
    if name == "frost" and not HAS_FROST:
        pytest.skip(FROST_SKIP)
    x = _random_images(4, 32, 32).float()
    a = corrupt(x, name, 3, generator=7)
    assert torch.equal(a, corrupt(x, name, 3, generator=7))
    assert torch.equal(a, corrupt(x, name, 3, generator=torch.Generator().manual_seed(7)))
    assert torch.equal(a, corrupt(x, name, 3, generator=8)) == (name in DETERMINISTIC)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_keeps_dtype(dtype):
    x = _random_images(2, 16, 16).to(dtype)
    for name in ("gaussian_noise", "motion_blur", "brightness", "jpeg_compression"):
        y = corrupt(x, name, 2, generator=0)
        assert y.dtype == dtype and y.shape == x.shape


def test_empty_batch():
    x = torch.zeros(0, 3, 32, 32)
    assert corrupt(x, "snow", 1).shape == (0, 3, 32, 32)


def test_frost_uses_the_first_five_photos():
    if not HAS_FROST:
        pytest.skip(FROST_SKIP)
    photos = weather.frost_photos(0.2, torch.device("cpu"))
    assert len(photos) == 5 and all(p.shape[0] == 3 and p.min() >= 0 and p.max() <= 255 for p in photos)
    assert min(p.shape[1] for p in photos) == 63  # frost2/3 are 315 px high, shrunk by 0.2
    with pytest.raises(ValueError, match="frost photos"):
        corrupt(torch.rand(1, 3, 64, 64), "frost", 1, "cifar10-c")


def test_frost_crops_are_windows_of_the_photos():
    if not HAS_FROST:
        pytest.skip(FROST_SKIP)
    photos = weather.frost_photos(0.2, torch.device("cpu"))
    crops = weather.frost(torch.zeros(6, 3, 32, 32), (0.0, 255.0, 0.2), torch.Generator().manual_seed(0))
    for crop in crops:
        found = []
        for k, photo in enumerate(photos):
            windows = photo.unfold(1, 32, 1).unfold(2, 32, 1)  # (3, rows, cols, 32, 32)
            hits = (windows == crop[:, None, None]).flatten(3).all(3).all(0).nonzero().tolist()
            found += [(k, *hit) for hit in hits]
        assert found, "a frost crop that is no window of any photo"


def test_frost_without_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(weather.importlib.util, "find_spec", lambda name: None)
    weather.frost_photos.cache_clear()
    try:
        with pytest.raises(ImportError, match="pip install imagecorruptions"):
            corrupt(torch.rand(1, 3, 32, 32), "frost", 1)
    finally:
        weather.frost_photos.cache_clear()


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "blur"}, r"name must be one of \[.*'gaussian_noise'.*'saturate'\]"),
        ({"preset": "imagenet-c"}, r"preset must be one of \['cifar10-c', 'tinyimagenet-c'\]"),
        ({"severity": 0}, "severity"),
        ({"severity": 6}, "severity"),
        ({"severity": 2.0}, "severity"),
        ({"severity": True}, "severity"),
        ({"x": torch.rand(3, 32, 32)}, r"x must have shape \(N, 3, H, W\)"),
        ({"x": torch.rand(2, 1, 32, 32)}, r"x must have shape \(N, 3, H, W\)"),
        ({"x": torch.rand(2, 3, 4, 32)}, "at least 8"),
        ({"x": torch.zeros(2, 3, 32, 32, dtype=torch.uint8)}, "x must be a float tensor"),
        ({"x": torch.full((2, 3, 32, 32), 255.0)}, r"x must hold finite values in \[0, 1\]"),
        ({"x": torch.full((2, 3, 32, 32), -0.1)}, r"x must hold finite values in \[0, 1\]"),
        ({"x": torch.full((2, 3, 32, 32), float("nan"))}, r"x must hold finite values in \[0, 1\]"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    args = {"x": torch.rand(2, 3, 32, 32), "name": "contrast", "severity": 1, "preset": "cifar10-c"} | kwargs
    with pytest.raises(ValueError, match=match):
        corrupt(**args)


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        corrupt(np.zeros((1, 3, 32, 32)), "contrast", 1)
    with pytest.raises(TypeError, match="generator"):
        corrupt(torch.rand(1, 3, 32, 32), "contrast", 1, generator="seed")


def test_small_excursions_are_clipped_not_rejected():
    x = torch.rand(2, 3, 32, 32)
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 1 + 5e-4, -5e-4
    y = corrupt(x, "contrast", 1)
    assert y.min() >= 0 and y.max() <= 1
