"""train.dtype=float64: every path of a run keeps float64 (weights, batches, batch norm, loss),
and sees the same draws as the float32 run of its seed."""

import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from selectivity.core.distributed import SyncBatchNormCPU, convert_sync_batchnorm
from selectivity.data import Augment
from selectivity.models import create_model
from selectivity.runs import build_model
from selectivity.sweep.grid import make_grid, run_id
from selectivity.config import ConfigError, config_to_dict, load_config
from selectivity.train.stacked import StackedModel, _clip_per_network, check_stackable
from selectivity.train.trainer import load_data, train


@pytest.fixture
def float64_default():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def test_the_dtype_key_is_checked_and_leaves_existing_run_ids_alone():
    assert load_config("demo").train.dtype == "float32"
    assert load_config("demo", ["train.dtype=float64"]).train.dtype == "float64"
    with pytest.raises(ConfigError, match=r"train.dtype must be one of \['float32', 'float64'\]"):
        load_config("demo", ["train.dtype=float16"])
    with pytest.raises(ConfigError, match="train.amp=bf16 .* defeats train.dtype=float64"):
        load_config("demo", ["train.dtype=float64", "train.amp=bf16"])
    # A run id of a config written before the key existed is the id of the default now.
    data = config_to_dict(load_config("demo"))
    before = json.loads(json.dumps(data))
    del before["train"]["dtype"]
    assert run_id(before) == run_id(data)
    assert run_id(config_to_dict(load_config("demo", ["train.dtype=float64"]))) != run_id(data)
    (old,) = make_grid(load_config("demo"), "-1", "0")
    (exact,) = make_grid(load_config("demo", ["train.dtype=float64"]), "-1", "0")
    written_before = json.loads(json.dumps(old.config))
    del written_before["train"]["dtype"]
    assert old.id == run_id(written_before) and exact.id != old.id


def test_augmentation_draws_do_not_depend_on_the_default_dtype(float64_default):
    """The flips and crops of a seed are those of the float32 run, whatever the default dtype."""
    augment = Augment(crop_padding=4, flip=True, crop_p=0.7)
    in64 = augment.sample(256, torch.Generator().manual_seed(3), "cpu")
    torch.set_default_dtype(torch.float32)
    in32 = augment.sample(256, torch.Generator().manual_seed(3), "cpu")
    for a, b in zip(in64, in32):
        assert torch.equal(a, b)
    assert 0 < int(in32.flip.sum()) < 256


def test_sync_batch_norm_on_the_cpu_keeps_a_float64_models_dtype_and_values():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).double()
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)  # values float32 cannot hold
        model[1].running_var.uniform_(0.5, 1.5)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    converted = convert_sync_batchnorm(model, torch.device("cpu"))
    bn = converted[1]
    assert isinstance(bn, SyncBatchNormCPU)
    for name, value in bn.state_dict().items():
        assert value.dtype == expected[f"1.{name}"].dtype and torch.equal(value, expected[f"1.{name}"]), name
    assert converted(torch.rand(2, 3, 6, 6, dtype=torch.float64)).dtype == torch.float64


class ScaledNet(nn.Module):
    """A model with a 0-dim parameter (a learned output temperature)."""

    selectivity_layers = ("body",)

    def __init__(self, num_classes=4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        self.head = nn.Linear(4, num_classes)
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, x):
        return self.scale * self.head(self.body(x).mean(dim=(2, 3)))


def test_a_float64_model_can_be_stacked():
    """The probe images reach it in its own dtype (a model without a normalizing first layer too)."""
    torch.manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    check_stackable("scaled", ScaledNet().double(), images)
    check_stackable("resnet_demo", create_model("resnet_demo", num_classes=4).double(), images)


def test_per_network_clipping_takes_0_dim_parameters_as_clip_grad_norm_does():
    torch.manual_seed(0)
    alone = [ScaledNet().double() for _ in range(3)]
    stacked = StackedModel(alone[0], [m.state_dict() for m in alone])
    stacked.train()
    x = torch.rand(3, 5, 3, 8, 8, dtype=torch.float64)
    logits, _ = stacked.forward(x, capture=False)
    (logits ** 2).sum().backward()
    assert stacked.params["scale"].shape == (3,)
    _clip_per_network(list(stacked.params.values()), 0.1)
    for m, model in enumerate(alone):
        (model(x[m]) ** 2).sum().backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        for name, p in model.named_parameters():
            torch.testing.assert_close(stacked.params[name].grad[m], p.grad, rtol=1e-12, atol=1e-15)
    stacked.close()


def test_a_float64_run_keeps_float64_everywhere_and_starts_from_the_float32_runs_init(tmp_path, tiny_overrides,
                                                                                       monkeypatch):
    import selectivity.train.trainer as trainer

    overrides = tiny_overrides + ["train.epochs=1", "record.enabled=true", "record.per_class=2",
                                  "regularizer.alpha=-1"]
    config = load_config("demo", overrides + ["train.dtype=float64"])
    data = load_data(config, progress=False)
    seen, real_optimizer = [], trainer._optimizer

    def optimizer_of(config, model):  # the model as training starts: moved, cast, before any step
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real_optimizer(config, model)

    monkeypatch.setattr(trainer, "_optimizer", optimizer_of)
    final = train(config, tmp_path / "run", progress=False, data=data)
    assert final["status"] == "completed" and final["dtype"] == "float64"
    weights = load_file(str(tmp_path / "run" / "weights.safetensors"))
    assert {v.dtype for v in weights.values() if v.is_floating_point()} == {torch.float64}
    # The same seed's init in both dtypes: the float64 twin is the float32 model widened.
    torch.manual_seed(config.train.seed)
    init32 = build_model(load_config("demo", overrides), data[0]).state_dict()
    (init64,) = seen
    for name, value in init32.items():
        if value.is_floating_point():
            assert value.dtype == torch.float32 and init64[name].dtype == torch.float64
            assert torch.equal(init64[name], value.double()), name
