"""White-box attacks on images in [0, 1]: FGSM, PGD (L-inf and L2) and an epsilon sweep.

Every model of the zoo takes images in [0, 1] and normalizes inside, so the attacks work in
pixel space and epsilon is in pixel units (8/255 is the usual CIFAR L-inf radius).

- The loss is the cross-entropy of the true label (summed over the batch, so each sample's
  gradient is its own).
- Gradients are taken with ``torch.autograd.grad`` with respect to the input only: the
  ``.grad`` of the model's parameters is never touched.
- The model runs in eval mode (batch norm on its running statistics, so samples do not
  interact) and every module's mode is restored afterwards, also when an error is raised.
- Robust accuracy (:func:`adversarial_accuracy`) counts a sample as correct only if the model
  is right on the clean image *and* on the attack's output: the clean image is a point of
  the epsilon ball, so accuracy at eps = 0 is the clean accuracy and the count is an upper
  bound on the true worst-case accuracy.
"""

from __future__ import annotations

import inspect
import math
import numbers
import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "DEFAULT_EPSILONS",
    "NORMS",
    "adversarial_accuracy",
    "adversarial_examples",
    "eval_mode",
    "fgsm",
    "pgd",
]

#: The L-inf radii swept by default, in pixel units of [0, 1] images.
DEFAULT_EPSILONS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
NORMS = ("linf", "l2")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode; restore every module's own ``training`` flag on exit.

    Restoring per module (not ``model.train(was_training)``) keeps mixed modes intact, e.g. a
    frozen batch norm inside a model in training mode.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


# -- checks ---------------------------------------------------------------------------------
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
    """The steepest-ascent unit step for the norm: sign(g) (L-inf) or g / ||g||_2 (L2)."""
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
ATTACKS: dict[str, Callable[..., Tensor]] = {"fgsm": fgsm, "pgd": pgd}


def _attack_fn(attack: str | Callable[..., Tensor]) -> Callable[..., Tensor]:
    if callable(attack):
        return attack
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}: use one of {sorted(ATTACKS)} or a callable")
    return ATTACKS[attack]


def _model_device(model: nn.Module, default: torch.device) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return default


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

    ``attack`` is "pgd", "fgsm" or a callable ``attack(model, x, y, eps, **kwargs)``;
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
        attack (str | callable): "pgd", "fgsm", or ``attack(model, x, y, eps, **kwargs)``.
            Default: "pgd".
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
    _check_batch(x, y)
    norm = _check_norm(kwargs.get("norm", "linf"))
    epsilons = [_check_eps(e, norm, x[0].numel()) for e in _epsilons(eps)]
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    fn = _attack_fn(attack)
    device = _model_device(model, x.device)
    seed = _per_batch_seed(fn, kwargs, seed)
    correct = dict.fromkeys(epsilons, 0)
    with eval_mode(model):
        for b, i in enumerate(range(0, x.shape[0], batch_size)):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            with torch.no_grad():
                logits = model(xb)
            _check_logits(logits, yb)
            clean = logits.argmax(dim=1) == yb
            for e in epsilons:
                ok = clean
                if e > 0:
                    extra = {} if seed is None else {"generator": _seeded_generator(seed, e, b, device)}
                    x_adv = fn(model, xb, yb, e, **kwargs, **extra)
                    with torch.no_grad():
                        ok = clean & (model(x_adv).argmax(dim=1) == yb)
                correct[e] += int(ok.sum())
    return {e: correct[e] / x.shape[0] for e in epsilons}
