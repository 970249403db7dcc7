"""What every attack of :mod:`selectivity.analysis.attacks` shares: checks, the
projection onto the threat model's ball, random starts and the loss gradient.

Images are in [0, 1] (the models normalize inside) and epsilon is in pixel units. The
projection clips to [0, 1] after projecting onto the ball, which keeps the ball: each
coordinate of the perturbation moves towards 0.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..eval_mode import eval_mode

__all__ = ["NORMS", "eval_mode"]

NORMS = ("linf", "l2")


def _check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}: use one of {NORMS}")
    return norm


def _check_eps(eps: float, norm: str, dim: int) -> float:
    """L-inf: eps in [0, 1]. L2: eps in [0, sqrt(D)], the diameter of the [0, 1]^D cube."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps):
        raise ValueError(f"eps must be a finite number, got {eps!r}")
    eps = float(eps)
    limit = 1.0 if norm == "linf" else math.sqrt(dim)
    if not 0.0 <= eps <= limit:
        bound = "1 (images are in [0, 1])" if norm == "linf" else f"sqrt(D) = {limit:.4g}, the diameter of [0, 1]^D"
        raise ValueError(f"eps for norm {norm!r} must lie in [0, {bound}], got {eps!r}")
    return eps


def _check_batch(x: Tensor, y: Tensor) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a float tensor of shape (N, ...) e.g. (N, C, H, W), got {shape}")
    if not isinstance(y, Tensor) or y.ndim != 1 or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError("y must be a 1-D integer tensor of labels")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]} labels")
    if x.numel() == 0:
        raise ValueError("x is empty")
    lo, hi = torch.aminmax(x.detach())
    if not (bool(lo >= 0) and bool(hi <= 1)):
        raise ValueError(
            f"images must lie in [0, 1] (the models normalize inside), got values from {float(lo):.4g} "
            f"to {float(hi):.4g}"
        )


def _check_logits(logits: Tensor, y: Tensor) -> None:
    if logits.ndim != 2 or logits.shape[0] != y.shape[0]:
        raise ValueError(f"the model must return logits of shape (N, C), got {tuple(logits.shape)}")
    lo, hi = torch.aminmax(y)
    if int(lo) < 0 or int(hi) >= logits.shape[1]:
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}), got values from {int(lo)} to {int(hi)}")


# -- steps ----------------------------------------------------------------------------------
def _per_sample_norm(t: Tensor) -> Tensor:
    """L2 norm of each sample, shaped (N, 1, ..., 1) to broadcast against t."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.ndim - 1)))


def _ascent_direction(grad: Tensor, norm: str) -> Tensor:
    """The steepest-ascent unit step for the norm: sign(g) (L-inf) or g / ||g||_2 (L2); 0 where g is not finite."""
    grad = grad.nan_to_num(0.0, 0.0, 0.0)  # a NaN gradient moves nothing rather than poisoning the image
    if norm == "linf":
        return grad.sign()
    return grad / _per_sample_norm(grad).clamp_min(1e-12)


def _project(x_adv: Tensor, x: Tensor, eps: float, norm: str) -> Tensor:
    """Project onto {||delta|| <= eps} around x, then clip to [0, 1].

    Clipping after the projection keeps the ball: each coordinate of delta moves towards 0.
    """
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        length = _per_sample_norm(delta)
        delta = delta * torch.where(length > eps, eps / length.clamp_min(1e-12), torch.ones_like(length))
    return (x + delta).clamp(0.0, 1.0)


def _random_start(x: Tensor, eps: float, norm: str, generator: torch.Generator | None) -> Tensor:
    """A uniform draw from the eps ball around x (L-inf cube or L2 ball), clipped to [0, 1]."""
    device = generator.device if generator is not None else x.device
    if norm == "linf":
        delta = torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype) * 2 - 1
        delta = delta.to(x.device) * eps
    else:
        direction = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
        direction = direction / _per_sample_norm(direction).clamp_min(1e-12)
        u = torch.rand(x.shape[0], generator=generator, device=device, dtype=x.dtype).to(x.device)
        radius = eps * u.pow(1.0 / x[0].numel())  # uniform in volume: P(r <= t) = (t / eps)^D
        delta = direction * radius.view(-1, *([1] * (x.ndim - 1)))
    return (x + delta).clamp(0.0, 1.0)


def _loss_and_grad(model: nn.Module, x_adv: Tensor, y: Tensor, check: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample cross-entropy (N,), its gradient w.r.t. x_adv, and the logits (detached)."""
    x_adv = x_adv.detach().requires_grad_(True)
    logits = model(x_adv)
    if check:
        _check_logits(logits, y)
    losses = F.cross_entropy(logits, y, reduction="none")
    (grad,) = torch.autograd.grad(losses.sum(), x_adv)
    return losses.detach(), grad, logits.detach()


def _model_device(model: nn.Module, default: torch.device) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return default
