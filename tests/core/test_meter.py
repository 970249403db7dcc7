import json
import os
import socket

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from selectivity import SelectivityMeter

from .models import TinyResNet, hook_count
from .reference import class_means_loop, selectivity_loop


def _data(n=90, classes=7, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 6, 6, generator=gen), torch.randint(0, classes, (n,), generator=gen)


def test_streaming_equals_one_full_batch_and_the_loop_reference():
    torch.manual_seed(0)
    net = TinyResNet(num_classes=7).eval()
    x, y = _data()
    with torch.no_grad():
        block1 = net.layer1(net.stem(x)).mean(dim=(2, 3)).double().numpy()
    with SelectivityMeter(net, num_classes=7) as full, SelectivityMeter(net, num_classes=7) as stream:
        full.update(x, y)
        for start, stop in [(0, 1), (1, 30), (30, 31), (31, 90)]:  # uneven batches
            stream.update(x[start:stop], y[start:stop])
        a, b = full.compute(), stream.compute()
    for name in ["layer1", "layer2"]:
        torch.testing.assert_close(a.per_unit[name], b.per_unit[name], rtol=1e-6, atol=1e-7)  # conv kernels differ by batch size in float32
    ref = selectivity_loop(class_means_loop(block1, y.numpy(), 7))
    np.testing.assert_allclose(a.per_unit["layer1"].numpy(), ref, rtol=1e-5, atol=1e-7)
    assert a.per_layer["layer1"] == pytest.approx(float(ref.mean()), rel=1e-5)
    assert a.mean == pytest.approx((a.per_layer["layer1"] + a.per_layer["layer2"]) / 2)
    assert a.counts.tolist() == torch.bincount(y, minlength=7).double().tolist()


def test_state_is_fixed_shape_float64():
    meter = SelectivityMeter(None, num_classes=5)
    for seed in range(3):
        acts, y = torch.rand(40, 8, generator=torch.Generator().manual_seed(seed)), torch.arange(40) % 5
        meter.update_activations({"fc": acts}, y)
        assert meter.sums["fc"].shape == (5, 8) and meter.sums["fc"].dtype == torch.float64
        assert meter.counts.shape == (5,)


def test_update_activations_reduces_conv_maps_and_reset_forgets():
    meter = SelectivityMeter(None, num_classes=3)
    maps = torch.zeros(3, 2, 4, 4)
    maps[0, 0] = 2.0  # unit 0 answers class 0 only
    maps[:, 1] = 1.0  # unit 1 answers all alike
    meter.update_activations({"conv": maps}, torch.tensor([0, 1, 2]))
    si = meter.compute().per_unit["conv"]
    assert si[0].item() == pytest.approx(1.0, abs=1e-6) and si[1].item() == 0.0
    meter.reset()
    with pytest.raises(RuntimeError, match="seen no data"):
        meter.compute()


def test_to_frame_has_one_row_per_unit():
    meter = SelectivityMeter(None, num_classes=3)
    acts = torch.tensor([[0.0, 5.0], [3.0, 5.0], [0.0, 5.0]])
    meter.update_activations(acts, torch.tensor([0, 1, 2]))
    frame = meter.compute().to_frame()
    assert list(frame.columns) == ["layer", "layer_index", "unit", "si", "preferred_class", "mu_max", "dead"]
    assert len(frame) == 2 and not frame.dead.any()
    assert frame.loc[0, "preferred_class"] == 1 and frame.loc[0, "mu_max"] == 3.0
    assert frame.loc[0, "si"] == pytest.approx(1.0, abs=1e-6) and frame.loc[1, "si"] == 0.0


def test_to_frame_marks_dead_units_and_gives_them_no_preferred_class(tmp_path):
    meter = SelectivityMeter(None, num_classes=3)
    acts = torch.tensor([[0.0, 0.0, 2.0], [3.0, 0.0, 2.0], [0.0, 0.0, 1.0]])
    meter.update_activations({"a": acts[:, :2], "b": acts[:, 2:]}, torch.tensor([0, 1, 2]))
    frame = meter.compute().to_frame()
    assert frame.dead.tolist() == [False, True, False]
    assert frame.preferred_class[0] == 1 and frame.preferred_class[2] == 0
    assert pd.isna(frame.preferred_class[1]) and frame.si[1] == 0  # not class 0; SI 0 as in the mean
    frame.to_csv(tmp_path / "si_per_unit.csv", index=False)
    read = pd.read_csv(tmp_path / "si_per_unit.csv")
    assert read.dead.tolist() == [False, True, False] and read.preferred_class.isna().tolist() == [False, True, False]
    assert (tmp_path / "si_per_unit.csv").read_text().splitlines()[2] == "a,0,1,0.0,,0.0,True"


def test_merging_shards_equals_one_pass():
    acts, y = torch.rand(100, 6) ** 2, torch.randint(0, 4, (100,))
    whole, a, b = (SelectivityMeter(None, num_classes=4) for _ in range(3))
    whole.update_activations(acts, y)
    a.update_activations(acts[:37], y[:37])
    b.update_activations(acts[37:], y[37:])
    a.merge(b)
    torch.testing.assert_close(a.compute().per_unit["layer"], whole.compute().per_unit["layer"])


def test_dead_units_and_live_mean_si():
    acts = torch.tensor([[2.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 3.0]])
    y = torch.tensor([0, 1, 2])
    meter = SelectivityMeter(None, num_classes=3)
    meter.update_activations({"a": acts[:, :2], "b": acts[:, 2:]}, y)
    result = meter.compute()
    assert result.dead["a"].tolist() == [False, True] and result.dead["b"].tolist() == [False, False]
    summary = result.dead_summary
    # a: unit 0 answers class 0 only (SI 1), unit 1 is dead; b: flat (SI 0) and class-2-only (SI 1)
    assert summary["per_layer_dead_fraction"] == {"a": 0.5, "b": 0.0}
    assert summary["per_layer_live_mean"] == pytest.approx({"a": 1.0, "b": 0.5})
    assert result.dead_fraction == 0.25 and result.live_mean == pytest.approx(0.75)
    assert result.mean == pytest.approx((0.5 + 0.5) / 2)  # the dead unit pulls the plain mean down


def test_dead_units_stream_and_merge():
    acts = torch.rand(40, 3)
    acts[:, 1] = 0
    acts[:30, 2] = 0  # responds only in the second shard
    y = torch.arange(40) % 4
    a, b = SelectivityMeter(None, num_classes=4), SelectivityMeter(None, num_classes=4)
    a.update_activations(acts[:30], y[:30])
    b.update_activations(acts[30:], y[30:])
    assert a.compute().dead["layer"].tolist() == [False, True, True]
    a.merge(b)
    assert a.compute().dead["layer"].tolist() == [False, True, False]
    a.reset()
    assert a.positive == {}


def test_negative_activations_warn_once():
    meter = SelectivityMeter(None, num_classes=2)
    with pytest.warns(RuntimeWarning, match="negative activations"):
        meter.update_activations({"x": torch.tensor([[-1.0], [1.0]])}, torch.tensor([0, 1]))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meter.update_activations({"x": torch.tensor([[-1.0], [1.0]])}, torch.tensor([0, 1]))


def test_bad_input():
    meter = SelectivityMeter(TinyResNet(), num_classes=4)
    with pytest.raises(ValueError, match="captured 3 samples but 2 labels"):
        meter.update(torch.rand(3, 3, 4, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        meter.update(torch.rand(2, 3, 4, 4), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="activations are for layers"):
        meter.update_activations({"other": torch.rand(2, 6)}, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        SelectivityMeter(None, num_classes=1)
    meter.close()
    assert hook_count(meter.model) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _distributed_data():
    acts, y = torch.rand(64, 5, generator=torch.Generator().manual_seed(1)), torch.arange(64) % 6
    acts[:32, 0] = 0  # silent on rank 0's shard only: alive once the ranks' counts are summed
    acts[:, 4] = 0  # dead everywhere
    return acts, y


def _distributed_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        acts, y = _distributed_data()
        meter = SelectivityMeter(None, num_classes=6)
        shard = slice(rank * 32, (rank + 1) * 32)  # each rank sees half the data
        meter.update_activations({"fc": acts[shard]}, y[shard])
        result = meter.compute()
        local_counts = meter.counts.tolist()
        with open(f"{out}.{rank}", "w") as f:
            json.dump({"si": result.per_unit["fc"].tolist(), "counts": result.counts.tolist(), "local": local_counts,
                       "dead": result.dead["fc"].tolist()}, f)
    finally:
        dist.destroy_process_group()


def test_distributed_state_is_summed_across_two_gloo_ranks(tmp_path):
    out = str(tmp_path / "rank")
    mp.spawn(_distributed_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    acts, y = _distributed_data()
    single = SelectivityMeter(None, num_classes=6)
    single.update_activations({"fc": acts}, y)
    expected = single.compute().per_unit["fc"].tolist()
    for rank in range(2):
        got = json.loads(open(f"{out}.{rank}").read())
        np.testing.assert_allclose(got["si"], expected, rtol=1e-12)
        assert got["counts"] == torch.bincount(y, minlength=6).double().tolist()
        assert sum(got["local"]) == 32  # the local state was not overwritten by the reduction
        assert got["dead"] == [False, False, False, False, True]
