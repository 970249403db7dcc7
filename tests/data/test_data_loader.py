"""DeviceLoader and the batched crop/flip, against slow per-image references."""

from __future__ import annotations

import itertools

import pytest
import torch

from selectivity.data import Augment, AugmentParams, DatasetSplit, DeviceLoader, crop_flip, pad_images


def make_split(n=37, c=3, h=6, w=5, seed=0) -> DatasetSplit:
    """Random images; label i = index i, so a batch's labels say which samples it holds."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)
    return DatasetSplit(images, torch.arange(n), [str(i) for i in range(n)], (0.5,) * 3, (0.25,) * 3, "t", "t")


def reference_crop_flip(images: torch.Tensor, index, oy, ox, flip, pad: int) -> torch.Tensor:
    """One image at a time: pad with zeros, slice the window, mirror if asked."""
    n, c, h, w = images.shape
    out = []
    for i, y, x, f in zip(index.tolist(), oy.tolist(), ox.tolist(), flip.tolist()):
        padded = torch.zeros(c, h + 2 * pad, w + 2 * pad, dtype=images.dtype)
        padded[:, pad : pad + h, pad : pad + w] = images[i]
        crop = padded[:, y : y + h, x : x + w]
        out.append(crop.flip(-1) if f else crop)
    return torch.stack(out)


def candidates(image: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Every crop/flip an augmented copy of ``image`` may be."""
    k = 2 * pad + 1
    outs = []
    for y, x, f in itertools.product(range(k), range(k), (False, True)):
        one = lambda t: torch.tensor([t])  # noqa: E731
        outs.append(reference_crop_flip(image[None], one(0), one(y), one(x), one(f), pad)[0])
    return outs


def test_crop_flip_matches_reference():
    split = make_split(n=20, h=7, w=9)
    pad = 3
    g = torch.Generator().manual_seed(1)
    index = torch.randint(0, 20, (64,), generator=g)
    oy, ox = torch.randint(0, 2 * pad + 1, (2, 64), generator=g)
    oy[:4], ox[:4] = torch.tensor([0, 0, 6, 6]), torch.tensor([0, 6, 0, 6])  # all four corners
    flip = torch.rand(64, generator=g) < 0.5
    got = crop_flip(pad_images(split.images, pad), index, AugmentParams(oy, ox, flip), (7, 9))
    assert got.dtype == torch.uint8 and got.shape == (64, 3, 7, 9)
    assert torch.equal(got, reference_crop_flip(split.images, index, oy, ox, flip, pad))


def test_pad_images_zero_border():
    x = torch.full((2, 3, 4, 4), 9, dtype=torch.uint8)
    p = pad_images(x, 2)
    assert p.shape == (2, 3, 8, 8) and p.sum() == x.sum()
    assert torch.equal(p[:, :, 2:6, 2:6], x) and pad_images(x, 0) is x


@pytest.mark.parametrize("drop_last", [False, True])
def test_every_sample_once_per_epoch(drop_last):
    split = make_split(n=37)
    loader = DeviceLoader(split, batch_size=8, drop_last=drop_last, seed=3)
    assert len(loader) == (4 if drop_last else 5)
    orders = []
    for _ in range(3):
        batches = list(loader)
        assert len(batches) == len(loader)
        assert [len(y) for _, y in batches] == ([8] * 4 if drop_last else [8, 8, 8, 8, 5])
        seen = torch.cat([y for _, y in batches])
        if not drop_last:
            assert sorted(seen.tolist()) == list(range(37))
        else:
            assert len(set(seen.tolist())) == 32
        for x, y in batches:  # no augmentation: x is exactly the stored image / 255
            assert torch.equal(x, split.images[y].float() / 255)
        orders.append(seen)
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])


def test_no_shuffle_keeps_order():
    loader = DeviceLoader(make_split(n=10), batch_size=4, shuffle=False)
    assert torch.cat([y for _, y in loader]).tolist() == list(range(10))


def test_set_epoch_reproduces_batches():
    split = make_split(n=50, h=8, w=8)
    aug = Augment(crop_padding=2, flip=True)
    a = DeviceLoader(split, batch_size=16, augment=aug, seed=7)
    epochs = [[(x.clone(), y.clone()) for x, y in a] for _ in range(3)]
    b = DeviceLoader(split, batch_size=16, augment=aug, seed=7)
    b.set_epoch(2)  # a resumed run
    for (x1, y1), (x2, y2) in zip(epochs[2], b, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert b.epoch == 3
    a.set_epoch(0)
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(epochs[0], a, strict=True))
    c = DeviceLoader(split, batch_size=16, augment=aug, seed=8)
    assert not torch.equal(torch.cat([y for _, y in c]), torch.cat([y for _, y in epochs[0]]))


def test_augmented_samples_are_crops_or_flips_of_their_image():
    split = make_split(n=30, h=5, w=6)
    loader = DeviceLoader(split, batch_size=7, augment=Augment(crop_padding=1, flip=True), seed=0)
    for x, y in loader:
        for xi, yi in zip(x, y):
            assert any(torch.equal(xi, cand.float() / 255) for cand in candidates(split.images[yi], 1))


def test_augment_draw_distribution():
    aug = Augment(crop_padding=4, flip=True, flip_p=0.25)
    p = aug.sample(4000, torch.Generator().manual_seed(0), "cpu")
    assert sorted(set(p.oy.tolist())) == list(range(9)) and sorted(set(p.ox.tolist())) == list(range(9))
    assert 0.2 < p.flip.float().mean().item() < 0.3
    none = Augment(crop_padding=4, crop_p=0.0, flip=True, flip_p=0.0).sample(100, torch.Generator(), "cpu")
    assert (none.oy == 4).all() and (none.ox == 4).all() and not none.flip.any()


def test_always_flip_without_crop():
    split = make_split(n=12)
    loader = DeviceLoader(split, batch_size=5, augment=Augment(flip=True, flip_p=1.0))
    for x, y in loader:
        assert torch.equal(x, split.images[y].flip(-1).float() / 255)


def test_identity_augment_is_identity():
    split = make_split(n=12)
    loader = DeviceLoader(split, batch_size=5, augment=Augment(crop_padding=4, crop_p=0.0, flip=True, flip_p=0.0))
    for x, y in loader:
        assert torch.equal(x, split.images[y].float() / 255)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_output_type_range_and_layout(dtype, channels_last):
    split = make_split(n=20, h=6, w=6)
    split.images[0] = 0
    split.images[1] = 255
    loader = DeviceLoader(split, batch_size=20, shuffle=False, augment=Augment(crop_padding=2, flip=True),
                          dtype=dtype, channels_last=channels_last)
    (x, y), = list(loader)
    assert x.dtype == dtype and x.shape == (20, 3, 6, 6) and y.dtype == torch.int64 and y.shape == (20,)
    assert x.min() >= 0 and x.max() <= 1 and x[1].max() == 1  # 255 -> exactly 1
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert x.is_contiguous(memory_format=fmt)
    assert x.device == y.device == torch.device("cpu")


def test_rejects_bad_arguments():
    split = make_split()
    with pytest.raises(ValueError, match="batch_size"):
        DeviceLoader(split, 0)
    with pytest.raises(ValueError, match="floating"):
        DeviceLoader(split, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="crop_padding"):
        Augment(crop_padding=-1)
    with pytest.raises(ValueError, match="flip_p"):
        Augment(flip=True, flip_p=1.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_loader_matches_reference():
    split = make_split(n=40, h=8, w=8)
    loader = DeviceLoader(split, batch_size=16, device="cuda", augment=Augment(crop_padding=2, flip=True))
    assert loader.images.is_cuda
    seen = []
    for x, y in loader:
        assert x.is_cuda and y.is_cuda
        for xi, yi in zip(x.cpu(), y.cpu()):
            assert any(torch.equal(xi, c.float() / 255) for c in candidates(split.images[yi], 2))
        seen += y.tolist()
    assert sorted(seen) == list(range(40))
