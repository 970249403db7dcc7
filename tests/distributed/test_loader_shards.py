"""Rank slices of the global batch are the one-process batch, cut in pieces (no process group needed)."""

import dataclasses

import pytest
import torch

from selectivity.data import Augment, DeviceLoader, shard_split


@dataclasses.dataclass
class Split:
    images: torch.Tensor
    labels: torch.Tensor


def _split(n=40):
    g = torch.Generator().manual_seed(0)
    return Split(torch.randint(0, 256, (n, 3, 6, 6), generator=g, dtype=torch.uint8), torch.arange(n) % 10)


@pytest.mark.parametrize("world", [2, 4])
def test_each_step_of_w_ranks_is_the_one_process_step_cut_in_w(world):
    split, aug = _split(), Augment(crop_padding=2, flip=True)
    one = DeviceLoader(split, 8, drop_last=True, augment=aug, seed=3)
    ranks = [DeviceLoader(split, 8, drop_last=True, augment=aug, seed=3, rank=r, world_size=world)
             for r in range(world)]
    for epoch in (0, 1):
        for loader in (one, *ranks):
            loader.set_epoch(epoch)
        steps = list(zip(one, *ranks, strict=True))
        assert len(steps) == 5
        for (x, y), *parts in steps:
            assert all(len(p[1]) == 8 // world for p in parts)
            assert torch.equal(torch.cat([p[0] for p in parts]), x)
            assert torch.equal(torch.cat([p[1] for p in parts]), y)


def test_bad_rank_or_batch_is_refused():
    with pytest.raises(ValueError, match="divide"):
        DeviceLoader(_split(), 9, world_size=2, rank=0)
    with pytest.raises(ValueError, match="rank"):
        DeviceLoader(_split(), 8, world_size=2, rank=2)


def test_evaluation_shards_cover_the_split_once_and_may_be_empty():
    split = _split(5)
    shards = [shard_split(split, r, 3) for r in range(3)]
    assert torch.equal(torch.cat([s.labels for s in shards]), split.labels)
    assert [len(s.labels) for s in shards] == [2, 2, 1]
    assert [len(shard_split(split, r, 7).labels) for r in range(7)] == [1, 1, 1, 1, 1, 0, 0]
