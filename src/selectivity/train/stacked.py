"""Train M networks of one recipe at once, as one stacked model (torch.func: functional_call + vmap).

The networks of a sweep that differ only in their knob (alpha, or MonoLoss's lambda) and seed share the model, the data and the
recipe, so they can run as one batched computation: every parameter and buffer gets a leading
dimension M, and ``vmap`` over ``functional_call`` runs the ordinary model on each slice
(convolutions become one grouped convolution, as HFTA fuses them by hand). Each network is
the run it would be alone:

- its own init (``torch.manual_seed(seed)`` then ``build_model``, exactly as ``train`` does),
  its own data order and augmentation (a ``DeviceLoader`` with its seed), its own knob (SI with
  alpha, or MonoScore with lambda) and schedule, batch-norm running statistics (stacked buffers, updated in place under vmap),
  optimizer state (one optimizer over the stacked tensors: SGD and AdamW are element-wise,
  so each slice moves exactly as alone) and gradient clipping (per network);
- the loss is the sum of the networks' losses, so each gets exactly its own gradient; the
  selectivity term uses each network's own class sums (labels offset by m * C), the MonoLoss
  term each network's own min-max scaling and class sums;
- its run directory is a lone run's: config.yaml, metrics.jsonl, a checkpoint in the lone
  format (a lone ``train`` can resume it, and the other way round), final.json,
  weights.safetensors and si_per_unit.csv, written by the trainer's own functions.

A network that diverges is finished as diverged and dropped from the stack; the others go on.
Evaluation runs each network through the ordinary model, one after another.
Exact equality with lone runs holds up to float rounding, except for dropout (vgg16_bn):
under vmap each network draws its own masks, which are not the masks of its lone run. With
``train.dtype=float64`` a stacked network's weights equal its lone run's to 1e-9 relative or
better (``selectivity compare``); in float32 the two part after some hundred steps, as any two
summation orders do (a ReLU input whose sign differs sends them apart).

Time: a network's ``train_seconds`` (final.json, checkpoints) and ``epoch_seconds`` (metrics.jsonl)
are its share of the stack's time (the stack's seconds over the networks in it), as a lone run
counts its own, so that ``images_per_second`` compares with a lone run's; the stack's own
seconds are ``stack_train_seconds`` and ``stack_epoch_seconds``, and ``stack`` its size.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
import yaml
from torch.func import functional_call, vmap
from tqdm.auto import tqdm

from ..core.functional import _class_sums, _selectivity_from_sums
from ..core.monoscore import DEFAULT_MONO_EPS, _scaled, _score_from_moments
from ..core.probe import Probe
from ..analysis.evaluation import evaluate, loss_logits
from ..config import Config, ConfigError, config_to_dict
from ..data import Augment, DeviceLoader
from ..data.text import is_text_source
from ..models.hf import is_hf_name
from ..runs import RunPaths, exclusive, load_checkpoint, read_json, remove_orphans, save_checkpoint, write_text
from ..runs.build import build_model, resolve_device
from .record import SelectivityRecorder, epoch_value
from .trainer import (
    _finish,
    _optimizer,
    _optimizer_for,
    _tensorboard,
    _use_amp,
    alpha_at,
    check_run_dir,
    given_embeddings,
    knob_row,
    load_data,
    lr_at,
    resolve_source,
    train_dtype,
)

__all__ = ["StackError", "stack_key", "train_stacked", "prepare_stack", "check_stackable", "StackedModel"]

#: The keys in which the networks of one stack may differ: a sweep's grid keys (sweep.grid.GRID_KEYS).
PER_NETWORK = (("regularizer", "alpha"), ("regularizer", "schedule"), ("train", "seed"), ("regularizer", "kind"),
               ("regularizer", "lambda"))


class StackError(ConfigError):
    """Runs or a model that cannot be trained as one stack (the message says why)."""


def stack_key(config: Config | dict) -> str:
    """Runs with equal keys can share a stack: the resolved config without its knob, schedule and seed."""
    data = copy.deepcopy(config_to_dict(config) if isinstance(config, Config) else config)
    for section, key in PER_NETWORK:
        data.get(section, {}).pop(key, None)
    return json.dumps(data, sort_keys=True, default=str)


# -- the stacked model ------------------------------------------------------------------------


class StackedModel:
    """M copies of one architecture as stacked tensors, run with vmap; captures per-network units.

    ``params`` and ``buffers`` map the ordinary model's names to tensors with a leading M.
    ``forward(x)`` takes x (M, B, ...) and returns logits (M, B, K) and, while capturing, the
    unit activations (M, B, U_l) of each selectivity layer: the probe's hooks run inside vmap,
    so what they capture is per network, and it leaves vmap as an ordinary output.
    """

    def __init__(self, template: torch.nn.Module, states: list[dict[str, torch.Tensor]], layers=None):
        self.base = copy.deepcopy(template).to("meta")
        self.names = [n for n, _ in template.named_parameters()]
        self.buffer_names = [n for n, _ in template.named_buffers()]
        self.ndims = {n: p.ndim for n, p in template.named_parameters()}
        device = next(template.parameters()).device
        self.params = {n: torch.stack([s[n] for s in states]).to(device).detach().requires_grad_() for n in self.names}
        self.buffers = {n: torch.stack([s[n] for s in states]).to(device).clone() for n in self.buffer_names}
        self.probe = Probe(self.base, layers, detach=False)
        self.layers = self.probe.layers
        self._call = vmap(self._one, in_dims=(0, 0, 0), randomness="different")

    def __len__(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def _one(self, params, buffers, x):
        logits = functional_call(self.base, (params, buffers), (x,))
        acts = tuple(self.probe.collect(batch_size=x.shape[0]).values()) if self.probe.enabled else ()
        self.probe.clear()  # the batched tensors must not outlive this call
        return logits, acts

    def forward(self, x: torch.Tensor, capture: bool = True):
        self.probe.enabled = capture and torch.is_grad_enabled()
        return self._call(self.params, self.buffers, x)

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def state(self, m: int) -> dict[str, torch.Tensor]:
        """Network m's state_dict (views into the stack)."""
        out = {n: self.params[n][m].detach() for n in self.names}
        out.update({n: self.buffers[n][m] for n in self.buffer_names})
        return out

    def param_groups(self) -> tuple[list, list]:
        """(decay, no-decay) stacked parameters, in the order the lone optimizer lists them."""
        decay = [self.params[n] for n in self.names if self.ndims[n] > 1]
        no_decay = [self.params[n] for n in self.names if self.ndims[n] <= 1]
        return decay, no_decay

    def close(self) -> None:
        self.probe.close()


def stacked_selectivity(acts: tuple[torch.Tensor, ...], labels: torch.Tensor, num_classes: int, eps: float):
    """Each network's mean over layers of its mean unit SI (M,), from its own batch only.

    acts: (M, B, U_l) per layer; labels (M, B). Labels are offset by m * C, so one call of the
    class-sum function gives every network its own (C, U) sums.
    """
    units = torch.cat(acts, dim=2)  # (M, B, U)
    m, b, u = units.shape
    offset = labels + torch.arange(m, device=labels.device)[:, None] * num_classes
    sums, counts = _class_sums(units.reshape(m * b, u), offset.reshape(-1), m * num_classes)
    si = vmap(_selectivity_from_sums, in_dims=(0, 0, None))(sums.view(m, num_classes, u),
                                                            counts.view(m, num_classes), eps)
    sizes = [a.shape[2] for a in acts]
    return torch.stack([part.mean(dim=1) for part in si.split(sizes, dim=1)], dim=1).mean(dim=1)


def stacked_monoscore(acts: tuple[torch.Tensor, ...], labels: torch.Tensor, num_classes: int,
                      eps: float = DEFAULT_MONO_EPS, embeddings: torch.Tensor | None = None) -> torch.Tensor:
    """Each network's MonoLoss score (M,) from its own batch: per layer the mean MonoScore over the
    units active in the batch (0 if none), then the mean over layers, as
    :meth:`MonoLossRegularizer.selectivity` gives one network. Label embeddings, or ``embeddings``
    (M, B, D): each network's rows of its own batch."""
    units = torch.cat(acts, dim=2)  # (M, B, U)
    a = _scaled(units, units.amin(dim=1, keepdim=True), units.amax(dim=1, keepdim=True))
    if embeddings is None:
        onehot = F.one_hot(labels, num_classes).to(a.dtype)  # (M, B, C)
        w = onehot.transpose(1, 2) @ a  # (M, C, U): each network's class sums of scaled activations
    else:  # (M, D, U): each network's sums of scaled activations times unit embeddings
        e = embeddings.to(a.dtype)
        w = (e / e.norm(dim=2, keepdim=True)).transpose(1, 2) @ a
    score = _score_from_moments((w * w).sum(dim=1), a.sum(dim=1), (a * a).sum(dim=1), eps)  # (M, U)
    active = ~torch.isnan(score)
    score = torch.where(active, score, torch.zeros_like(score))
    sizes = [t.shape[2] for t in acts]
    per_layer = [s.sum(dim=1) / k.sum(dim=1).clamp(min=1) for s, k in zip(score.split(sizes, dim=1),
                                                                            active.split(sizes, dim=1))]
    return torch.stack(per_layer, dim=1).mean(dim=1)


def _knob_scores(nets: list, acts: tuple[torch.Tensor, ...], labels: torch.Tensor, num_classes: int,
                 eps: float, embeddings: torch.Tensor | None = None) -> torch.Tensor:
    """Each network's batch score (M,): SI for kind si, MonoScore for kind monoloss (with each
    network's batch rows of ``embeddings`` (M, B, D) when the stack's MonoLoss takes given ones)."""
    kinds = [net.config.regularizer.kind for net in nets]
    score = stacked_selectivity(acts, labels, num_classes, eps) if "si" in kinds else None
    if "monoloss" in kinds:
        mono = stacked_monoscore(acts, labels, num_classes, embeddings=embeddings)
        if score is None:
            return mono
        is_mono = torch.tensor([k == "monoloss" for k in kinds], device=mono.device)
        score = torch.where(is_mono, mono, score)
    return score


def check_stackable(name: str, template: torch.nn.Module, probe_images: torch.Tensor, layers=None) -> None:
    """Raise StackError, saying why, if ``template`` cannot run as a stack (before any training).

    Two copies run one stacked training step (forward and backward) on two images, and the
    stacked forward in eval mode must equal the ordinary model's: a model with data-dependent
    Python control flow, ``.item()`` calls or state outside its parameters and buffers fails here.
    """
    state = {k: v.detach().clone() for k, v in template.state_dict().items()}
    try:
        stacked = StackedModel(template, [state, state], layers)
    except Exception as err:
        raise StackError(f"model {name!r} cannot be stacked: {_first_line(err)}") from None
    dtype = next(template.parameters()).dtype  # float32, or float64 in an exact run
    x = probe_images.to(dtype).div(255)[:2].unsqueeze(0).expand(2, *probe_images[:2].shape).contiguous()
    try:
        stacked.train(False)  # first: the training step below moves the running statistics
        with torch.no_grad():
            logits, _ = stacked.forward(x)
            alone = copy.deepcopy(template).eval()
            alone.load_state_dict(state)
            expected = alone(x[0])
        stacked.train()
        out, acts = stacked.forward(x)
        (out.float().sum() + sum(a.sum() for a in acts)).backward()
    except Exception as err:
        raise StackError(
            f"model {name!r} cannot be trained stacked (torch.func.vmap over the model failed: {_first_line(err)}); "
            "use --executor local, or remove data-dependent Python control flow and .item() calls from its forward"
        ) from None
    finally:
        stacked.close()
    if not torch.allclose(logits[0].float(), expected.float(), rtol=1e-3, atol=1e-4):
        raise StackError(f"model {name!r} cannot be trained stacked: its stacked forward differs from its own "
                         "(does it keep state outside its parameters and buffers?); use --executor local")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


# -- training ---------------------------------------------------------------------------------


@dataclass
class _Net:
    """One network of a stack: its config, run directory, loader and record so far."""

    config: Config
    paths: RunPaths
    state: dict
    optim_state: dict
    loader: DeviceLoader | None = None
    history: list = field(default_factory=list)
    start_epoch: int = 0
    elapsed: float = 0.0  # this network's share of its stacks' training seconds (a lone run's train_seconds)
    stack_elapsed: float = 0.0  # the stacks' own training seconds over this network's epochs
    stack_size: int = 0  # networks in the stack it started in
    status: str = "completed"
    writer: object = None
    recorder: SelectivityRecorder | None = None
    final: dict | None = None

    @property
    def alpha(self) -> float:
        return float(self.config.regularizer.alpha)

    def alpha_at(self, step: int, steps_per_epoch: int) -> float:
        """The scheduled alpha at a global step, as SelectivityRegularizer.current_alpha gives it."""
        return alpha_at(self.config, step, steps_per_epoch)


def train_stacked(configs: list[Config], out_dirs: list[str | Path], progress: bool = True, data=None,
                  wait_for_lock: bool = False) -> list[dict]:
    """Train ``configs[i]`` into ``out_dirs[i]``, all at once; returns their final.json dicts.

    The configs must differ only in alpha, lambda (and kind), schedule and seed (:func:`stack_key`); otherwise, or if the
    model cannot be stacked, StackError is raised before anything is trained. Finished runs
    are returned as they are; killed runs resume from their checkpoints (networks at different
    epochs train as separate stacks).
    """
    if len(configs) != len(out_dirs) or not configs:
        raise StackError(f"need one run directory per config, got {len(configs)} configs and {len(out_dirs)} dirs")
    keys = {stack_key(c) for c in configs}
    if len(keys) > 1:
        raise StackError("the runs of one stack must differ only in regularizer.alpha, regularizer.lambda, "
                         "regularizer.kind, regularizer.schedule and train.seed")
    paths = [RunPaths(Path(d)) for d in out_dirs]
    if len({p.root.resolve() for p in paths}) != len(paths):
        raise StackError("two networks of one stack were given the same run directory")
    configs = [resolve_source(c) for c in configs]
    # As train() does: everything is checked before a run directory is created or locked.
    results = {i: read_json(p.final) for i, (c, p) in enumerate(zip(configs, paths))
               if check_run_dir(p, c) and p.final.exists()}
    todo = [i for i in range(len(configs)) if i not in results]
    if not todo:
        return [results[i] for i in range(len(configs))]
    config = configs[todo[0]]
    device = resolve_device(config.train.device)
    (train_split, test_split), template = prepare_stack(config, progress, data)
    given_embeddings(config, train_split)  # before any run directory is touched
    if config.train.batch_size > len(train_split.labels):
        raise ConfigError(f"train.batch_size {config.train.batch_size} exceeds the {len(train_split.labels)} "
                          "training images")
    with contextlib.ExitStack() as locks:
        for i in todo:
            p = paths[i]
            p.root.mkdir(parents=True, exist_ok=True)
            locks.enter_context(exclusive(p.lock, f"{p.root} is being trained by another process", wait=wait_for_lock))
            if check_run_dir(p, configs[i]) and p.final.exists():  # finished while we waited
                results[i] = read_json(p.final)
                continue
            remove_orphans(p.root, p.written_files())
            if not p.config.exists():
                write_text(p.config, yaml.safe_dump(config_to_dict(configs[i]), sort_keys=False))
        todo = [i for i in todo if i not in results]
        nets = {i: _load_net(configs[i], paths[i], train_split, device) for i in todo}
        for epoch in sorted({n.start_epoch for n in nets.values()}):
            group = [i for i in todo if nets[i].start_epoch == epoch]
            _train_group([nets[i] for i in group], template, train_split, test_split, device, progress)
            results.update({i: nets[i].final for i in group})
    return [results[i] for i in range(len(configs))]


def prepare_stack(config: Config, progress: bool = False, data=None):
    """(data, template model) of a stack, after checking that the model stacks (StackError if not)."""
    if is_hf_name(config.model.name) or is_text_source(config.data.source):
        raise StackError(f"model {config.model.name!r} cannot be trained stacked: a Hugging Face model's forward "
                         "(attention masks, its own output classes) does not run under torch.func's vmap, and text "
                         "batches differ in length between networks; train its runs one per process "
                         "(--executor local)")
    device = resolve_device(config.train.device)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    data = data or load_data(config, progress=progress)
    template = build_model(config, data[0]).to(device, train_dtype(config))
    check_stackable(config.model.name, template, data[0].images[:2], config.regularizer.layers)
    return data, template


def _load_net(config: Config, paths: RunPaths, train_split, device) -> _Net:
    """Build network ``config`` exactly as ``train`` does, and restore its checkpoint if any."""
    torch.manual_seed(config.train.seed)
    model = build_model(config, train_split).to(device, train_dtype(config))
    optimizer = _optimizer(config, model)
    net = _Net(config, paths, state={}, optim_state={})
    if paths.checkpoint.exists():
        info = load_checkpoint(paths.checkpoint, model, optimizer)
        net.history, net.start_epoch, net.elapsed = info["history"], info["epoch"] + 1, info["train_seconds"]
        net.stack_elapsed, net.stack_size = info.get("stack_train_seconds", 0.0), info.get("stack", 0)
    net.state = {k: v.detach() for k, v in model.state_dict().items()}
    net.optim_state = optimizer.state_dict()
    return net


def _stack_optimizer(config: Config, model: StackedModel, states: list[dict]) -> torch.optim.Optimizer:
    """One optimizer over the stacked parameters, holding each network's own state in its slice."""
    optimizer = _optimizer_for(config, *model.param_groups())
    if not states[0]["state"]:
        return optimizer
    stacked: dict[int, dict] = {}
    for index, first in states[0]["state"].items():
        stacked[index] = {}
        for key, value in first.items():
            if isinstance(value, torch.Tensor) and value.ndim > 0:
                stacked[index][key] = torch.stack([s["state"][index][key] for s in states])
            else:  # Adam's step count: shared by construction (same epoch, same steps)
                stacked[index][key] = value
    optimizer.load_state_dict({"state": stacked, "param_groups": optimizer.state_dict()["param_groups"]})
    return optimizer


def _slice_optimizer(optimizer: torch.optim.Optimizer, m: int) -> dict:
    """Network m's optimizer state_dict, in the lone optimizer's format."""
    full = optimizer.state_dict()
    state = {index: {k: (v[m] if isinstance(v, torch.Tensor) and v.ndim > 0 else v) for k, v in s.items()}
             for index, s in full["state"].items()}
    return {"state": state, "param_groups": full["param_groups"]}


def _clip_per_network(params: list[torch.Tensor], max_norm: float) -> None:
    """clip_grad_norm_ for each network's slice on its own (a global norm would couple them)."""
    grads = [p.grad for p in params if p.grad is not None]
    # reshape, not flatten(1): a 0-dim parameter of the model is (M,) here
    norms = torch.stack([g.reshape(g.shape[0], -1).norm(dim=1) for g in grads]).norm(dim=0)  # (M,)
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *[1] * (g.ndim - 1)))


def _train_group(nets: list[_Net], template, train_split, test_split, device, progress: bool) -> None:
    config = nets[0].config
    amp = _use_amp(config, device)
    dtype = train_dtype(config)
    augment = Augment(crop_padding=config.data.crop_padding, flip=config.data.flip)
    # The networks of a stack share their embedding settings (stack_key); SI networks take none, and
    # an SI network's config resets them, so a stack mixing SI and given embeddings cannot arise.
    first = DeviceLoader(train_split, config.train.batch_size, device, shuffle=True, drop_last=True,
                         augment=augment, seed=config.train.seed, dtype=dtype,
                         embeddings=given_embeddings(config, train_split))
    if len(first) == 0:
        raise ConfigError(f"train.batch_size {config.train.batch_size} exceeds the {len(train_split.labels)} "
                          "training images")
    for net in nets:  # one padded copy of the images, one seed (data order) per network
        net.loader = copy.copy(first)
        net.loader.seed = net.config.train.seed
    test_loader = DeviceLoader(test_split, 1024, device, shuffle=False, dtype=dtype)
    steps_per_epoch, epochs = len(first), config.train.epochs
    total_steps, num_classes, batch = steps_per_epoch * epochs, train_split.num_classes, config.train.batch_size
    start_epoch = nets[0].start_epoch

    model = StackedModel(template, [n.state for n in nets], config.regularizer.layers)
    optimizer = _stack_optimizer(config, model, [n.optim_state for n in nets])
    live = list(nets)  # the networks still in the stack, in slice order
    for m, net in enumerate(nets):
        # metrics.jsonl is rebuilt from the checkpoint, as train() does
        write_text(net.paths.metrics, "".join(json.dumps(h) + "\n" for h in net.history))
        net.recorder = SelectivityRecorder(net.config, test_split, model.layers, epochs, steps_per_epoch, device,
                                           net.paths, dtype)
        net.recorder.resume(start_epoch)
        if net.recorder.enabled and start_epoch == 0:
            net.recorder.record(_network(template, model, m), 0.0, 0, net.alpha_at(0, steps_per_epoch))
        net.writer = _tensorboard(net.paths)
        net.stack_size = net.stack_size or len(nets)
    recording = nets[0].recorder  # when to record depends on the shared recipe only
    bar = tqdm(total=total_steps, initial=start_epoch * steps_per_epoch, disable=not progress,
               desc=f"{config.name} stack of {len(nets)}", unit="step")
    lr = optimizer.param_groups[0]["lr"]
    try:
        for epoch in range(start_epoch, epochs):
            if not live:
                break
            started = time.perf_counter()
            model.train()
            batches = [iter(_epoch(net.loader, epoch)) for net in live]
            inside = recording.inside(epoch)
            sums = torch.zeros(len(live), 3, device=device, dtype=dtype)  # per network: loss, correct, selectivity
            for i in range(steps_per_epoch):
                step = epoch * steps_per_epoch + i
                lr = lr_at(config, step, total_steps, steps_per_epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                xs, ys, *es = zip(*(next(b) for b in batches))  # es: [each network's batch rows], or []
                x, y = torch.stack(xs), torch.stack(ys)
                e = torch.stack(es[0]) if es else None  # (M, B, D)
                alphas = [net.alpha_at(step, steps_per_epoch) for net in live]
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    logits, acts = model.forward(x)
                    ce = F.cross_entropy(loss_logits(logits).flatten(0, 1), y.flatten(),
                                         label_smoothing=config.optim.label_smoothing, reduction="none")
                ce = ce.view(len(live), batch).mean(dim=1)
                if any(alphas):  # -alpha * SI or -lambda * MonoScore, per network
                    si = _knob_scores(live, acts, y, num_classes, config.regularizer.eps, e)
                    losses = ce - torch.tensor(alphas, device=device, dtype=si.dtype) * si
                else:  # only tracked, as the regularizer does while its knob is 0
                    si = _knob_scores(live, tuple(a.detach() for a in acts), y, num_classes, config.regularizer.eps, e)
                    losses = ce
                optimizer.zero_grad(set_to_none=True)
                losses.sum().backward()  # a sum: each network gets exactly its own gradient
                if config.optim.grad_clip:
                    _clip_per_network(list(model.params.values()), config.optim.grad_clip)
                optimizer.step()
                correct = (logits.argmax(dim=2) == y).sum(dim=1).float()
                sums += torch.stack([ce.detach() * batch, correct, si.detach()], dim=1)
                if i in inside:
                    for m, net in enumerate(live):
                        net.recorder.record(_network(template, model, m), epoch_value(epoch, i, steps_per_epoch),
                                            step + 1, net.alpha_at(step, steps_per_epoch))
                bar.update(1)
                if i % 50 == 49 and not torch.isfinite(sums[:, 0]).any():
                    break  # every network has diverged
            ok = (torch.isfinite(sums).all(dim=1) & torch.isfinite(losses.detach())).tolist()
            seconds = time.perf_counter() - started
            share = seconds / len(live)  # each network's share: what its lone run's train_seconds would count
            keep = []
            for m, net in enumerate(live):
                if not ok[m]:
                    net.status = "diverged"
                    continue
                keep.append(m)
                net.elapsed += share
                net.stack_elapsed += seconds
                seen = steps_per_epoch * batch
                row = {"epoch": epoch, "train_loss": sums[m, 0].item() / seen, "train_acc": sums[m, 1].item() / seen,
                       **knob_row(net.config, sums[m, 2].item() / steps_per_epoch,
                                  net.alpha_at((epoch + 1) * steps_per_epoch - 1, steps_per_epoch)),
                       "lr": lr, "epoch_seconds": share, "stack_epoch_seconds": seconds}
                scratch = _network(template, model, m)
                if (epoch + 1) % config.train.eval_every == 0 or epoch + 1 == epochs:
                    result = evaluate(scratch, test_loader, num_classes, model.layers, amp, check_finite=False)
                    row.update(test_acc=result["test_acc"], test_loss=result["test_loss"],
                               test_si=result["selectivity"].mean)
                net.history.append(row)
                if net.recorder.recorded(epoch + 1):  # before the checkpoint, as train() does
                    net.recorder.record(scratch, float(epoch + 1), (epoch + 1) * steps_per_epoch,
                                        net.alpha_at((epoch + 1) * steps_per_epoch - 1, steps_per_epoch))
                view = SimpleNamespace(state_dict=lambda m=m: _slice_optimizer(optimizer, m))
                save_checkpoint(net.paths.checkpoint, scratch, view,
                                {"epoch": epoch, "history": net.history, "train_seconds": net.elapsed,
                                 "stack_train_seconds": net.stack_elapsed, "stack": net.stack_size})
                with net.paths.metrics.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                if net.writer is not None:
                    for key, value in row.items():
                        net.writer.add_scalar(key, value, epoch)
            bar.set_postfix(networks=len(keep))
            if len(keep) < len(live):
                for m, net in enumerate(live):  # finish the diverged now, then drop them from the stack
                    if m not in keep:
                        _done(net, template, model, None, test_loader, num_classes, amp, train_split, device)
                live = [live[m] for m in keep]
                if live:
                    states = [_clone(model.state(m)) for m in keep]
                    optim_states = [_slice_optimizer(optimizer, m) for m in keep]
                    model.close()
                    model = StackedModel(template, states, config.regularizer.layers)
                    optimizer = _stack_optimizer(config, model, optim_states)
        for m, net in enumerate(live):
            _done(net, template, model, m, test_loader, num_classes, amp, train_split, device)
    finally:
        bar.close()
        model.close()
        for net in nets:
            if net.writer is not None:
                net.writer.close()


def _epoch(loader: DeviceLoader, epoch: int):
    loader.set_epoch(epoch)
    return loader


def _clone(state: dict) -> dict:
    return {k: v.detach().clone() for k, v in state.items()}


def _network(template: torch.nn.Module, model: StackedModel, m: int) -> torch.nn.Module:
    """The ordinary model holding network m's weights and buffers (for evaluation and files)."""
    template.load_state_dict(model.state(m))
    return template


def _done(net: _Net, template, model, m, test_loader, num_classes, amp, train_split, device) -> None:
    """final.json and the files of a finished network, by the trainer's own _finish."""
    scratch = _network(template, model, m) if m is not None else template
    net.final = _finish(net.paths, net.config, scratch, test_loader, num_classes, model.layers, amp, net.status,
                        net.history, net.elapsed, train_split, device,
                        extra={"stack": net.stack_size, "stack_train_seconds": net.stack_elapsed})
