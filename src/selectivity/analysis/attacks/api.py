"""Attacks on images in [0, 1] and their epsilon sweeps: FGSM, PGD (L-inf and L2), APGD-CE,
APGD-T on the targeted DLR loss (L-inf) and the black-box Square attack (L-inf).

Every model of the zoo takes images in [0, 1] and normalizes inside, so the attacks work in
pixel space and epsilon is in pixel units (8/255 is the usual CIFAR L-inf radius).

- FGSM and PGD ascend the cross-entropy of the true label (summed over the batch, so each
  sample's gradient is its own); APGD is in :mod:`selectivity.analysis.attacks.apgd_attack`, Square in
  :mod:`selectivity.analysis.attacks.square_attack`.
- Gradients are taken with ``torch.autograd.grad`` with respect to the input only: the
  ``.grad`` of the model's parameters is never touched.
- The model runs in eval mode (batch norm on its running statistics, so samples do not
  interact) and every module's mode is restored afterwards, also when an error is raised.
- Robust accuracy (:func:`adversarial_accuracy`) counts a sample as correct only if the model
  is right on the clean image *and* on the attack's output: the clean image is a point of
  the epsilon ball, so accuracy at eps = 0 is the clean accuracy and the count is an upper
  bound on the true worst-case accuracy. :func:`robust_images` gives the same per image, so
  that several attacks combine into a worst case (an image robust only if every attack failed).
"""

from __future__ import annotations

import inspect
import math
import numbers
import struct
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..finite import check_finite_logits
from .apgd_attack import apgd_ce, apgd_t
from .base import (NORMS, _ascent_direction, _check_batch, _check_eps, _check_logits, _check_norm,
                          _loss_and_grad, _model_device, _project, _random_start, eval_mode)
from .square_attack import square

__all__ = [
    "ATTACKS",
    "DEFAULT_EPSILONS",
    "NORMS",
    "adversarial_accuracy",
    "adversarial_examples",
    "apgd_ce",
    "apgd_t",
    "eval_mode",
    "fgsm",
    "pgd",
    "robust_images",
    "square",
]

#: The L-inf radii swept by default, in pixel units of [0, 1] images.
DEFAULT_EPSILONS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)


# -- attacks --------------------------------------------------------------------------------
def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: str = "linf") -> Tensor:
    r"""Fast gradient (sign) method: one step of size eps up the loss.

    .. math::
        x' = \mathrm{clip}_{[0,1]}\big(x + \epsilon\,\mathrm{sign}(\nabla_x L(x, y))\big)
        \quad\text{(L-inf)},\qquad
        x' = \mathrm{clip}_{[0,1]}\big(x + \epsilon\,\nabla_x L / \|\nabla_x L\|_2\big)
        \quad\text{(L2)}

    with L the cross-entropy (Goodfellow et al. 2015). For a linear classifier this is the
    exact worst case in the L-inf (and L2) ball, as long as clipping does not bind.

    Args:
        model (nn.Module): returns logits (N, C) for images in [0, 1].
        x (Tensor): (N, ...) images in [0, 1], e.g. (N, 3, 32, 32).
        y (Tensor): (N,) integer labels.
        eps (float): radius in pixel units; L-inf in [0, 1], L2 in [0, sqrt(D)].
        norm (str): "linf" or "l2". Default: "linf".

    Returns:
        Tensor: (N, ...) adversarial images in [0, 1], detached, within eps of x.

    Example::

        >>> net = nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = net.weight.copy_(torch.tensor([[1.0, -1.0], [-1.0, 1.0]])), net.bias.zero_()
        >>> fgsm(net, torch.tensor([[0.5, 0.5]]), torch.tensor([1]), eps=0.1)
        tensor([[0.6000, 0.4000]])
    """
    _check_batch(x, y)
    eps = _check_eps(eps, _check_norm(norm), x[0].numel())
    x = x.detach()
    if eps == 0:
        return x.clone()
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        _, grad, _ = _loss_and_grad(model, x.clone(), y, check=True)
        return _project(x + eps * _ascent_direction(grad, norm), x, eps, norm)


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    norm: str = "linf",
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    restarts: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Projected gradient descent on the loss (Madry et al. 2018), with random restarts.

    .. math::
        x_{t+1} = \Pi_{B_\epsilon(x) \cap [0,1]^D}\big(x_t + \alpha\, d(\nabla_x L(x_t, y))\big)

    with d = sign (L-inf) or g / ||g||_2 (L2), Pi the projection onto the eps ball around x
    (per sample for L2) followed by clipping to [0, 1], and x_0 drawn uniformly from the ball
    (or x itself without ``random_start``). Each restart returns its last iterate; across
    restarts each sample keeps the worst case: a misclassified example over a correctly
    classified one, then the higher loss.

    Args:
        model (nn.Module): returns logits (N, C) for images in [0, 1].
        x (Tensor): (N, ...) images in [0, 1].
        y (Tensor): (N,) integer labels.
        eps (float): radius in pixel units; L-inf in [0, 1], L2 in [0, sqrt(D)].
        norm (str): "linf" or "l2". Default: "linf".
        steps (int): gradient steps per restart. Default: 10.
        step_size (float | None): alpha; None for 2.5 * eps / steps (Madry et al.), which
            lets the iterate cross the whole ball. Default: None.
        random_start (bool): start from a uniform point of the ball. Default: True.
        restarts (int): independent runs; the worst case per sample is kept. Default: 1.
        generator (torch.Generator | None): source of the random starts, for
            reproducible attacks. Default: None (the global RNG).

    Returns:
        Tensor: (N, ...) adversarial images in [0, 1], detached, within eps of x.
    """
    _check_batch(x, y)
    eps = _check_eps(eps, _check_norm(norm), x[0].numel())
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not isinstance(restarts, int) or restarts < 1:
        raise ValueError(f"restarts must be a positive int, got {restarts!r}")
    step_size = 2.5 * eps / steps if step_size is None else float(step_size)
    if not math.isfinite(step_size) or step_size < 0:
        raise ValueError(f"step_size must be a non-negative number, got {step_size!r}")
    x = x.detach()
    if eps == 0:
        return x.clone()
    best = best_loss = best_fooled = None
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        for restart in range(restarts):
            # A fresh tensor either way, so an inference-mode x can still take a gradient.
            x_adv = _random_start(x, eps, norm, generator) if random_start else x.clone()
            for step in range(steps):
                _, grad, _ = _loss_and_grad(model, x_adv, y, check=restart == step == 0)
                x_adv = _project(x_adv + step_size * _ascent_direction(grad, norm), x, eps, norm)
            with torch.no_grad():
                logits = model(x_adv)
                loss = F.cross_entropy(logits, y, reduction="none")
                fooled = logits.argmax(dim=1) != y
            if best is None:
                best, best_loss, best_fooled = x_adv, loss, fooled
                continue
            better = (fooled & ~best_fooled) | ((fooled == best_fooled) & (loss > best_loss))
            best = torch.where(better.view(-1, *([1] * (x.ndim - 1))), x_adv, best)
            best_loss = torch.where(better, loss, best_loss)
            best_fooled = best_fooled | fooled
    return best


# -- sweeps ---------------------------------------------------------------------------------
#: The attacks by the names the command line uses.
ATTACKS: dict[str, Callable[..., Tensor]] = {"fgsm": fgsm, "pgd": pgd, "apgd-ce": apgd_ce, "apgd-dlr": apgd_t,
                                             "square": square}


def _attack_fn(attack: str | Callable[..., Tensor]) -> Callable[..., Tensor]:
    if callable(attack):
        return attack
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}: use one of {sorted(ATTACKS)} or a callable")
    return ATTACKS[attack]


def _epsilons(eps: float | Sequence[float]) -> list[float]:
    values = [eps] if isinstance(eps, numbers.Real) else list(eps)
    if not values:
        raise ValueError("eps is empty: give at least one radius")
    return values


def _seeded_generator(seed: int, eps: float, batch: int, device: torch.device) -> torch.Generator:
    """A generator for one (eps, batch): its random starts depend on nothing that ran before.

    The seed mixes the base seed, the exact bits of eps and the batch's index (SeedSequence),
    so an evaluation resumed at some epsilons, or run in another order, draws the same starts.
    """
    bits = struct.unpack("<Q", struct.pack("<d", float(eps)))[0]
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, bits, int(batch)]).generate_state(2)
    return torch.Generator(device=device).manual_seed(int(state[0]) << 32 | int(state[1]))


def _per_batch_seed(fn, kwargs: dict, seed: int | None) -> int | None:
    """The base seed of the per-(eps, batch) generators: ``seed``, else the initial seed of a
    ``generator`` passed in kwargs (removed from kwargs: its running state is never used).
    None for an attack without random starts (no ``generator`` parameter)."""
    if "generator" not in inspect.signature(fn).parameters:
        return None
    generator = kwargs.pop("generator", None)
    if seed is None and generator is not None:
        seed = generator.initial_seed()
    return seed


def adversarial_examples(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attack: str | Callable[..., Tensor] = "pgd",
    eps: float = 8 / 255,
    batch_size: int = 256,
    seed: int | None = None,
    **kwargs,
) -> Tensor:
    """Attack ``x`` in batches of ``batch_size`` on the model's device; returns (N, ...) on x's device.

    ``attack`` is a name of :data:`ATTACKS` or a callable ``attack(model, x, y, eps, **kwargs)``;
    ``kwargs`` go to the attack (norm, steps, restarts, ...). ``seed`` (or a ``generator``,
    whose initial seed is used) seeds each batch's random starts on its own, from (seed, eps,
    batch index), as :func:`adversarial_accuracy` does.
    """
    _check_batch(x, y)
    fn = _attack_fn(attack)
    device = _model_device(model, x.device)
    seed = _per_batch_seed(fn, kwargs, seed)
    out = []
    for b, i in enumerate(range(0, x.shape[0], batch_size)):
        extra = {} if seed is None else {"generator": _seeded_generator(seed, eps, b, device)}
        xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
        out.append(fn(model, xb, yb, eps, **kwargs, **extra).to(x.device))
    return torch.cat(out)


def adversarial_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attack: str | Callable[..., Tensor] = "pgd",
    eps: float | Sequence[float] = DEFAULT_EPSILONS,
    batch_size: int = 256,
    seed: int | None = None,
    **kwargs,
) -> dict[float, float]:
    r"""Robust accuracy at each radius of an epsilon sweep, in one call.

    .. math::
        \mathrm{acc}(\epsilon) = \frac{1}{N} \sum_i
        \mathbb{1}[f(x_i) = y_i] \; \mathbb{1}[f(A(x_i, y_i, \epsilon)) = y_i]

    A sample counts only if the model is right on the clean image and on the attack's output
    A (the clean image lies in every ball), so acc(0) is the clean accuracy.

    Args:
        model (nn.Module): returns logits (N, C) for images in [0, 1]; run in eval mode,
            its modes restored afterwards.
        x (Tensor): (N, ...) images in [0, 1], on any device (batches move to the model's).
        y (Tensor): (N,) integer labels.
        attack (str | callable): a name of :data:`ATTACKS` ("fgsm", "pgd", "apgd-ce",
            "apgd-dlr", "square"), or ``attack(model, x, y, eps, **kwargs)``. Default: "pgd".
        eps (float | sequence of float): radii in pixel units. Default: 1/255, 2/255,
            4/255, 8/255.
        batch_size (int): samples attacked at once. Default: 256.
        seed (int | None): seeds the random starts of each (eps, batch) on its own (from the
            seed, eps and the batch's index), so a result at one eps does not depend on which
            epsilons ran before it: an evaluation resumed at some epsilons equals a full one
            (with the same batch_size). A ``generator`` in kwargs gives its initial seed
            instead (its running state is not used). Default: None (the global RNG).
        **kwargs: passed to the attack (``norm``, ``steps``, ``step_size``, ``restarts``, ...).

    Returns:
        dict: eps (float, in the order given) -> accuracy (float in [0, 1]).

    Example::

        >>> net = nn.Linear(2, 2)  # margin of class 1: 2 (x1 - x0) = 0.4, lowered by at most 4 eps
        >>> with torch.no_grad():
        ...     _ = net.weight.copy_(torch.tensor([[1.0, -1.0], [-1.0, 1.0]])), net.bias.zero_()
        >>> adversarial_accuracy(net, torch.tensor([[0.4, 0.6]]), torch.tensor([1]), eps=[0, 0.05, 0.15])
        {0.0: 1.0, 0.05: 1.0, 0.15: 0.0}
    """
    robust = robust_images(model, x, y, attack, eps, batch_size, seed, **kwargs)
    return {e: int(ok.sum()) / x.shape[0] for e, ok in robust.items()}


def robust_images(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attack: str | Callable[..., Tensor] = "pgd",
    eps: float | Sequence[float] = DEFAULT_EPSILONS,
    batch_size: int = 256,
    seed: int | None = None,
    **kwargs,
) -> dict[float, Tensor]:
    """Per image, whether it stays right under the attack: eps -> (N,) bool on the CPU.

    True where the model is right on the clean image and on the attack's output at that
    radius; the mean is :func:`adversarial_accuracy`, and the and-combination over several
    attacks is the worst case (an image robust only if every attack failed on it). Arguments
    as :func:`adversarial_accuracy`.

    Example::

        >>> net = nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = net.weight.copy_(torch.tensor([[1.0, -1.0], [-1.0, 1.0]])), net.bias.zero_()
        >>> robust_images(net, torch.tensor([[0.4, 0.6], [0.3, 0.7]]), torch.tensor([1, 1]), "fgsm", eps=[0.12])
        {0.12: tensor([False,  True])}
    """
    _check_batch(x, y)
    norm = _check_norm(kwargs.get("norm", "linf"))
    epsilons = [_check_eps(e, norm, x[0].numel()) for e in _epsilons(eps)]
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    fn = _attack_fn(attack)
    device = _model_device(model, x.device)
    seed = _per_batch_seed(fn, kwargs, seed)
    robust: dict[float, list[Tensor]] = {e: [] for e in epsilons}
    with eval_mode(model):
        for b, i in enumerate(range(0, x.shape[0], batch_size)):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            with torch.no_grad():
                logits = model(xb)
            _check_logits(logits, yb)
            check_finite_logits(model, xb, logits, "clean images before the attack")
            clean = logits.argmax(dim=1) == yb
            for e in epsilons:
                ok = clean
                if e > 0:
                    extra = {} if seed is None else {"generator": _seeded_generator(seed, e, b, device)}
                    x_adv = fn(model, xb, yb, e, **kwargs, **extra)
                    with torch.no_grad():
                        ok = clean & (model(x_adv).argmax(dim=1) == yb)
                robust[e].append(ok.cpu())
    return {e: torch.cat(parts) for e, parts in robust.items()}
