"""Train a network with the selectivity knob, resumably, and measure what came out.

``train(config, out_dir)`` is the one function the CLI, the demo and the sweeps call. The
loop reads in one screen; the selectivity term is one visible line of the loss.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from tqdm.auto import tqdm

from .. import __version__
from ..core import (EpochWindow, LinearWarmup, MonoLossRegularizer, PerEpochAlpha,
                    SelectivityRegularizer)
from ..core.schedule import first_active_epoch
from ..analysis.evaluation import evaluate, loss_logits
from ..config import Config, ConfigError, config_from_dict, config_to_dict
from ..data import Augment, DatasetSplit, limit_test, load_split, shard_split, take_per_class
from ..data.text import TextSplit, is_text_source, make_loader
from ..models.hf import hf_dir, is_hf_name
from ..runs import (RunError, RunPaths, atomic_write, exclusive, load_checkpoint, read_json, read_text, remove_orphans,
                   save_checkpoint, save_tensors, write_text)
from ..runs.build import build_model, load_texts, resolve_device
from .distributed import Ranks, agree, setup, sum_over_ranks, unwrap, wrap_model
from .embeddings import reference_embeddings
from .record import SelectivityRecorder, epoch_value
from ..safe_yaml import load_yaml

__all__ = ["train", "load_data", "train_dtype", "alpha_at", "settings", "build_regularizer", "knob_label"]


# -- set-up -----------------------------------------------------------------------------------


def load_data(config: Config, progress: bool = True) -> tuple[DatasetSplit, DatasetSplit]:
    """Train and test splits of ``config.data``, decoded once into the cache; a MonoLoss run with
    embeddings from a file or an encoder gets them on the train split (checked against the whole
    split, then subset with it). Labelled text (:func:`~selectivity.data.text.is_text_source`) gives
    :class:`~selectivity.data.text.TextSplit` s tokenized by the model's own tokenizer."""
    if is_text_source(config.data.source):
        train, test = load_texts(config)
    else:
        train = load_split(config.data.source, "train", cache_dir=config.data.cache_dir, progress=progress)
        test = load_split(config.data.source, "test", cache_dir=config.data.cache_dir, progress=progress)
    embeddings = reference_embeddings(config, train, resolve_device(config.train.device), progress)
    if embeddings is not None:
        train = dataclasses.replace(train, embeddings=embeddings)
    if config.data.train_per_class:
        train = take_per_class(train, config.data.train_per_class)
    return train, limit_test(test, config.data.test_limit)


def given_embeddings(config: Config, split: DatasetSplit) -> torch.Tensor | None:
    """The train split's embedding rows that the run's MonoLoss takes (None: labels, or an SI run);
    ConfigError when the run needs rows that ``split`` does not carry (data not from load_data(config))."""
    reg = config.regularizer
    if reg.kind != "monoloss" or reg.embeddings == "labels":
        return None
    if getattr(split, "embeddings", None) is None:
        raise ConfigError(f"regularizer.embeddings is {reg.embeddings!r} but the training data given carries no "
                          "embeddings: load it with load_data(config)")
    return split.embeddings


def train_dtype(config: Config) -> torch.dtype:
    """The dtype of the weights, the batches and the arithmetic: ``train.dtype``."""
    return torch.float64 if config.train.dtype == "float64" else torch.float32


def _use_amp(config: Config, device: torch.device) -> bool:
    if config.train.dtype == "float64":  # autocast would compute in bfloat16: never in an exact run
        return False
    return config.train.amp == "bf16" or (config.train.amp == "auto" and device.type == "cuda")


def _alpha_schedule(config: Config):
    reg = config.regularizer
    if reg.schedule is not None:
        return PerEpochAlpha.parse(reg.schedule)
    if reg.epoch_window is not None:
        return EpochWindow(*reg.epoch_window)
    return LinearWarmup(reg.warmup_epochs)


def alpha_at(config: Config, step: int, steps_per_epoch: int) -> float:
    """The knob's value (alpha, or lambda for MonoLoss) that global step ``step`` (0-based) trains
    with, as the regularizer's current_alpha gives it there. The logs give each epoch the value of
    its last step (``alpha_at(config, (e + 1) * steps_per_epoch - 1, ...)``): the value in effect
    during epoch e, not the next epoch's. The warm-up, window and schedule apply to either knob."""
    strength = float(config.strength)
    if strength == 0.0:
        return 0.0
    return strength * float(_alpha_schedule(config)(step, step / steps_per_epoch))


def knob_label(config: Config) -> str:
    """``alpha=-1`` or ``lambda=0.1``: the run's knob, for progress bars and messages."""
    if config.regularizer.kind == "monoloss":
        return f"lambda={config.regularizer.lambda_:g}"
    return f"alpha={config.regularizer.alpha:g}"


def build_regularizer(config: Config, model: torch.nn.Module, num_classes: int, steps_per_epoch: int,
                      **kwargs) -> SelectivityRegularizer:
    """The run's regularizer: SI with alpha (``regularizer.kind: si``) or MonoLoss with lambda
    (``monoloss``: label embeddings, or each batch's rows from a file or an encoder, passed to
    ``loss(y, e)``); both track their batch score while the knob is 0."""
    reg = config.regularizer
    common = dict(schedule=_alpha_schedule(config), steps_per_epoch=steps_per_epoch, sync=reg.sync, **kwargs)
    if reg.kind == "monoloss":  # MonoScore's own inactive-unit threshold, not SI's eps
        embeddings = "labels" if reg.embeddings == "labels" else "given"
        return MonoLossRegularizer(model, reg.lambda_, num_classes, reg.layers, embeddings=embeddings, **common)
    return SelectivityRegularizer(model, reg.alpha, num_classes, reg.layers, eps=reg.eps, **common)


def settings(config: Config) -> dict:
    """Every setting of the resolved config as one flat dict of dotted keys (``optim.lr``, ``model.kwargs.width``).

    Example::

        >>> from selectivity.config import load_config
        >>> settings(load_config("demo", ["model.kwargs.width=8"]))["model.kwargs.width"]
        8
    """
    flat: dict = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):  # an empty one (no model kwargs) adds no key
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    walk(config_to_dict(config), "")
    return flat


def lr_at(config: Config, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Learning rate at a global step: a pure function, so resuming needs no scheduler state."""
    sched, base = config.lr_schedule, config.optim.lr
    epoch = step / steps_per_epoch
    if sched.warmup_epochs > 0 and epoch < sched.warmup_epochs:
        return base * epoch / sched.warmup_epochs
    progress = step / total_steps
    if sched.kind == "step":
        return base * sched.gamma ** sum(progress >= m for m in sched.milestones)
    if sched.kind == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    if sched.kind == "onecycle":  # linear up to the peak at 25% then linear down to 0
        return base * (progress / 0.25 if progress < 0.25 else (1 - progress) / 0.75)
    return base


def _optimizer(config: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    # No weight decay on batch-norm and bias parameters (1-D tensors).
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return _optimizer_for(config, decay, no_decay)


def _optimizer_for(config: Config, decay: list, no_decay: list) -> torch.optim.Optimizer:
    """The config's optimizer over two parameter lists (the stacked trainer passes stacked ones)."""
    o = config.optim
    groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr)
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov)


# -- training ---------------------------------------------------------------------------------


def resolve_source(config: Config) -> Config:
    """``config`` with ``data.source`` as an absolute path when it names an existing file or folder,
    so a run directory records where its data is, whatever directory the command ran in."""
    if is_hf_name(config.model.name) and Path(config.model.name[3:]).expanduser().is_dir():  # hf:DIR, not ORG/NAME
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, name=f"hf:{hf_dir(config.model.name)}"))
    source = config.data.source
    path = Path(source).expanduser()
    if source == "demo" or not path.exists():
        return _resolve_embedding_files(config)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, source=str(path.resolve())))
    return _resolve_embedding_files(config)


def _resolve_embedding_files(config: Config) -> Config:
    """The embeddings file and encoder weights as absolute paths, where they exist (as data.source)."""
    reg, changes = config.regularizer, {}
    for key in ("embeddings_file", "encoder_weights"):
        value = getattr(reg, key)
        if value is not None and Path(value).expanduser().exists():
            changes[key] = str(Path(value).expanduser().resolve())
    return dataclasses.replace(config, regularizer=dataclasses.replace(reg, **changes)) if changes else config


def check_run_dir(paths: RunPaths, config: Config) -> bool:
    """True when ``paths`` holds a run of ``config`` (False: no run yet); RunError for another config."""
    if not paths.config.exists():
        return False
    try:
        previous = resolve_source(config_from_dict(load_yaml(read_text(paths.config), str(paths.config))))
    except (ConfigError, yaml.YAMLError) as err:
        raise RunError(f"{paths.config} is unreadable ({str(err).splitlines()[0]}); use another --out") from None
    before, now = config_to_dict(previous), config_to_dict(resolve_source(config))
    if before != now:
        raise RunError(f"{paths.root} holds a run of a different config ({_dict_diff(before, now)}); "
                       "use another --out or the same settings")
    return True


def _dict_diff(a: dict, b: dict, prefix: str = "") -> str:
    diffs = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            inner = _dict_diff(va, vb, f"{prefix}{key}.")
            if inner:
                diffs.append(inner)
        elif va != vb:
            diffs.append(f"{prefix}{key}: {va!r} there, {vb!r} now")
    return "; ".join(diffs)


def _tensorboard(paths: RunPaths):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(str(paths.tensorboard))


def train(config: Config, out_dir: str | Path, progress: bool = True, data=None,
          wait_for_lock: bool = False) -> dict:
    """Train ``config`` into ``out_dir``, resuming from its checkpoint; returns final.json's dict.

    A finished run (final.json present) is returned as it is. A run killed at any point
    resumes from its last finished epoch and logs no epoch twice. One process trains a run
    directory at a time: another one fails at once (RunBusy), or waits with ``wait_for_lock``.
    """
    config.validate()  # a Config built in code has not been through load_config's checks
    paths = RunPaths(Path(out_dir))
    config = resolve_source(config)
    if check_run_dir(paths, config) and paths.final.exists():
        return read_json(paths.final)
    # Everything that can be checked is checked before the run directory is created, so a
    # mistake (a bad factory, missing data) leaves nothing behind that blocks the fixed command.
    ranks, device = setup(resolve_device(config.train.device))  # torchrun: join the process group
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    train_split, test_split = data or load_data(config, progress=progress)
    given_embeddings(config, train_split)  # a file's or encoder's rows travel with the split
    torch.manual_seed(config.train.seed)
    model = build_model(config, train_split)
    if config.train.batch_size > len(train_split.labels):
        raise ConfigError(f"train.batch_size {config.train.batch_size} exceeds the {len(train_split.labels)} "
                          "training images")
    if config.train.batch_size % ranks.world_size:
        raise ConfigError(f"train.batch_size {config.train.batch_size} must divide by the {ranks.world_size} processes")

    def claim(stack: contextlib.ExitStack) -> dict | None:  # rank 0 alone holds and writes the directory
        try:
            paths.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunError(f"cannot write the run directory {paths.root}: {err.strerror or err}") from None
        busy = f"{paths.root} is being trained by another process"
        stack.enter_context(exclusive(paths.lock, busy, wait=wait_for_lock))
        if check_run_dir(paths, config) and paths.final.exists():  # finished while we waited
            return read_json(paths.final)
        remove_orphans(paths.root, paths.written_files())
        if not paths.config.exists():
            write_text(paths.config, yaml.safe_dump(config_to_dict(config), sort_keys=False))
        return None

    with contextlib.ExitStack() as stack:
        finished = agree(ranks, lambda: claim(stack))
        if finished is not None:
            return finished
        return _train(config, paths, model, train_split, test_split, device, progress, ranks)


def _train(config: Config, paths: RunPaths, model, train_split, test_split, device, progress: bool,
           ranks: Ranks = Ranks()) -> dict:
    amp = _use_amp(config, device)
    memory = torch.channels_last if config.train.channels_last else torch.contiguous_format
    model = model.to(device, train_dtype(config), memory_format=memory)  # float64: the same init, widened
    net = wrap_model(model, device, config.train.sync_bn)  # DDP under torchrun; `model` itself otherwise
    model = unwrap(net)  # hooks, checkpoints and evaluation use the network inside
    optimizer = _optimizer(config, model)
    progress = progress and ranks.main
    augment = Augment(crop_padding=config.data.crop_padding, flip=config.data.flip)
    dtype = train_dtype(config)
    # Images: DeviceLoader; texts: TextLoader (batches of similar length), with the same contract.
    loader = make_loader(train_split, config.train.batch_size, device, shuffle=True, drop_last=True,
                         augment=augment, seed=config.train.seed, channels_last=config.train.channels_last,
                         rank=ranks.rank, world_size=ranks.world_size, dtype=dtype,
                         embeddings=given_embeddings(config, train_split))  # batches (x, y, e) when given
    test_loader = make_loader(shard_split(test_split, ranks.rank, ranks.world_size), 1024, device, shuffle=False,
                              channels_last=config.train.channels_last, dtype=dtype)
    steps_per_epoch, epochs = len(loader), config.train.epochs
    total_steps = steps_per_epoch * epochs
    num_classes = train_split.num_classes
    reg = build_regularizer(config, model, num_classes, steps_per_epoch, track=True, check=False)
    # check=False: labels come from the validated dataset, and non-finite activations show up
    # as a non-finite loss, which ends the run as diverged instead of raising.

    history: list[dict] = []
    start_epoch, elapsed = 0, 0.0
    data_id = {"train": train_split.checksum, "test": test_split.checksum}
    if paths.checkpoint.exists():
        info = load_checkpoint(paths.checkpoint, model, optimizer)
        history, start_epoch, elapsed = info["history"], info["epoch"] + 1, info["train_seconds"]
        if info.get("data", data_id) != data_id:  # the same path, other images: not this run's data
            raise RunError(f"the data at {config.data.source} differs from the data {paths.root} was trained on "
                           "(its checksum changed); restore it, or train into another --out")
    # metrics.jsonl is rebuilt from the checkpoint: an epoch logged after the last checkpoint
    # (killed in between) is dropped here and logged again when it is redone.
    if ranks.main:
        write_text(paths.metrics, "".join(json.dumps(h) + "\n" for h in history))
    recorder = SelectivityRecorder(config, test_split, reg.layers, epochs, steps_per_epoch, device, paths, dtype)
    recorder.resume(start_epoch)
    if recorder.enabled and start_epoch == 0:
        recorder.record(model, 0.0, 0, alpha_at(config, 0, steps_per_epoch))  # initialization

    writer = _tensorboard(paths) if ranks.main else None
    bar = tqdm(total=total_steps, initial=start_epoch * steps_per_epoch, disable=not progress,
               desc=f"{config.name} {knob_label(config)} seed={config.train.seed}", unit="step")
    status = "completed"
    try:
        for epoch in range(start_epoch, epochs):
            started = time.perf_counter()
            model.train()
            loader.set_epoch(epoch)
            reg.set_epoch(epoch)
            inside = recorder.inside(epoch)
            sums = torch.zeros(3, device=device, dtype=dtype)  # summed on the device: loss, correct, selectivity
            for i, (x, y, *e) in enumerate(loader):  # e: [the batch's embedding rows], or []
                step = epoch * steps_per_epoch + i
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(config, step, total_steps, steps_per_epoch)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    logits = net(x)
                    ce = F.cross_entropy(loss_logits(logits), y, label_smoothing=config.optim.label_smoothing)
                loss = ce + reg.loss(y, *e)  # reg.loss(y) = -alpha * batch SI (or -lambda * batch MonoScore)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.optim.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
                optimizer.step()
                if i in inside:
                    recorder.record(model, epoch_value(epoch, i, steps_per_epoch), step + 1,
                                    alpha_at(config, step, steps_per_epoch))
                # reg tracks the batch selectivity even while alpha is 0 (without gradient).
                sums += torch.stack([ce.detach() * len(y), (logits.argmax(1) == y).sum().float(), reg.last_selectivity])
                bar.update(1)
                if i % 50 == 49 and not torch.isfinite(sum_over_ranks(sums[:1])).all():  # every rank agrees
                    break
            sums = sum_over_ranks(sums)  # the global batch's loss and accuracy; batch SI once per rank
            if not torch.isfinite(sums).all() or not torch.isfinite(loss.detach()):
                status = "diverged"
                break
            elapsed += time.perf_counter() - started
            seen = steps_per_epoch * config.train.batch_size
            row = {"epoch": epoch, "train_loss": sums[0].item() / seen, "train_acc": sums[1].item() / seen,
                   **knob_row(config, sums[2].item() / steps_per_epoch / ranks.world_size,
                              alpha_at(config, (epoch + 1) * steps_per_epoch - 1, steps_per_epoch)),
                   "lr": optimizer.param_groups[0]["lr"],
                   "epoch_seconds": time.perf_counter() - started}
            if (epoch + 1) % config.train.eval_every == 0 or epoch + 1 == epochs:
                result = evaluate(model, test_loader, num_classes, reg.layers, amp, check_finite=False)
                row.update(test_acc=result["test_acc"], test_loss=result["test_loss"], test_si=result["selectivity"].mean)
            history.append(row)
            if recorder.recorded(epoch + 1):  # before the checkpoint: a resumed epoch records again
                recorder.record(model, float(epoch + 1), (epoch + 1) * steps_per_epoch, row.get("alpha_now", 0.0))
            if ranks.main:
                save_checkpoint(paths.checkpoint, model, optimizer,
                                {"epoch": epoch, "history": history, "train_seconds": elapsed, "data": data_id})
                with paths.metrics.open("a") as f:
                    f.write(json.dumps(row) + "\n")
            if writer is not None:
                for key, value in row.items():
                    writer.add_scalar(key, value, epoch)
            bar.set_postfix({k: round(v, 3) for k, v in row.items() if k in ("train_loss", "test_acc", "batch_si")})
    finally:
        bar.close()
        reg.close()
        if writer is not None:
            writer.close()
    return _finish(paths, config, model, test_loader, num_classes, reg.layers, amp, status, history, elapsed,
                   train_split, device, ranks)


def knob_row(config: Config, batch_score: float, now: float) -> dict:
    """An epoch's log entries for the knob: SI runs log ``batch_si``, ``alpha`` and ``alpha_now``;
    MonoLoss runs ``batch_monoscore``, ``lambda`` and ``lambda_now`` (``alpha`` 0)."""
    if config.regularizer.kind == "monoloss":
        return {"batch_monoscore": batch_score, "alpha": 0.0, "lambda": config.regularizer.lambda_,
                "lambda_now": now}
    return {"batch_si": batch_score, "alpha": config.regularizer.alpha, "alpha_now": now}


def _finish(paths, config, model, test_loader, num_classes, layers, amp, status, history, elapsed, train_split, device,
            ranks: Ranks = Ranks(), extra: dict | None = None):
    """Final evaluation and files; final.json last, as the mark that the run is over.

    ``elapsed``: this network's training seconds (a stacked network's share of its stack's);
    ``extra``: more keys for final.json (the stacked trainer's stack size and wall time). final.json
    also holds every setting of the run (``settings``: the resolved config as dotted keys), so that
    it says by itself how its numbers were made.
    """
    final = {"status": status, "diverged": status == "diverged", "alpha": config.regularizer.alpha,
             "kind": config.regularizer.kind, "lambda": config.regularizer.lambda_,
             "seed": config.train.seed, "schedule": config.regularizer.schedule,
             "reg_from": first_active_epoch(_alpha_schedule(config), config.strength, config.train.epochs),
             "model": config.model.name, "data_sha256": train_split.checksum, "dataset": train_split.name,
             "epochs": len(history), "train_seconds": elapsed, "device": str(device),
             "images_per_second": len(history) * len(train_split.labels) / elapsed if elapsed else None,
             "processes": ranks.world_size, "dtype": config.train.dtype, **(extra or {}),
             **({"tokenization": train_split.tokenization} if isinstance(train_split, TextSplit) else {}),
             "version": __version__, "torch": torch.__version__, "settings": settings(config)}
    if status == "completed":
        result = evaluate(model, test_loader, num_classes, layers, amp, check_finite=False)
        if result["non_finite"]:  # NaN or inf logits on test images: no prediction to score, as a NaN loss
            status = "diverged"
            final.update(status=status, diverged=True, non_finite_test_images=result["non_finite"])
    if status == "completed":
        si = result["selectivity"]
        live = si.live_mean  # NaN when every unit is dead: JSON has no NaN, so null
        mono = si.mean_monoscore  # label embeddings; NaN when no unit is active
        final.update(test_acc=result["test_acc"], test_loss=result["test_loss"], mean_si=si.mean,
                     dead_fraction=si.dead_fraction, mean_si_live=None if math.isnan(live) else live,
                     mean_monoscore=None if math.isnan(mono) else mono, n_test=result["n_test"],
                     num_classes=num_classes,
                     **{f"si/{name}": value for name, value in si.per_layer.items()})
    if not ranks.main:  # rank 0 writes the run's files
        return final
    if status == "completed":
        save_tensors(paths.weights, model.state_dict(), metadata={"model": config.model.name})
        atomic_write(paths.si_per_unit, lambda tmp: si.to_frame().to_csv(tmp, index=False))
    else:
        final.update(test_acc=None, mean_si=None)
    write_text(paths.final, json.dumps(final, indent=2))
    return final
