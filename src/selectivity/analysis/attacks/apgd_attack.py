"""Auto-PGD (Croce & Hein 2020), L-inf: APGD on the cross-entropy and the targeted APGD-T on DLR.

Written from the paper ("Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", ICML 2020, Algorithm 1 and section 3-4). One run of APGD on a
loss f to maximize, per sample, with x^(0) a uniform point of the eps ball:

- step size eta^(0) = 2 eps, one per sample;
- x^(1) = P(x^(0) + eta sign(grad f(x^(0))));
- for k >= 1: z^(k+1) = P(x^(k) + eta sign(grad f(x^(k)))) and
  x^(k+1) = P(x^(k) + a (z^(k+1) - x^(k)) + (1 - a)(x^(k) - x^(k-1))), momentum a = 0.75;
- x_max, f_max: the best point and loss so far;
- at the checkpoints w_j = ceil(p_j N) (p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1}
  - 0.03, 0.06)) the step size halves and the iterate restarts from x_max when
  *condition 1* (fewer than rho = 0.75 of the steps since w_{j-1} raised f) or *condition 2*
  (eta was not halved at w_{j-1} and f_max has not risen since w_{j-1}) holds.

P projects onto the eps ball around x, then clips to [0, 1]. Two choices the paper leaves
open: the checkpoint test runs on the iterate x^(w_j) itself, over the w_j - w_{j-1} steps
that led to it, and restarts that iterate (Algorithm 1 writes the test in the loop step that
has just made x^(w_j + 1)); after a restart from x_max the momentum term starts from zero
(x^(k-1) is set to x_max too). A run costs steps + 1 forward and backward passes.

The attack succeeds on a sample when *any* iterate is misclassified; that iterate is returned
(else x_max), so robust accuracy counts the samples no iterate fooled. Further restarts (and,
for APGD-T, further target classes) run only on the samples not yet fooled, as AutoAttack does.

APGD-T ("apgd-dlr" on the command line), as AutoAttack's standard version runs it: for each of
the ``targets`` classes with the highest clean logits after the top one (9 by default; at most
C - 1), one APGD run of ``steps`` iterations on the targeted DLR loss

.. math::
    \\mathrm{DLR}_t(z, y) = -\\frac{z_y - z_t}{z_{\\pi_1} - (z_{\\pi_3} + z_{\\pi_4}) / 2}

(pi sorts the logits in decreasing order), which is invariant to shifts and scales of the
logits, so a saturated softmax does not hide the gradient. It needs C >= 4 classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import _check_batch, _check_eps, _check_logits, _check_norm, _project, _random_start, eval_mode

__all__ = ["apgd", "apgd_ce", "apgd_checkpoints", "apgd_t", "targeted_dlr_loss"]

MOMENTUM = 0.75
RHO = 0.75


def apgd_checkpoints(steps: int) -> list[int]:
    """The iterations w_j = ceil(p_j * steps) at which APGD may halve its step (w_0 = 0 first).

    Example::

        >>> apgd_checkpoints(100)
        [0, 22, 41, 57, 70, 80, 87, 93, 99]
    """
    p = [0.0, 0.22]
    while True:
        nxt = p[-1] + max(p[-1] - p[-2] - 0.03, 0.06)
        if nxt > 1:
            break
        p.append(nxt)
    # round() first: 0.57 * 100 is 56.99999999999999 in floating point, and ceil must see 57
    points = [math.ceil(round(q * steps, 9)) for q in p]
    return sorted(set(points))


def targeted_dlr_loss(logits: Tensor, y: Tensor, target: Tensor) -> Tensor:
    r"""Targeted difference-of-logits ratio, per sample (N,); higher when z_t nears or passes z_y.

    .. math::
        -\frac{z_y - z_t}{z_{\pi_1} - (z_{\pi_3} + z_{\pi_4}) / 2 + 10^{-12}}

    Example::

        >>> targeted_dlr_loss(torch.tensor([[4.0, 3.0, 2.0, 0.0]]), torch.tensor([0]), torch.tensor([1]))
        tensor([-0.3333])
    """
    ordered = logits.sort(dim=1, descending=True).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_t = logits.gather(1, target[:, None]).squeeze(1)
    scale = ordered[:, 0] - 0.5 * (ordered[:, 2] + ordered[:, 3])
    return -(z_y - z_t) / (scale + 1e-12)


def _ce_loss(logits: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(logits, y, reduction="none")


def _apgd_run(model: nn.Module, x: Tensor, y: Tensor, eps: float, loss_fn: Callable[[Tensor, Tensor], Tensor],
              steps: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """One APGD run from a random start: (points (N, ...), fooled (N,) bool)."""
    view = (-1, *([1] * (x.ndim - 1)))
    checkpoints = set(apgd_checkpoints(steps)[1:])

    def evaluate(point: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        point = point.detach().requires_grad_(True)
        logits = model(point)
        loss = loss_fn(logits, y)
        (grad,) = torch.autograd.grad(loss.sum(), point)
        return loss.detach(), grad, logits.detach().argmax(dim=1) != y

    def step(point: Tensor, grad: Tensor) -> Tensor:
        return _project(point + eta.view(view) * grad.sign().nan_to_num(0.0), x, eps, "linf")

    x_prev = x_k = _random_start(x, eps, "linf", generator)
    f_k, g_k, fooled = evaluate(x_k)
    found = x_k.clone()  # the first misclassified iterate of each sample
    eta = torch.full((x.shape[0],), 2.0 * eps, dtype=x.dtype, device=x.device)
    x_max, f_max, g_max = x_k.clone(), f_k.clone(), g_k.clone()
    f_max_last, reduced_last = f_max.clone(), torch.zeros_like(fooled)
    rises = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    last_checkpoint = 0
    for k in range(steps):
        if k == 0:
            x_next = step(x_k, g_k)
        else:
            z = step(x_k, g_k)
            x_next = _project(x_k + MOMENTUM * (z - x_k) + (1 - MOMENTUM) * (x_k - x_prev), x, eps, "linf")
        f_next, g_next, fooled_next = evaluate(x_next)
        new = fooled_next & ~fooled
        found = torch.where(new.view(view), x_next, found)
        fooled = fooled | fooled_next
        rises += (f_next > f_k).long()
        better = f_next > f_max
        x_max = torch.where(better.view(view), x_next, x_max)
        g_max = torch.where(better.view(view), g_next, g_max)
        f_max = torch.where(better, f_next, f_max)
        x_prev, x_k, f_k, g_k = x_k, x_next, f_next, g_next
        if k + 1 in checkpoints:  # x^(k+1) is the checkpoint's iterate: the window since the last one is done
            w = k + 1
            condition1 = rises < RHO * (w - last_checkpoint)
            condition2 = ~reduced_last & (f_max <= f_max_last)
            reduce = condition1 | condition2
            eta = torch.where(reduce, eta / 2, eta)
            back = reduce.view(view)  # restart from x_max, with the loss and gradient kept from when it was found
            x_k = torch.where(back, x_max, x_k)
            x_prev = torch.where(back, x_max, x_prev)
            f_k = torch.where(reduce, f_max, f_k)
            g_k = torch.where(back, g_max, g_k)
            reduced_last, f_max_last = reduce, f_max.clone()
            rises.zero_()
            last_checkpoint = w
    return torch.where(fooled.view(view), found, x_max), fooled


def _check_common(x, y, eps, norm, steps, restarts) -> float:
    _check_batch(x, y)
    _check_norm(norm)
    if norm != "linf":
        raise ValueError(f"APGD here is L-inf only, got norm {norm!r}")
    eps = _check_eps(eps, norm, x[0].numel())
    for name, value in (("steps", steps), ("restarts", restarts)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    return eps


def apgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    loss: str = "ce",
    norm: str = "linf",
    steps: int = 100,
    restarts: int = 1,
    targets: int = 9,
    generator: torch.Generator | None = None,
) -> Tensor:
    """APGD on the cross-entropy (``loss="ce"``) or APGD-T on the targeted DLR loss (``"dlr-t"``).

    Args:
        model (nn.Module): returns logits (N, C) for images in [0, 1]; run in eval mode.
        x (Tensor): (N, ...) images in [0, 1].
        y (Tensor): (N,) integer labels.
        eps (float): L-inf radius in [0, 1] pixel units.
        loss (str): "ce" (APGD-CE) or "dlr-t" (APGD-T: one run per target class). Default: "ce".
        norm (str): "linf" only. Default: "linf".
        steps (int): iterations of each run (N_iter). Default: 100 (AutoAttack's).
        restarts (int): runs from new random starts, each on the samples not yet fooled
            (per target class for "dlr-t"). Default: 1 (AutoAttack's standard version).
        targets (int): "dlr-t" only: the classes with the highest clean logits after the
            top one, at most C - 1. Default: 9 (AutoAttack's).
        generator (torch.Generator | None): source of the random starts. Default: None.

    Returns:
        Tensor: (N, ...) points within eps of x in [0, 1]: a misclassified one where an
        iterate was, else the highest-loss point of the last run.
    """
    eps = _check_common(x, y, eps, norm, steps, restarts)
    if loss not in ("ce", "dlr-t"):
        raise ValueError(f"unknown APGD loss {loss!r}: use 'ce' or 'dlr-t'")
    if isinstance(targets, bool) or not isinstance(targets, int) or targets < 1:
        raise ValueError(f"targets must be a positive int, got {targets!r}")
    x = x.detach()
    if eps == 0:
        return x.clone()
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        x = x.clone()  # an inference-mode x can still take part in autograd
        with torch.no_grad():
            logits = model(x)
        _check_logits(logits, y)
        classes = logits.shape[1]
        if loss == "ce":
            runs: list[Tensor | None] = [None] * restarts
        else:
            if classes < 4:
                raise ValueError(f"the targeted DLR loss needs at least 4 classes, the model has {classes}")
            ranked = logits.argsort(dim=1, descending=True)
            # the (j+1)-th highest clean logit, j = 1..targets: never the predicted class
            runs = [ranked[:, j] for j in range(1, min(targets, classes - 1) + 1) for _ in range(restarts)]
        best = x.clone()
        fooled = logits.argmax(dim=1) != y
        for target in runs:
            todo = (~fooled).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            if target is None:
                loss_fn = _ce_loss
            else:
                t = target[todo]
                loss_fn = lambda z, labels, t=t: targeted_dlr_loss(z, labels, t)  # noqa: E731
            points, hit = _apgd_run(model, x[todo], y[todo], eps, loss_fn, steps, generator)
            best[todo] = points
            fooled[todo] = hit
        return best.detach()


def apgd_ce(model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: str = "linf", steps: int = 100,
            restarts: int = 1, generator: torch.Generator | None = None) -> Tensor:
    """APGD on the cross-entropy ("apgd-ce"): :func:`apgd` with ``loss="ce"``."""
    return apgd(model, x, y, eps, loss="ce", norm=norm, steps=steps, restarts=restarts, generator=generator)


def apgd_t(model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: str = "linf", steps: int = 100,
           restarts: int = 1, targets: int = 9, generator: torch.Generator | None = None) -> Tensor:
    """APGD-T on the targeted DLR loss ("apgd-dlr"): :func:`apgd` with ``loss="dlr-t"``."""
    return apgd(model, x, y, eps, loss="dlr-t", norm=norm, steps=steps, restarts=restarts, targets=targets,
                generator=generator)
