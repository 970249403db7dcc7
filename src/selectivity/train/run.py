"""The run directory is the record: one class names every file, and writes are atomic.

    RUN_DIR/
      config.yaml            the resolved config (a re-run with another config is refused)
      metrics.jsonl          one line per finished epoch
      checkpoint.safetensors model, optimizer and history after the last finished epoch
      weights.safetensors    the final weights
      si_per_unit.csv        the final per-unit selectivity (test set)
      final.json             written last: its presence means the run is over
      tensorboard/           TensorBoard logs, when tensorboard is installed
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

__all__ = ["RunPaths", "RunError", "atomic_write", "write_text", "save_checkpoint", "load_checkpoint", "read_json"]


class RunError(RuntimeError):
    """A run directory that cannot be used as asked (another config, a corrupt checkpoint)."""


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint.safetensors"

    @property
    def weights(self) -> Path:
        return self.root / "weights.safetensors"

    @property
    def si_per_unit(self) -> Path:
        return self.root / "si_per_unit.csv"

    @property
    def final(self) -> Path:
        return self.root / "final.json"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp)`` then rename over ``path``: readers see the old or the new file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RunError(f"{path} is unreadable or not JSON ({err})") from None


def _flat_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state_dict -> (tensors, JSON-able rest)."""
    tensors, scalars = {}, {}
    for index, per_param in state["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, info: dict) -> None:
    """Model, optimizer and ``info`` (epoch, history...) in one safetensors file, atomically."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    optim_tensors, optim_rest = _flat_optimizer(optimizer.state_dict())
    tensors.update(optim_tensors)
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    metadata = {"info": json.dumps(info), "optimizer": json.dumps(optim_rest), "format": "selectivity-checkpoint-1"}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Restore model and optimizer from :func:`save_checkpoint`; returns its ``info``."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        info = json.loads(metadata["info"])
        optim_rest = json.loads(metadata["optimizer"])
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError, RuntimeError) as err:
        raise RunError(
            f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {err}); "
            "move it away to start the run again from scratch"
        ) from None
    device = next(model.parameters()).device
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_state)
    except RuntimeError as err:
        raise RunError(f"checkpoint {path} does not fit this model: {str(err).splitlines()[0]}") from None
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            # Adam's step count stays on the CPU, as torch keeps it.
            state.setdefault(int(index), {})[name] = value if name == "step" else value.to(device)
    for key, value in optim_rest["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": optim_rest["param_groups"]})
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return info
