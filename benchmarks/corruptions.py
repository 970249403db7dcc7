"""Images per second of each corruption: batched torch (``corrupt``) vs a per-image numpy loop.

The baseline below is written in the style of the original generator (make_cifar_c.py):
one image at a time, numpy / scipy.ndimage / PIL, the same constants (taken from
``PRESETS``). Where the original calls OpenCV, scikit-image or ImageMagick, the baseline
uses the scipy / numpy equivalent (these libraries are not project dependencies), so it
is a stand-in for the original's speed, not a copy: OpenCV's C filters are faster than
scipy's on 32 px images (defocus, spatter, elastic's warp), ImageMagick's PNG round
trips slower than numpy's shift-and-add (motion blur, snow). The frost photos are
decoded once here, while the original re-reads the file for every image.

Both sides run in one process, interleaved round by round; the table gives the median
over the rounds. Usage::

    .venv/bin/python benchmarks/corruptions.py [--batch 256] [--threads 2] [--severity 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import statistics
import time
import zipfile
from functools import cache
from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
from PIL import Image
from scipy import ndimage

from selectivity.analysis.corruptions import PRESETS, corrupt, corruption_names
from selectivity.analysis.corruptions.weather import FROST_FILES, frost_folder

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpeg.zip"
P = PRESETS["cifar10-c"]

# ---------------------------------------------------------------- per-image numpy baseline (x: HxWx3 float in [0, 1])


def _clipped_zoom(img, z):
    h = img.shape[0]
    ch = int(np.ceil(h / z))
    top = (h - ch) // 2
    out = ndimage.zoom(img[top : top + ch, top : top + ch], (z, z, 1), order=1)
    trim = (out.shape[0] - h) // 2
    return out[trim : trim + h, trim : trim + h]


def _motion(img, radius, sigma, angle):
    """ImageMagick's motion-blur taps as numpy shift-and-add on one HxWxC image."""
    width = 2 * math.ceil(radius) + 1
    i = np.arange(width)
    k = np.exp(-(i**2) / (2 * sigma**2))
    k /= k.sum()
    dx = np.ceil(i * math.cos(math.radians(angle)) - 0.5).astype(int)
    dy = np.ceil(i * math.sin(math.radians(angle)) - 0.5).astype(int)
    h, w = img.shape[:2]
    out = np.zeros_like(img)
    for t in range(width):
        rows = np.clip(np.arange(h) + dy[t], 0, h - 1)
        cols = np.clip(np.arange(w) + dx[t], 0, w - 1)
        out += k[t] * img[rows][:, cols]
    return out


def _disk(radius, alias_blur):
    t = np.arange(-8, 9)
    d = (t[:, None] ** 2 + t[None, :] ** 2 <= radius**2).astype(np.float32)
    d /= d.sum()
    g = np.exp(-((np.arange(3) - 1.0) ** 2) / (2 * alias_blur**2))
    return ndimage.correlate(d, np.outer(g, g) / g.sum() ** 2, mode="mirror")


def _plasma(size, decay):
    m = np.zeros((size, size))
    step, wibble = size, 100.0
    while step >= 2:
        half = step // 2
        c = m[::step, ::step]
        sq = c + np.roll(c, -1, 0)
        sq += np.roll(sq, -1, 1)
        m[half::step, half::step] = sq / 4 + wibble * np.random.uniform(-wibble, wibble, sq.shape)
        dr, ul = m[half::step, half::step], m[::step, ::step]
        lt = dr + np.roll(dr, 1, 0) + ul + np.roll(ul, -1, 1)
        m[::step, half::step] = lt / 4 + wibble * np.random.uniform(-wibble, wibble, lt.shape)
        tt = dr + np.roll(dr, 1, 1) + ul + np.roll(ul, -1, 0)
        m[half::step, ::step] = tt / 4 + wibble * np.random.uniform(-wibble, wibble, tt.shape)
        step, wibble = half, wibble / decay
    m -= m.min()
    return m / m.max()


@cache
def _frost_photos(scale):
    photos = []
    for name in FROST_FILES:
        with Image.open(frost_folder() / name) as im:
            im = im.convert("RGB")
            photos.append(np.asarray(im.resize((round(im.width * scale), round(im.height * scale)), Image.BILINEAR)))
    return photos


def _canny(img):
    """Canny with scipy: Sobel, 4-direction non-maximum suppression, hysteresis by labelling."""
    gx, gy = ndimage.sobel(img, 1, mode="nearest"), ndimage.sobel(img, 0, mode="nearest")
    mag = np.abs(gx) + np.abs(gy)
    p = np.pad(mag, 1)
    angle = np.rad2deg(np.arctan2(gy, gx)) % 180
    sector = np.digitize(angle, [22.5, 67.5, 112.5, 157.5]) % 4
    offsets = [((0, 1), (0, -1)), ((1, 1), (-1, -1)), ((1, 0), (-1, 0)), ((1, -1), (-1, 1))]
    keep = np.zeros_like(mag, dtype=bool)
    h, w = img.shape
    for s, ((ay, ax), (by, bx)) in enumerate(offsets):
        a = p[1 + ay : 1 + ay + h, 1 + ax : 1 + ax + w]
        b = p[1 + by : 1 + by + h, 1 + bx : 1 + bx + w]
        keep |= (sector == s) & (mag > a) & (mag >= b)
    weak = keep & (mag > 50)
    labels, _ = ndimage.label(weak, structure=np.ones((3, 3)))
    strong = np.unique(labels[weak & (mag > 150)])
    return np.isin(labels, strong[strong > 0])


def _spatter(x, c):
    liquid = ndimage.gaussian_filter(np.random.normal(c[0], c[1], x.shape[:2]), c[2], mode="nearest")
    liquid[liquid < c[3]] = 0
    if c[5] == 0:
        layer = (np.clip(liquid, 0, 1) * 255).astype(np.uint8).astype(np.float64)
        edges = _canny(layer)
        dist = np.minimum(ndimage.distance_transform_edt(~edges), 20) if edges.any() else np.full(layer.shape, 20.0)
        dist = np.floor(np.clip(ndimage.uniform_filter(dist, 3, mode="mirror"), 0, 20))
        hist = np.bincount(dist.astype(int).ravel(), minlength=256)
        cdf = hist.cumsum()
        first = cdf[cdf > 0][0]
        dist = np.round((cdf[dist.astype(int)] - first) * 255 / max(dist.size - first, 1))
        dist = np.clip(ndimage.correlate(dist, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]), mode="mirror"), 0, 255)
        m = layer * np.round(ndimage.uniform_filter(dist, 3, mode="mirror"))
        m = m / max(m.max(), 1e-12) * c[4]
        return x + m[..., None] * np.array([175, 238, 238]) / 255
    m = ndimage.gaussian_filter((liquid > c[3]).astype(np.float64), c[4], mode="nearest")
    m[m < 0.8] = 0
    return x * (1 - m[..., None]) + np.array([63, 42, 20]) / 255 * m[..., None]


def _elastic(x, c):
    side = x.shape[0]
    alpha, sigma, jitter = (v * side for v in c)
    ctr, d = side // 2, side // 3
    pts = np.array([[ctr + d, ctr + d], [ctr + d, ctr - d], [ctr - d, ctr - d]], dtype=np.float64)
    a = np.linalg.solve(np.c_[pts + np.random.uniform(-jitter, jitter, pts.shape), np.ones(3)], pts).T
    matrix, offset = np.array([[a[1, 1], a[1, 0]], [a[0, 1], a[0, 0]]]), np.array([a[1, 2], a[0, 2]])
    channels = [ndimage.affine_transform(x[..., k], matrix, offset, order=1, mode="mirror") for k in range(3)]
    warped = np.stack(channels, -1)
    noise = [np.random.uniform(-1, 1, x.shape[:2]) for _ in range(2)]
    field = [ndimage.gaussian_filter(n, sigma, mode="reflect", truncate=3) * alpha for n in noise]
    rows, cols = np.mgrid[0 : x.shape[0], 0 : x.shape[1]]
    coords = [rows + field[1], cols + field[0]]
    return np.stack([ndimage.map_coordinates(warped[..., k], coords, order=1, mode="reflect") for k in range(3)], -1)


def _glass(x, c):
    sigma, d, iterations = c
    x = (ndimage.gaussian_filter(x, (sigma, sigma, 0), mode="nearest") * 255).astype(np.uint8)
    h, w = x.shape[:2]
    for _ in range(iterations):
        for hh in range(h - d, d, -1):
            for ww in range(w - d, d, -1):
                dx, dy = np.random.randint(-d, d, size=(2,))
                x[hh, ww], x[hh + dy, ww + dx] = x[hh + dy, ww + dx], x[hh, ww]
    return ndimage.gaussian_filter(x / 255.0, (sigma, sigma, 0), mode="nearest")


def _snow(x, c):
    layer = _clipped_zoom(np.random.normal(c[0], c[1], (*x.shape[:2], 1)), c[2])
    layer[layer < c[3]] = 0
    layer = (np.clip(layer, 0, 1) * 255).astype(np.uint8) / 255
    layer = _motion(layer, c[4], c[5], np.random.uniform(-135, -45))
    gray = (x @ np.array([0.299, 0.587, 0.114]))[..., None]
    x = c[6] * x + (1 - c[6]) * np.maximum(x, gray * 1.5 + 0.5)
    return x + layer + np.rot90(layer, k=2)


def _frost(x, c):
    photo = _frost_photos(c[2])[np.random.randint(5)]
    top = np.random.randint(0, photo.shape[0] - x.shape[0])
    left = np.random.randint(0, photo.shape[1] - x.shape[1])
    return c[0] * x + c[1] * photo[top : top + x.shape[0], left : left + x.shape[1]] / 255


def _fog(x, c):
    peak = x.max()
    x = x + c[0] * _plasma(32, c[1])[: x.shape[0], : x.shape[1], None]
    return x * peak / (peak + c[0])


def _hsv(x, channel, fn):
    hsv = rgb_to_hsv(x)
    hsv[..., channel] = np.clip(fn(hsv[..., channel]), 0, 1)
    return hsv_to_rgb(hsv)


def _pil(x, fn):
    return np.asarray(fn(Image.fromarray((x * 255).round().astype(np.uint8)))) / 255


def _jpeg(im, quality):
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return Image.open(buf).convert("RGB")


BASELINE = {
    "gaussian_noise": lambda x, c: x + np.random.normal(size=x.shape, scale=c),
    "shot_noise": lambda x, c: np.random.poisson(x * c) / c,
    "impulse_noise": lambda x, c: np.where(np.random.rand(*x.shape) < c, (np.random.rand(*x.shape) < 0.5) * 1.0, x),
    "defocus_blur": lambda x, c: np.stack(
        [ndimage.correlate(x[..., k], _disk(*c), mode="mirror") for k in range(3)], 2
    ),
    "glass_blur": _glass,
    "motion_blur": lambda x, c: _motion(x, c[0], c[1], np.random.uniform(-45, 45)),
    "zoom_blur": lambda x, c: (x + sum(_clipped_zoom(x, z) for z in c)) / (len(c) + 1),
    "snow": _snow,
    "frost": _frost,
    "fog": _fog,
    "brightness": lambda x, c: _hsv(x, 2, lambda v: v + c),
    "contrast": lambda x, c: (x - x.mean((0, 1))) * c + x.mean((0, 1)),
    "elastic_transform": _elastic,
    "pixelate": lambda x, c: _pil(x, lambda im: im.resize((int(32 * c),) * 2, Image.BOX).resize((32, 32), Image.BOX)),
    "jpeg_compression": lambda x, c: _pil(x, lambda im: _jpeg(im, c)),
    "speckle_noise": lambda x, c: x + x * np.random.normal(size=x.shape, scale=c),
    "gaussian_blur": lambda x, c: ndimage.gaussian_filter(x, (c, c, 0), mode="nearest"),
    "spatter": _spatter,
    "saturate": lambda x, c: _hsv(x, 1, lambda s: s * c[0] + c[1]),
}


def run_baseline(images: np.ndarray, name: str, severity: int) -> np.ndarray:
    """The per-image loop: float conversion, the corruption, clip, as the original does per image."""
    c = P[name][severity - 1]
    return np.stack([np.clip(BASELINE[name](img / 255.0, c), 0, 1) for img in images])


# ---------------------------------------------------------------- timing


def load_images(count: int) -> np.ndarray:
    if not DATA.is_file():
        raise SystemExit(f"{DATA} not found: the benchmark corrupts real CIFAR-10 test images")
    with zipfile.ZipFile(DATA) as z:
        names = sorted(n for n in z.namelist() if n.startswith("cifar10/test/") and n.endswith(".jpg"))
        names = names[:: len(names) // count][:count]
        return np.stack([np.asarray(Image.open(io.BytesIO(z.read(n))).convert("RGB")) for n in names])


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = load_images(args.batch)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    print(
        f"torch {torch.__version__}, {args.threads} threads, CPU; batch {args.batch} CIFAR-10 test images, "
        f"severity {args.severity}, preset cifar10-c; median of {args.rounds} interleaved rounds; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(f"{'corruption':<18} {'torch img/s':>12} {'loop img/s':>11} {'ratio':>7}")
    for name in corruption_names("all"):
        corrupt(x[:8], name, args.severity, generator=0)  # warm-up: caches, first-call costs
        run_baseline(images[:2], name, args.severity)
        t_torch, t_loop = [], []
        for r in range(args.rounds):
            t_torch.append(seconds(lambda n=name, r=r: corrupt(x, n, args.severity, generator=r)))
            t_loop.append(seconds(lambda n=name: run_baseline(images, n, args.severity)))
        fast, slow = args.batch / statistics.median(t_torch), args.batch / statistics.median(t_loop)
        print(f"{name:<18} {fast:>12.0f} {slow:>11.0f} {fast / slow:>6.1f}x", flush=True)


if __name__ == "__main__":
    main()
