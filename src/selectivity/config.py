"""Typed, validated run configurations: YAML presets plus dotted overrides.

A config is a tree of dataclasses. ``load_config("resnet20_cifar10", ["train.epochs=6"])``
reads a preset (or any YAML path), applies overrides, and checks every key and type, so
a typo or a wrong type fails at once with the key's full name, not hours into a run.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .safe_yaml import load_yaml, short_repr

__all__ = [
    "Config",
    "ConfigError",
    "PRESET_DIR",
    "config_to_dict",
    "config_from_dict",
    "list_presets",
    "load_config",
    "parse_override",
    "read_config_source",
]

PRESET_DIR = Path(__file__).resolve().parent / "configs"


class ConfigError(ValueError):
    """A config that cannot be used: unknown key, wrong type, bad value, missing file."""


@dataclass
class DataConfig:
    """Where the images come from and how they are augmented."""

    source: str = "demo"  # a path (CIFAR pickles, Tiny ImageNet, ImageFolder dir/zip) or "demo"
    cache_dir: str | None = None  # default: $SELECTIVITY_CACHE or ~/.cache/selectivity
    crop_padding: int = 4  # random crop after zero padding; 0 = no crop
    flip: bool = True  # random horizontal flip
    train_per_class: int | None = None  # keep the first N training images of each class
    test_limit: int | None = None  # evaluate on a fixed random subset of N test images
    # Labelled text (a .csv or .jsonl file, a folder with train.csv and test.csv, or a datasets folder), for a
    # Hugging Face text model (model.name: hf:DIR): the columns, and the most tokens a text may have (null: the
    # model's maximum) with the rule for a longer one: none (an error), right (keep the first), left (the last).
    text_column: str = "text"
    label_column: str = "label"
    max_length: int | None = None
    truncation: Literal["none", "right", "left"] = "none"


@dataclass
class ModelConfig:
    name: str = "resnet20"  # a registry name, "timm:NAME", "torchvision:NAME", "hf:DIR" or "package.module:factory"
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None  # a .safetensors state dict loaded before training (fine-tuning)


@dataclass
class OptimConfig:
    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    grad_clip: float | None = None  # clip the gradient norm (keeps large |alpha| stable)


@dataclass
class LRScheduleConfig:
    """Learning rate over training. Milestones are fractions of the epochs (0.5 = half-way)."""

    kind: Literal["step", "cosine", "onecycle", "constant"] = "step"
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])
    gamma: float = 0.1
    warmup_epochs: float = 0.0  # linear learning-rate warm-up from 0


@dataclass
class RegularizerConfig:
    """The regularizer term. ``kind`` chooses the measure the knob acts on: ``si`` (alpha, the class
    selectivity index) or ``monoloss`` (lambda, MonoScore: Nasiri-Sarvi et al. 2026). For both, a
    negative strength discourages the measure, a positive one encourages it, 0 is plain training."""

    kind: Literal["si", "monoloss"] = "si"
    alpha: float = 0.0
    # MonoLoss strength; spelled `regularizer.lambda` in YAML and on the command line.
    lambda_: float = field(default=0.0, metadata={"key": "lambda"})
    # MonoLoss reference embeddings: "labels" (one-hot: class-based monosemanticity); "file": one row per
    # training image in `embeddings_file` (.safetensors, or .npy with a JSON sidecar), checked against the
    # split's size and checksum; "encoder": a frozen model `encoder` ("package.module:factory" or a registered
    # name) with safetensors `encoder_weights` (a Hugging Face "hf:DIR" brings its own), run once over the
    # training images or texts. SI runs take none.
    embeddings: Literal["labels", "file", "encoder"] = "labels"
    embeddings_file: str | None = None
    encoder: str | None = None
    encoder_weights: str | None = None
    layers: list[str] | None = None  # module names or globs; None: the model's default layers
    warmup_epochs: float = 5.0  # alpha rises linearly from 0 over these epochs (0 = off)
    epoch_window: list[float] | None = None  # regularize only in [start, end) epochs
    # alpha epoch by epoch, Ranadive et al.'s form: "0*5 -20*15" = 5 epochs at 0, then 15 at -20.
    # It replaces the warm-up and the window; alpha is then its strongest value (set for you).
    schedule: str | None = None
    eps: float = 1e-7
    # Over several processes: "global" takes SI of the whole batch (class sums all-reduced, so
    # alpha means the same on 1 or 64 GPUs); "local" takes it per rank's share, another estimator.
    sync: Literal["global", "local"] = "global"
    # A transformer's token layers (N, tokens, units) give one number per unit and input: the mean over
    # all (real: padding never counts) tokens ("mean", CLS included), the class token ("cls"), the patch tokens
    # ("patches") or the last token ("last") of each token's positive part max(x, 0) (positive_part: false
    # keeps raw values). Measuring too.
    tokens: Literal["mean", "cls", "patches", "last"] = "mean"
    positive_part: bool = True


@dataclass
class RecordConfig:
    """Selectivity over training: per-unit SI of the regularized layers on a fixed, class-balanced
    subset of the test split, at initialization (epoch 0), after each of the first ``first_epochs``
    epochs, then every ``every`` epochs, and ``per_epoch`` times within each recorded epoch."""

    enabled: bool = False
    first_epochs: int = 15
    every: int = 10
    per_epoch: int = 1  # > 1: also record at evenly spaced steps inside the epoch
    per_class: int = 50  # images of each class in the recording subset


@dataclass
class TrainConfig:
    epochs: int = 160
    batch_size: int = 128
    eval_every: int = 1  # evaluate test accuracy every N epochs (and always at the end)
    device: str = "auto"  # auto: cuda when available, else cpu
    amp: Literal["auto", "bf16", "off"] = "auto"  # auto: bf16 autocast on CUDA only
    channels_last: bool = False
    threads: int | None = None  # torch CPU threads; None: torch's default
    seed: int = 0
    sync_bn: bool = True  # several processes: batch-norm statistics of the global batch (False: per rank)
    # float64: weights, data and arithmetic in double precision (no autocast), where stacked, data-parallel
    # and lone training give the same weights to 1e-9; float32 runs part after a few hundred steps.
    dtype: Literal["float32", "float64"] = "float32"


@dataclass
class Config:
    name: str = "custom"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    lr_schedule: LRScheduleConfig = field(default_factory=LRScheduleConfig)
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    record: RecordConfig = field(default_factory=RecordConfig)

    def validate(self) -> "Config":
        """Value checks that types alone cannot express."""
        bad = _first_non_finite(self, "")
        if bad:  # NaN or inf would train and write non-JSON numbers; check before any comparison
            raise ConfigError(f"{bad[0]} must be a finite number, got {short_repr(bad[1])}")
        checks = [
            (self.train.epochs >= 1, "train.epochs must be >= 1"),
            (0 <= self.train.seed < 2**32,
             f"train.seed must be an integer in [0, 2**32) (the range numpy and torch seed from), got "
             f"{short_repr(self.train.seed)}"),
            (self.train.batch_size >= 1, "train.batch_size must be >= 1"),
            (self.train.eval_every >= 1, "train.eval_every must be >= 1"),
            (self.optim.lr > 0, "optim.lr must be > 0"),
            (self.optim.weight_decay >= 0, "optim.weight_decay must be >= 0"),
            (0 <= self.optim.label_smoothing < 1, "optim.label_smoothing must be in [0, 1)"),
            (self.optim.grad_clip is None or self.optim.grad_clip > 0, "optim.grad_clip must be > 0"),
            (self.data.crop_padding >= 0, "data.crop_padding must be >= 0"),
            (self.regularizer.warmup_epochs >= 0, "regularizer.warmup_epochs must be >= 0"),
            (self.regularizer.eps > 0, "regularizer.eps must be > 0"),
            (all(0 < m < 1 for m in self.lr_schedule.milestones), "lr_schedule.milestones must lie in (0, 1)"),
            (
                self.regularizer.epoch_window is None or len(self.regularizer.epoch_window) == 2,
                "regularizer.epoch_window must be [start, end]",
            ),
            (
                self.regularizer.epoch_window is None or len(self.regularizer.epoch_window) != 2
                or 0 <= self.regularizer.epoch_window[0] < self.regularizer.epoch_window[1],
                "regularizer.epoch_window must be [start, end] with 0 <= start < end, "
                f"got {self.regularizer.epoch_window}",
            ),
            (self.lr_schedule.gamma > 0, f"lr_schedule.gamma must be > 0, got {self.lr_schedule.gamma}"),
            (self.lr_schedule.warmup_epochs >= 0, "lr_schedule.warmup_epochs must be >= 0"),
            (self.optim.momentum >= 0, f"optim.momentum must be >= 0, got {self.optim.momentum}"),
            (self.data.train_per_class is None or self.data.train_per_class >= 1,
             f"data.train_per_class must be >= 1 (or null for all), got {self.data.train_per_class}"),
            (self.data.test_limit is None or self.data.test_limit >= 1,
             f"data.test_limit must be >= 1 (or null for all), got {self.data.test_limit}"),
            (self.data.max_length is None or self.data.max_length >= 2,
             f"data.max_length must be >= 2 tokens (or null for the model's maximum), got {self.data.max_length}"),
            (self.train.threads is None or self.train.threads >= 1,
             f"train.threads must be >= 1 (or null for torch's default), got {self.train.threads}"),
            (self.train.dtype != "float64" or self.train.amp != "bf16",
             "train.amp=bf16 computes in bfloat16, which defeats train.dtype=float64: set train.amp=off or auto"),
            (_is_device(self.train.device),
             f"train.device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {short_repr(self.train.device)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        self._check_knobs()
        self._check_schedule()
        if self.regularizer.alpha == 0 and self.regularizer.lambda_ == 0:
            self.regularizer.kind = "si"  # plain training, whichever knob was named: one baseline, one run id
        self._check_embeddings()
        return self

    def _check_embeddings(self) -> None:
        """Each embedding source with its own keys; an SI run (or plain training) takes none, so its
        embedding keys are reset: its run id does not depend on a MonoLoss setting it never uses."""
        reg = self.regularizer
        if reg.kind == "si":
            reg.embeddings, reg.embeddings_file, reg.encoder, reg.encoder_weights = "labels", None, None, None
            return
        needs = {"labels": (), "file": ("embeddings_file",), "encoder": ("encoder", "encoder_weights")}[reg.embeddings]
        if reg.embeddings == "encoder" and str(reg.encoder or "").startswith("hf:"):
            needs = ("encoder",)  # a Hugging Face folder holds its own weights
        for key in ("embeddings_file", "encoder", "encoder_weights"):
            given = getattr(reg, key) is not None
            if key in needs and not given:
                raise ConfigError(f"regularizer.embeddings is {short_repr(reg.embeddings)} but "
                                  f"regularizer.{key} is not set")
            if key not in needs and given and not (key == "encoder_weights" and reg.embeddings == "encoder"):
                raise ConfigError(f"regularizer.{key} is set but regularizer.embeddings is "
                                  f"{short_repr(reg.embeddings)}: "
                                  f"set regularizer.embeddings={'file' if key == 'embeddings_file' else 'encoder'} "
                                  f"to use it")

    def _check_schedule(self) -> None:
        """A per-epoch alpha schedule sets alpha to its strongest value (so tables group by it)."""
        from .core.schedule import PerEpochAlpha

        reg, rec = self.regularizer, self.record
        if min(rec.first_epochs, rec.every - 1, rec.per_epoch - 1, rec.per_class - 1) < 0:
            raise ConfigError("record.first_epochs must be >= 0, record.every, record.per_epoch and "
                              "record.per_class >= 1")
        if reg.schedule is None:
            return
        try:
            schedule = PerEpochAlpha.parse(reg.schedule)
        except ValueError as err:
            raise ConfigError(f"regularizer.schedule: {err}") from None
        strength = schedule.strength
        if schedule.epochs != self.train.epochs:  # else a run would record a value it never trained with
            raise ConfigError(f"regularizer.schedule {short_repr(reg.schedule)} spells out {schedule.epochs} "
                              f"epochs but "
                              f"train.epochs is {self.train.epochs}: give one value per epoch of training")
        knob, value = ("lambda", reg.lambda_) if reg.kind == "monoloss" else ("alpha", reg.alpha)
        if value not in (0.0, strength):
            raise ConfigError(f"regularizer.{knob} is {value:g} but regularizer.schedule {short_repr(reg.schedule)} "
                              f"reaches {strength:g}: leave {knob} out, the schedule sets it")
        if reg.epoch_window is not None:
            raise ConfigError("regularizer.schedule and regularizer.epoch_window both say when to regularize: "
                              "give one of them")
        if reg.kind == "monoloss":
            reg.lambda_ = strength
        else:
            reg.alpha = strength

    def _check_knobs(self) -> None:
        """One knob per run: alpha drives the SI term, lambda the MonoLoss term."""
        reg = self.regularizer
        if reg.kind == "si" and reg.lambda_ != 0:
            raise ConfigError(f"regularizer.lambda is {reg.lambda_:g} but regularizer.kind is 'si' (its knob is "
                              "regularizer.alpha): set regularizer.kind=monoloss to use lambda")
        if reg.kind == "monoloss" and reg.alpha != 0:
            raise ConfigError(f"regularizer.alpha is {reg.alpha:g} but regularizer.kind is 'monoloss' (its knob is "
                              "regularizer.lambda): set regularizer.lambda instead")

    @property
    def strength(self) -> float:
        """The knob's value: alpha for the SI term, lambda for MonoLoss."""
        return self.regularizer.lambda_ if self.regularizer.kind == "monoloss" else self.regularizer.alpha


def _first_non_finite(node: Any, key: str) -> tuple[str, float] | None:
    """The first (key, value) of a float that is NaN or infinite, in a config tree."""
    if isinstance(node, float):
        return None if math.isfinite(node) else (key, node)
    if dataclasses.is_dataclass(node):
        items = [(_key(f), getattr(node, f.name)) for f in dataclasses.fields(node)]
    elif isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = [(f"[{i}]", v) for i, v in enumerate(node)]
    else:
        return None
    for name, value in items:
        sub = f"{key}{name}" if name.startswith("[") or not key else f"{key}.{name}"
        found = _first_non_finite(value, sub)
        if found:
            return found
    return None


def _is_device(name: str) -> bool:
    """A device string torch understands (availability is checked when training starts)."""
    if name == "auto":
        return True
    try:
        import torch

        torch.device(name)
    except (RuntimeError, ValueError):
        return False
    return True


# -- dict <-> dataclass, with type checks ----------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key} must be {' or '.join(_type_name(o) for o in options)}, got {short_repr(value)}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key} must be one of {list(typing.get_args(tp))}, got {short_repr(value)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {short_repr(value)}")
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {short_repr(value)}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return _from_dict(tp, value, key)
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is float:
        ok, value = is_number, float(value) if is_number else value
    elif tp is int:
        ok = is_number and isinstance(value, int)
    else:
        ok = isinstance(value, tp)
    if not ok:
        raise ConfigError(f"{key} must be {_type_name(tp)}, got {short_repr(value)} ({type(value).__name__})")
    return value


def _key(f: dataclasses.Field) -> str:
    """A field's name in YAML: its own, or ``metadata["key"]`` where that is a Python keyword (lambda)."""
    return f.metadata.get("key", f.name)


def _from_dict(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'} must be a mapping, got {short_repr(data)}")
    hints = typing.get_type_hints(cls)
    fields = {_key(f): f.name for f in dataclasses.fields(cls)}
    names = list(fields)
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"unknown config key {short_repr(full)}{hint}")
        kwargs[fields[key]] = _coerce(value, hints[fields[key]], full)
    return cls(**kwargs)


def config_from_dict(data: dict) -> Config:
    """A validated Config from a plain dict (as read from YAML)."""
    return _from_dict(Config, data, "").validate()


def config_to_dict(config: Config) -> dict:
    """The plain dict of a config, with each key as YAML spells it (``regularizer.lambda``)."""

    def plain(node: Any) -> Any:
        if dataclasses.is_dataclass(node):
            return {_key(f): plain(getattr(node, f.name)) for f in dataclasses.fields(node)}
        if isinstance(node, dict):
            return {k: plain(v) for k, v in node.items()}
        if isinstance(node, list):
            return [plain(v) for v in node]
        return copy.deepcopy(node)

    return plain(config)


# -- presets and overrides -------------------------------------------------------------------


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def read_config_source(source: str | Path | dict | None) -> dict:
    """The raw mapping of a preset name, a YAML path or a dict (copied), before validation.

    A file's ``name`` defaults to its stem.
    """
    if source is None:
        return {}
    if isinstance(source, dict):
        return copy.deepcopy(source)
    path = Path(source)
    if not path.suffix and (PRESET_DIR / f"{source}.yaml").is_file():
        path = PRESET_DIR / f"{source}.yaml"
    if not path.is_file():
        raise ConfigError(f"config {short_repr(str(source))} is neither a YAML file nor a preset; presets: "
                          f"{', '.join(list_presets())}")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"), f"config {path}")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys, got {type(data).__name__}")
    data.setdefault("name", path.stem)
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=6"`` -> (["train", "epochs"], 6); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {short_repr(text)} must look like key.sub=value")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"override {short_repr(text)} has an empty key")
    try:
        value = load_yaml(raw, f"override {short_repr(text)}") if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        try:  # YAML 1.1 reads "5e-4" as a string; on a command line it means a number
            value = float(value)
        except ValueError:
            pass
    return key.strip().split("."), value


def _set_dotted(data: dict, keys: list[str], value: Any) -> None:
    node = data
    for i, key in enumerate(keys[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {'.'.join(keys)}: {'.'.join(keys[: i + 1])} is not a section")
        node = child
    node[keys[-1]] = value


def load_config(source: str | Path | dict | None = None, overrides: list[str] | None = None) -> Config:
    """A preset name, a YAML path or a dict, plus ``key.sub=value`` overrides, validated.

    Keys the file does not set keep the dataclass defaults.
    """
    data = read_config_source(source)
    for text in overrides or []:
        _set_dotted(data, *parse_override(text))
    return config_from_dict(data)
