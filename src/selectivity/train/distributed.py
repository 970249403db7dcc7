"""Data parallelism for ``train()``: one run over several processes (torchrun, srun, submitit).

The trainer asks three things of this module: join the process group the launcher described
in the environment (:func:`setup`), wrap the model (:func:`wrap_model`: synchronized batch
norm, then DistributedDataParallel) and sum numbers over the ranks (:func:`sum_over_ranks`).
Everything else follows from the loader's rank slices and the collective meter:

* ``train.batch_size`` is the global batch; rank r trains on slice r of it, so step k of an
  N-process run sees the images of step k of a one-process run with the same seed.
* Only rank 0 writes the run directory (atomically, as one process does); every rank reads
  the same checkpoint to resume, so a run may resume on another number of processes.

Launchers: ``torchrun`` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; a
submitit multi-task SLURM job gets them from :func:`env_from_submitit`. NCCL on GPUs, gloo
on CPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from ..core.distributed import convert_sync_batchnorm, is_distributed, sum_across_ranks

__all__ = ["Ranks", "setup", "wrap_model", "unwrap", "sum_over_ranks", "agree", "env_from_submitit", "teardown"]

#: How long a collective waits for the other ranks before it fails (a lost rank, a lone call).
TIMEOUT = timedelta(minutes=int(os.environ.get("SELECTIVITY_DIST_TIMEOUT_MIN", "30")))


@dataclass(frozen=True)
class Ranks:
    """Where this process stands: its rank, the number of processes, its rank on this node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and shows progress."""
        return self.rank == 0


def setup(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join the launcher's process group (once) and pick this rank's device.

    Without WORLD_SIZE > 1 in the environment and no process group already up (tests start
    their own), this is a one-process run: ``Ranks()`` and ``device`` unchanged.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda" and device.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = torch.device("cuda", local_rank)
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    if not is_distributed():
        return Ranks(), device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return Ranks(dist.get_rank(), dist.get_world_size(), local_rank), device


def teardown() -> None:
    """Leave the process group this module made (a command's last step)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, device: torch.device, sync_bn: bool) -> nn.Module:
    """The model DDP trains: batch norm over the global batch (``sync_bn``), then DDP.

    Returns ``model`` itself in a one-process run. Convert before the optimizer is built:
    conversion makes new batch-norm parameters.
    """
    if not is_distributed():
        return model
    if sync_bn:
        model = convert_sync_batchnorm(model, device)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside DDP (its state dict has the one-process names)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """``values`` summed over all ranks (no gradient); itself in a one-process run."""
    with torch.no_grad():
        return sum_across_ranks(values)


def agree(ranks: Ranks, decide):
    """Run ``decide()`` on rank 0 and give its answer to every rank; its error too.

    A mistake found by rank 0 alone (a busy or foreign run directory) then ends every rank
    with the same error instead of leaving the others waiting in a collective.
    """
    if ranks.world_size == 1:
        return decide()
    box = [None]
    if ranks.main:
        try:
            box[0] = ("ok", decide())
        except Exception as err:  # noqa: BLE001 - re-raised below, on every rank
            box[0] = ("error", err)
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def env_from_submitit() -> dict[str, str]:
    """torchrun's environment variables for this task of a submitit multi-task SLURM job.

    Empty for a one-task job. The rendezvous is task 0's node, on a port drawn from the job
    id (two jobs on one node do not collide unless their ids are 20000 apart).
    """
    try:
        import submitit

        env = submitit.JobEnvironment()
    except (ImportError, RuntimeError):
        return {}
    if env.num_tasks <= 1:
        return {}
    job = "".join(ch for ch in str(env.job_id) if ch.isdigit()) or "0"
    return {"RANK": str(env.global_rank), "WORLD_SIZE": str(env.num_tasks), "LOCAL_RANK": str(env.local_rank),
            "MASTER_ADDR": env.hostnames[0], "MASTER_PORT": str(20000 + int(job) % 20000)}
