"""Stacked training: M networks as one vmapped model are the M networks trained alone.

References are independent of the stacked code: ordinary models, each with its own
SelectivityRegularizer, optimizer and clip_grad_norm_, or the ordinary ``train``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from selectivity.core import SelectivityRegularizer
from selectivity.models import MODELS, create_model
from selectivity.config import load_config
from selectivity.train.stacked import (StackedModel, StackError, _clip_per_network, check_stackable,
                                       stacked_selectivity, train_stacked)
from selectivity.train.trainer import _optimizer, _optimizer_for, load_data, train

GRID = [(-1.0, 0), (0.0, 1), (1.0, 2)]  # (alpha, seed): one negative, one zero, one positive


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp(min=1e-12)).item()


def test_a_stacked_step_is_each_networks_own_step_in_float64():
    """Three steps with SI term, per-network data, momentum, weight decay and clipping: equal to 1e-9."""
    torch.manual_seed(0)
    config = load_config("demo", ["optim.grad_clip=0.5"])
    alone = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        alone.append(create_model("resnet_demo", num_classes=4).double().train())
    stacked = StackedModel(alone[0], [{k: v.clone() for k, v in m.state_dict().items()} for m in alone])
    stacked.train()
    optimizer = _optimizer_for(config, *stacked.param_groups())
    optimizers = [_optimizer(config, m) for m in alone]
    regs = [SelectivityRegularizer(m, a, 4, schedule=None, track=True) for m, (a, _) in zip(alone, GRID)]
    alphas = torch.tensor([a for a, _ in GRID], dtype=torch.float64)
    for _ in range(3):
        x = torch.rand(3, 12, 3, 32, 32, dtype=torch.float64)  # each network its own batch
        y = torch.randint(0, 4, (3, 12))
        logits, acts = stacked.forward(x)
        ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(3, 12).mean(1)
        si = stacked_selectivity(acts, y, 4, 1e-7)
        optimizer.zero_grad()
        (ce - alphas * si).sum().backward()
        _clip_per_network(list(stacked.params.values()), 0.5)
        optimizer.step()
        for m, (model, opt, reg) in enumerate(zip(alone, optimizers, regs)):
            loss = F.cross_entropy(model(x[m]), y[m]) + reg.loss(y[m])
            assert si[m].item() == pytest.approx(reg.last_selectivity.item(), rel=1e-12)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
    for m, model in enumerate(alone):
        for name, value in model.state_dict().items():  # parameters and running statistics
            torch.testing.assert_close(stacked.state(m)[name], value, rtol=1e-9, atol=1e-12)


def _flat(state, keys):
    return torch.cat([state[k].flatten() for k in keys])


# Stacked training is lone training: proved in float64 (train.dtype=float64), where it holds to
# rounding (1e-15 here), at the demo's own learning rate. In float32 the two need not agree past the
# first steps: a stacked network sums its grouped convolutions in another order, and one ReLU
# input whose sign differs between the two orders sends the runs apart (a lone run drifts from its
# own float64 twin as much); where that happens depends on the processor's kernels.
EXACT = 1e-9


def _tiny(cache_dir, *extra):
    return [f"data.cache_dir={cache_dir}", "data.train_per_class=20", "data.test_limit=200", "train.batch_size=50",
            "train.threads=1", "regularizer.warmup_epochs=1", "train.dtype=float64", *extra]


def _configs(overrides):
    return [load_config("demo", overrides + [f"regularizer.alpha={a}", f"train.seed={s}"]) for a, s in GRID]


def _same_weights(a, b):
    """Every tensor of two weight files within EXACT (relative, per tensor); integer ones equal."""
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    floats = [k for k in wa if wa[k].is_floating_point()]
    assert floats and all(wa[k].dtype == torch.float64 for k in floats)
    worst = max(floats, key=lambda k: _relative(wb[k], wa[k]))
    assert _relative(wb[worst], wa[worst]) < EXACT, worst
    assert all(torch.equal(wa[k], wb[k]) for k in wa if k not in floats)  # num_batches_tracked
    return wa


@pytest.mark.slow
def test_twenty_stacked_steps_equal_three_runs_alone_in_float64_and_write_the_same_run_directory(tmp_path,
                                                                                                 cache_dir):
    configs = _configs(_tiny(cache_dir, "train.epochs=5", "train.eval_every=5"))  # 4 x 5 steps
    data = load_data(configs[0], progress=False)
    alone = [train(c, tmp_path / f"alone{i}", progress=False, data=data) for i, c in enumerate(configs)]
    stacked = train_stacked(configs, [tmp_path / f"stack{i}" for i in range(3)], progress=False, data=data)
    for i in range(3):
        a, s = tmp_path / f"alone{i}", tmp_path / f"stack{i}"
        assert sorted(p.name for p in a.iterdir() if p.name != "tensorboard") == \
            sorted(p.name for p in s.iterdir() if p.name != "tensorboard")
        weights = _same_weights(a / "weights.safetensors", s / "weights.safetensors")
        assert any("running_" in k for k in weights)  # batch-norm running statistics are compared too
        model = create_model("resnet_demo", num_classes=10)
        model.load_state_dict(weights)  # the ordinary model loads a stacked network's weights
        rows_a = [json.loads(line) for line in (a / "metrics.jsonl").read_text().splitlines()]
        rows_s = [json.loads(line) for line in (s / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows_s] == [0, 1, 2, 3, 4]
        for ra, rs in zip(rows_a, rows_s):
            assert rs["alpha_now"] == ra["alpha_now"] and rs["lr"] == ra["lr"]
            for key in ("train_loss", "train_acc", "batch_si"):
                assert rs[key] == pytest.approx(ra[key], rel=EXACT), key
        assert stacked[i]["status"] == "completed" and stacked[i]["epochs"] == 5
        assert stacked[i]["test_acc"] == alone[i]["test_acc"]
        assert stacked[i]["mean_si"] == pytest.approx(alone[i]["mean_si"], rel=EXACT)
    # A finished stack is returned as it is.
    again = train_stacked(configs, [tmp_path / f"stack{i}" for i in range(3)], progress=False, data=data)
    assert again == stacked


def test_a_stack_mixing_si_and_monoloss_networks_equals_each_run_alone_in_float64(tmp_path, cache_dir):
    """Each network's own knob: SI with alpha, MonoScore with lambda (+ and -), in one stack."""
    knobs = [("regularizer.alpha=-1",), ("regularizer.kind=monoloss", "regularizer.lambda=0.5"),
             ("regularizer.kind=monoloss", "regularizer.lambda=-0.5")]
    configs = [load_config("demo", _tiny(cache_dir, "train.epochs=3", "train.eval_every=3", *k, f"train.seed={i}"))
               for i, k in enumerate(knobs)]
    data = load_data(configs[0], progress=False)
    alone = [train(c, tmp_path / f"alone{i}", progress=False, data=data) for i, c in enumerate(configs)]
    stacked = train_stacked(configs, [tmp_path / f"stack{i}" for i in range(3)], progress=False, data=data)
    for i in range(3):
        _same_weights(tmp_path / f"alone{i}" / "weights.safetensors", tmp_path / f"stack{i}" / "weights.safetensors")
        assert stacked[i]["kind"] == alone[i]["kind"] and stacked[i]["lambda"] == alone[i]["lambda"]
        assert stacked[i]["mean_monoscore"] == pytest.approx(alone[i]["mean_monoscore"], rel=EXACT)
        rows = [json.loads(line) for line in (tmp_path / f"stack{i}" / "metrics.jsonl").read_text().splitlines()]
        key = "batch_si" if i == 0 else "batch_monoscore"
        assert all(0 <= r[key] <= 1 for r in rows) and (i == 0) == ("alpha_now" in rows[-1])
    assert [s["kind"] for s in stacked] == ["si", "monoloss", "monoloss"]
    assert stacked[1]["lambda"] == 0.5 and stacked[1]["alpha"] == 0.0


def test_a_networks_train_seconds_is_its_share_and_each_epoch_logs_the_alpha_it_trained_with(tmp_path, cache_dir):
    """Time as a lone run counts its own (so images_per_second compares with a lone run's); the
    stack's own time in its own keys. alpha_now: epoch 0 of "0*1 -2*1" trained at 0, not at -2."""
    overrides = _tiny(cache_dir, "train.epochs=2", "data.train_per_class=10", "train.dtype=float32",
                      "record.enabled=true", "record.per_class=2")
    configs = [load_config("demo", overrides + ["regularizer.schedule=0*1 -2*1", "train.seed=0"]),
               load_config("demo", overrides + ["regularizer.alpha=0", "train.seed=1"])]
    data = load_data(configs[0], progress=False)
    finals = train_stacked(configs, [tmp_path / f"s{i}" for i in range(2)], progress=False, data=data)
    for i, final in enumerate(finals):
        assert final["stack"] == 2
        assert final["train_seconds"] == pytest.approx(final["stack_train_seconds"] / 2, rel=1e-12)
        assert final["images_per_second"] == pytest.approx(2 * len(data[0].labels) / final["train_seconds"])
        rows = [json.loads(line) for line in (tmp_path / f"s{i}" / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch_seconds"] for r in rows] == pytest.approx([r["stack_epoch_seconds"] / 2 for r in rows])
        assert sum(r["epoch_seconds"] for r in rows) == pytest.approx(final["train_seconds"], rel=1e-9)
        assert [r["alpha_now"] for r in rows] == ([0.0, -2.0] if i == 0 else [0.0, 0.0])
        recorded = pd.read_csv(tmp_path / f"s{i}" / "si_over_training.csv").groupby("epoch")["alpha"].first()
        assert recorded.to_dict() == ({0.0: 0.0, 1.0: 0.0, 2.0: -2.0} if i == 0 else {0.0: 0.0, 1.0: 0.0, 2.0: 0.0})


def test_one_float32_stacked_step_is_the_lone_step_to_float32_rounding(tmp_path, cache_dir):
    """What float32 guarantees: the first step, before a sign flip can part the runs, agrees to float32
    rounding (measured: 3e-8 relative over the whole network, 6e-7 on the worst tensor, after a step that
    moved the weights 4%; the bound 1e-5 leaves a wide margin)."""
    overrides = _tiny(cache_dir, "train.epochs=1", "data.train_per_class=5", "train.dtype=float32",
                      "lr_schedule.kind=constant", "regularizer.warmup_epochs=0")  # one step, at full lr and alpha
    configs = _configs(overrides)
    data = load_data(configs[0], progress=False)
    alone = [train(c, tmp_path / f"a{i}", progress=False, data=data) for i, c in enumerate(configs)]
    train_stacked(configs, [tmp_path / f"s{i}" for i in range(3)], progress=False, data=data)
    for i in range(3):
        wa = load_file(str(tmp_path / f"a{i}" / "weights.safetensors"))
        ws = load_file(str(tmp_path / f"s{i}" / "weights.safetensors"))
        floats = [k for k in wa if wa[k].is_floating_point()]
        assert wa[floats[0]].dtype == torch.float32 and alone[i]["epochs"] == 1
        assert _relative(_flat(ws, floats), _flat(wa, floats)) < 1e-5


@pytest.mark.slow
def test_two_epochs_of_the_demo_recipe_stacked_equal_alone_in_float64(tmp_path, cache_dir):
    configs = _configs(_tiny(cache_dir, "data.train_per_class=30", "train.epochs=2", "record.enabled=true",
                             "record.per_epoch=2", "record.per_class=5"))
    data = load_data(configs[0], progress=False)
    alone = [train(c, tmp_path / f"a{i}", progress=False, data=data) for i, c in enumerate(configs)]
    stacked = train_stacked(configs, [tmp_path / f"s{i}" for i in range(3)], progress=False, data=data)
    for i, (a, s) in enumerate(zip(alone, stacked)):
        assert s["test_acc"] == a["test_acc"] and s["mean_si"] == pytest.approx(a["mean_si"], rel=EXACT)
        _same_weights(tmp_path / f"a{i}" / "weights.safetensors", tmp_path / f"s{i}" / "weights.safetensors")
        # Selectivity over training is recorded at the same points (init, mid-epoch, epoch ends).
        ra, rs = (pd.read_csv(tmp_path / f"{d}{i}" / "si_over_training.csv") for d in "as")
        assert ra[["epoch", "step", "alpha", "layer", "unit"]].equals(rs[["epoch", "step", "alpha", "layer", "unit"]])
        assert (ra.si - rs.si).abs().max() < EXACT


def test_a_diverging_network_is_finished_as_diverged_and_the_others_go_on(tmp_path, cache_dir):
    overrides = _tiny(cache_dir, "train.epochs=2", "data.train_per_class=10")
    configs = [load_config("demo", overrides + ["regularizer.alpha=1e300", "train.seed=0"]),
               load_config("demo", overrides + ["regularizer.alpha=0", "train.seed=1"])]
    data = load_data(configs[0], progress=False)
    bad, good = train_stacked(configs, [tmp_path / "bad", tmp_path / "good"], progress=False, data=data)
    assert bad["status"] == "diverged" and bad["test_acc"] is None
    assert not (tmp_path / "bad/weights.safetensors").exists()
    alone = train(configs[1], tmp_path / "alone", progress=False, data=data)
    assert good["status"] == "completed" and good["epochs"] == 2
    assert good["test_acc"] == alone["test_acc"]
    _same_weights(tmp_path / "alone" / "weights.safetensors", tmp_path / "good" / "weights.safetensors")


def test_runs_of_different_recipes_cannot_share_a_stack(tmp_path, cache_dir):
    configs = [load_config("demo", _tiny(cache_dir)), load_config("demo", _tiny(cache_dir, "optim.lr=0.05"))]
    with pytest.raises(StackError, match="differ only in regularizer.alpha, regularizer.lambda, regularizer.kind, regularizer.schedule and train.seed"):
        train_stacked(configs, [tmp_path / "a", tmp_path / "b"], progress=False)
    assert not (tmp_path / "a").exists()


class Branchy(nn.Module):
    """A user model whose forward branches on the data: vmap cannot run it."""

    selectivity_layers = ("body",)

    def __init__(self, num_classes=10, **kwargs):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        h = self.body(x).mean(dim=(2, 3))
        if h.sum() > 0:  # data-dependent Python control flow
            h = h * 2
        return self.head(h)


def test_a_model_that_cannot_be_stacked_is_refused_before_training_says_why(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setitem(MODELS, "branchy", Branchy)
    configs = _configs(_tiny(cache_dir, "model.name=branchy"))
    with pytest.raises(StackError) as err:
        train_stacked(configs, [tmp_path / f"r{i}" for i in range(3)], progress=False)
    message = str(err.value)
    assert "'branchy' cannot be trained stacked" in message and "control flow" in message and "\n" not in message
    assert not list(tmp_path.glob("r*/checkpoint.safetensors")) and not list(tmp_path.glob("r*/metrics.jsonl"))


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "resnet50" else n
                                  for n in sorted(MODELS)])
def test_every_registered_model_stacks(name):
    """Forward and backward of two stacked copies at a tiny size: shapes per network and layer."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=5)
    check_stackable(name, model, torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    stacked = StackedModel(model, [model.state_dict(), model.state_dict()])
    stacked.train()
    logits, acts = stacked.forward(torch.rand(2, 2, 3, 32, 32))
    assert logits.shape == (2, 2, 5) and len(acts) == len(stacked.layers) == len(model.selectivity_layers)
    assert all(a.shape[:2] == (2, 2) for a in acts)
    (logits.sum() + stacked_selectivity(acts, torch.tensor([[0, 1], [2, 3]]), 5, 1e-7).sum()).backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in stacked.params.values() if p.requires_grad)
    stacked.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_stacked_step_is_each_networks_own_step_on_cuda(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    config = load_config("demo", ["optim.grad_clip=0.5"])
    alone = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        alone.append(create_model("resnet20", num_classes=4).cuda().train())
    stacked = StackedModel(alone[0], [{k: v.clone() for k, v in m.state_dict().items()} for m in alone])
    stacked.train()
    optimizer, optimizers = _optimizer_for(config, *stacked.param_groups()), [_optimizer(config, m) for m in alone]
    regs = [SelectivityRegularizer(m, a, 4, schedule=None, track=True) for m, (a, _) in zip(alone, GRID)]
    x, y = torch.rand(3, 16, 3, 32, 32, device="cuda"), torch.randint(0, 4, (3, 16), device="cuda")
    logits, acts = stacked.forward(x)
    ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(3, 16).mean(1)
    si = stacked_selectivity(acts, y, 4, 1e-7)
    (ce - torch.tensor([a for a, _ in GRID], device="cuda") * si).sum().backward()
    _clip_per_network(list(stacked.params.values()), 0.5)
    optimizer.step()
    for m, (model, opt, reg) in enumerate(zip(alone, optimizers, regs)):
        (F.cross_entropy(model(x[m]), y[m]) + reg.loss(y[m])).backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                assert _relative(stacked.state(m)[name], value) < 1e-4, name


def test_the_training_path_imports_without_matplotlib_pyarrow_or_submitit():
    """The GPU machine's python3 may lack them: training, stacking and sweeps must not import them."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('matplotlib', 'pyarrow', 'submitit'):\n"
        "            raise ImportError(f'blocked: {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import selectivity.train.trainer, selectivity.train.stacked, selectivity.sweep.stacked, selectivity.cli\n"
        "from selectivity.sweep import run_sweep\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.slow
def test_the_gpu_script_runs_its_cpu_dry_run(tmp_path, cache_dir):
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHON": sys.executable, "SELECTIVITY_CACHE": cache_dir}
    done = subprocess.run([str(root / "benchmarks/gpu.sh"), "--dry-run"], capture_output=True, text=True,
                          timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    for row in ("| CUDA tests |", "alpha=-1 |", "alpha=+0 |", "alpha=+1 |", "| regularizer overhead |",
                "| stacked vs one after another |", "| SelectivityMeter throughput |"):
        assert row in table, row
    assert "failed" not in table


@pytest.mark.slow
def test_networks_killed_at_different_epochs_resume_as_separate_stacks(tmp_path, cache_dir, monkeypatch):
    """A kill between two networks' checkpoints leaves them an epoch apart: each resumes from its own."""
    from selectivity.train import stacked as module

    configs = _configs(_tiny(cache_dir, "train.epochs=3", "data.train_per_class=10"))[:2]
    data = load_data(configs[0], progress=False)
    whole = train_stacked(configs, [tmp_path / f"w{i}" for i in range(2)], progress=False, data=data)
    saves, real_save = [], module.save_checkpoint

    def save_then_die(path, *args):
        if len(saves) == 3:  # epoch 0 of both and epoch 1 of the first are on disk
            raise KeyboardInterrupt
        saves.append(path)
        real_save(path, *args)

    monkeypatch.setattr(module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_stacked(configs, [tmp_path / f"k{i}" for i in range(2)], progress=False, data=data)
    monkeypatch.setattr(module, "save_checkpoint", real_save)
    epochs = [len((tmp_path / f"k{i}/metrics.jsonl").read_text().splitlines()) for i in range(2)]
    assert epochs == [2, 1]
    groups = []
    real_group = module._train_group
    monkeypatch.setattr(module, "_train_group", lambda nets, *a: groups.append(len(nets)) or real_group(nets, *a))
    resumed = train_stacked(configs, [tmp_path / f"k{i}" for i in range(2)], progress=False, data=data)
    assert groups == [1, 1]  # the network at epoch 1, then the one at epoch 2
    for i in range(2):
        rows = [json.loads(line) for line in (tmp_path / f"k{i}/metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == [0, 1, 2] and resumed[i]["epochs"] == 3
        _same_weights(tmp_path / f"w{i}/weights.safetensors", tmp_path / f"k{i}/weights.safetensors")
        assert resumed[i]["test_acc"] == whole[i]["test_acc"]
