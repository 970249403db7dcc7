"""The collectives the selectivity math needs under ``torch.distributed``, in one place.

* :func:`sum_across_ranks` sums a tensor over all ranks *with a gradient*: the backward
  pass sums the incoming gradients over the ranks too, so a loss computed from globally
  summed class sums sends every rank the gradient of its own share of the sums.
* :class:`SyncBatchNormCPU` is batch norm with statistics over the global batch for CPU
  processes (gloo): torch's ``nn.SyncBatchNorm`` accepts GPU tensors only.
* :func:`collective` turns the error of a collective that one rank entered alone (it
  times out) into a one-line error that says what went wrong.

Nothing here does anything when torch.distributed is not initialized or the world has one
process: a single-process run takes the exact code path it always took.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "CollectiveError",
    "collective",
    "convert_sync_batchnorm",
    "is_distributed",
    "rank_and_world",
    "sum_across_ranks",
    "SyncBatchNormCPU",
]


class CollectiveError(RuntimeError):
    """A collective that not every rank entered: it timed out instead of hanging."""


def is_distributed() -> bool:
    """True under an initialized process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    """(rank, world size): (0, 1) without a process group."""
    return (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)


class _SumAcrossRanks(torch.autograd.Function):
    # d(sum_r x_r)/d(x_s) = 1 for every s: the gradient of x_s is the sum over ranks of the
    # gradients of the summed output.
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        out = x.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def sum_across_ranks(x: Tensor) -> Tensor:
    """``x`` summed over all ranks, differentiable (identity without a process group).

    Every rank must call it, in the same order, and call ``backward`` through it too.
    """
    if not is_distributed():
        return x
    if torch.is_grad_enabled() and x.requires_grad:
        return _SumAcrossRanks.apply(x)
    out = x.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


@contextlib.contextmanager
def collective(what: str, timeout: float | None = None):
    """Run the collectives of ``what``; a rank left alone ends with :class:`CollectiveError`.

    On gloo a monitored barrier with ``timeout`` seconds (default: the process group's)
    checks first that every rank arrived; on NCCL the process group's own timeout applies.
    """
    if not is_distributed():
        yield
        return
    rank = dist.get_rank()
    try:
        if dist.get_backend() == "gloo":
            kwargs = {"timeout": timedelta(seconds=timeout)} if timeout is not None else {}
            dist.monitored_barrier(**kwargs)
        yield
    except RuntimeError as err:  # gloo / NCCL report timeouts and lost peers as RuntimeError
        if isinstance(err, CollectiveError):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CollectiveError(
            f"{what} is a collective: every rank must call it, but rank {rank} waited in vain "
            f"({first[:300]})"
        ) from None


class SyncBatchNormCPU(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are those of the global batch (all ranks).

    Two differentiable all-reduces per layer: the sum and count (mean), then the sum of
    squared deviations (variance; two passes, as exact as one process). Eval mode, and a
    world of one, are plain batch norm.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {x.dim()}-D")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if not (self.training and is_distributed()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        local = torch.tensor([x.numel() // max(x.shape[1], 1)], dtype=x.dtype, device=x.device)
        count = sum_across_ranks(local)
        mean = sum_across_ranks(x.sum(dims)) / count
        shape = [1, -1] + [1] * (x.dim() - 2)
        centred = x - mean.view(shape)
        var = sum_across_ranks(centred.pow(2).sum(dims)) / count
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * (count / (count - 1).clamp(min=1))
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.detach(), alpha=factor)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every batch-norm layer of ``model`` synchronized over ranks (torch's on GPUs, ours on CPU)."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _convert_cpu(model)


def _convert_cpu(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, SyncBatchNormCPU):
        # Built on the module's own device and in its dtype: a float64 model keeps float64 batch norm
        # (load_state_dict would cast into the default dtype).
        like = next(module.parameters(), None)
        like = like if like is not None else next(module.buffers(), torch.empty(0))
        new = SyncBatchNormCPU(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats, device=like.device, dtype=like.dtype)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, _convert_cpu(child))
    return module
