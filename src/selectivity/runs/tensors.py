"""Tensor files of a run (checkpoint, weights) in safetensors, with a checksum of their content.

A safetensors header can be intact while the bytes after it are garbled (a bad disk, a partial
copy); the tensors then load without complaint and give wrong numbers. Every file written
here records the SHA-256 of its tensors (names, dtypes, shapes and bytes) in its metadata, and
every read recomputes it: a mismatch is a :class:`RunError`, never a silent wrong number.
Files written before checksums existed (no ``sha256`` key) are read as they are.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .files import RunError, atomic_write

__all__ = ["tensor_digest", "save_tensors", "load_tensors", "save_checkpoint", "load_checkpoint"]

CHECKSUM_KEY = "sha256"


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` atomically with their checksum in the metadata."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    metadata = {**(metadata or {}), CHECKSUM_KEY: tensor_digest(tensors)}
    atomic_write(Path(path), lambda tmp: _save_file(tensors, tmp, metadata))


def _save_file(tensors: dict, tmp: Path, metadata: dict) -> None:
    """safetensors' writer, whose I/O failures (a full disk) come as SafetensorError: as the OSError they
    are, so that :func:`atomic_write` names the file and the reason in one line."""
    try:
        save_file(tensors, str(tmp), metadata=metadata)
    except SafetensorError as err:
        text = str(err)
        code = re.search(r"code: (\d+)", text)
        if code is None:
            raise
        number = int(code.group(1))
        raise OSError(number, os.strerror(number)) from None


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file, checksum verified; RunError if corrupt."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise RunError(f"{path} is corrupt or truncated ({type(err).__name__}: {err})") from None
    expected = metadata.get(CHECKSUM_KEY)
    if expected is not None and tensor_digest(tensors) != expected:
        raise RunError(f"{path} is corrupt: its tensors do not match the checksum recorded when it was written")
    return tensors, metadata


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
    """Model, optimizer, RNG and ``info`` (epoch, history...) in one safetensors file, atomically."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    optim_tensors, optim_rest = _flat_optimizer(optimizer.state_dict())
    tensors.update(optim_tensors)
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    metadata = {"info": json.dumps(info), "optimizer": json.dumps(optim_rest), "format": "selectivity-checkpoint-1"}
    save_tensors(path, tensors, metadata)


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Restore model, optimizer and RNG from :func:`save_checkpoint`; returns its ``info``."""
    try:
        tensors, metadata = load_tensors(path)
        info = json.loads(metadata["info"])
        optim_rest = json.loads(metadata["optimizer"])
    except (RunError, KeyError, json.JSONDecodeError) as err:
        raise RunError(f"checkpoint {path} is unusable ({err}); move it away to start the run again from scratch") \
            from None
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
