"""Signs of gradient masking in an attack sweep: when white-box robust accuracy is not to be trusted.

A model can look robust because its gradients mislead the white-box attacks (zero, shattered
or NaN gradients, a saturated loss) rather than because no adversarial example exists nearby
(Athalye et al. 2018; Carlini et al. 2019). Four checks, per epsilon, from per-image outcomes
(True: the model stays right on the clean image and under the attack; see
:func:`selectivity.analysis.attacks.robust_images`):

``blackbox``
    Square (which reads only the logits) fools images on which every white-box attack run
    failed: flagged when those are more than ``BLACKBOX_SHARE`` of the images.
``epsilon``
    The white-box worst-case accuracy does not fall from the next smaller epsilon (clean
    accuracy before the smallest): a larger ball holds every point of a smaller one, so an
    attack that works finds at least as much. Not flagged when the accuracy at the smaller
    epsilon is at the floor or below: ``EPSILON_FLOOR``, or the chance level plus three of its
    standard errors over the images (:func:`chance_floor`), whichever is higher. A model at
    chance, such as one that predicts one class for every image, keeps that class's images
    whatever the attack: that is no masking.
``apgd-vs-pgd``
    APGD-CE's accuracy lies more than ``APGD_GAP`` below PGD's: on the same loss, only the
    step-size schedule differs, so PGD's fixed step is being misled. (APGD-T where APGD-CE did
    not run; its loss differs too, so a gap there also says the cross-entropy misleads.)
``gradient``
    The input gradient of the logit margin z_y - max_{k != y} z_k, at a uniform random point
    of the ball, is all zero or not finite on more than ``GRADIENT_SHARE`` of the images. The
    margin, not the cross-entropy: a confident softmax makes the cross-entropy's gradient
    underflow to 0 in float32 without any masking by the model.

A check whose attacks did not run is reported as not checked (``flagged`` None), never as passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .base import _check_batch, _check_eps, _check_logits, _model_device, _random_start, eval_mode
from .api import _seeded_generator
from .square_attack import margin_loss

__all__ = ["APGD_GAP", "BLACKBOX_SHARE", "CHECKS", "EPSILON_FLOOR", "GRADIENT_SHARE", "MaskingFlag", "WHITE_BOX",
           "chance_floor", "dead_gradients", "masking_flags"]

#: The attacks that follow gradients; Square is the black-box one.
WHITE_BOX = ("fgsm", "pgd", "apgd-ce", "apgd-dlr")
APGD = ("apgd-ce", "apgd-dlr")
CHECKS = ("blackbox", "epsilon", "apgd-vs-pgd", "gradient")
#: Thresholds: a share of the images evaluated, or a gap in accuracy (fractions).
BLACKBOX_SHARE = 0.02
APGD_GAP = 0.05
GRADIENT_SHARE = 0.05
EPSILON_FLOOR = 0.05


@dataclass(frozen=True)
class MaskingFlag:
    """One check at one epsilon: flagged (None: not checked), what it measured, and what it saw in words."""

    eps: float
    check: str
    flagged: bool | None
    value: float
    threshold: float
    detail: str


def _eps(eps: float) -> str:
    """'4/255' for a multiple of 1/255, else the number."""
    k = eps * 255
    return f"{round(k)}/255" if abs(k - round(k)) < 1e-6 else f"{eps:.4g}"


def _pct(count: int, n: int) -> str:
    return f"{count} of {n} images ({100 * count / n:.1f}%)"


def _all(outcomes: Sequence[Tensor]) -> Tensor:
    return torch.stack(list(outcomes)).all(dim=0)


def chance_floor(labels: Tensor, num_classes: int) -> float:
    """The accuracy below which the ``epsilon`` check never flags: chance, the larger of 1 / classes
    and the share of the most common class among the images (what predicting that one class for
    every image scores), plus three standard errors of an accuracy at chance over these images,
    and at least ``EPSILON_FLOOR``.

    Example::

        >>> round(chance_floor(torch.arange(200) % 10, 10), 3)  # 0.1 + 3 * sqrt(0.1 * 0.9 / 200)
        0.164
    """
    n = int(labels.numel())
    if n == 0:
        return EPSILON_FLOOR
    share = float(torch.bincount(labels.long().flatten(), minlength=num_classes).max()) / n
    chance = max(1.0 / num_classes, share)
    return max(EPSILON_FLOOR, chance + 3.0 * (chance * (1.0 - chance) / n) ** 0.5)


def masking_flags(robust: Mapping[str, Mapping[float, Tensor]], clean: Tensor,
                  dead: Mapping[float, Tensor] | None = None, floor: float = EPSILON_FLOOR) -> list[MaskingFlag]:
    """The four checks at every positive epsilon of ``robust``.

    Args:
        robust (mapping): attack name -> eps -> (N,) bool, True where the image stays right.
        clean (Tensor): (N,) bool, True where the clean image is classified right.
        dead (mapping | None): eps -> (N,) bool, True where the margin's input gradient is
            all zero or not finite (:func:`dead_gradients`). Default: None (not checked).
        floor (float): the ``epsilon`` check's floor (:func:`chance_floor` of the images' labels).
            Default: ``EPSILON_FLOOR``.

    Returns:
        list[MaskingFlag]: in the order of epsilon, then :data:`CHECKS`.

    Example::

        >>> t, f = True, False
        >>> flags = masking_flags({"pgd": {0.1: torch.tensor([t, t, f, f])},
        ...                        "square": {0.1: torch.tensor([f, t, f, f])}}, torch.tensor([t, t, t, f]))
        >>> [(m.check, m.flagged) for m in flags]
        [('blackbox', True), ('epsilon', False), ('apgd-vs-pgd', None), ('gradient', None)]
        >>> flags[0].detail
        'square fooled 1 of 4 images (25.0%) on which every white-box attack run (pgd) failed (flag above 2%)'
    """
    clean = clean.bool()
    n = int(clean.numel())
    epsilons = sorted({float(e) for per_eps in robust.values() for e in per_eps if float(e) > 0})
    out: list[MaskingFlag] = []
    previous_eps, previous_acc = 0.0, float(clean.double().mean())
    for eps in epsilons:
        white = [a for a in WHITE_BOX if eps in robust.get(a, {})]
        white_robust = _all([robust[a][eps] for a in white]) if white else None
        names = ", ".join(white)

        if white_robust is None or eps not in robust.get("square", {}):
            missing = "square" if white else "a white-box attack"
            out.append(MaskingFlag(eps, "blackbox", None, float("nan"), BLACKBOX_SHARE,
                                   f"not checked: needs {missing}"))
        else:
            count = int((white_robust & ~robust["square"][eps].bool()).sum())
            share = count / n
            out.append(MaskingFlag(eps, "blackbox", share > BLACKBOX_SHARE, share, BLACKBOX_SHARE,
                                   f"square fooled {_pct(count, n)} on which every white-box attack run ({names}) "
                                   f"failed (flag above {100 * BLACKBOX_SHARE:g}%)"))

        if white_robust is None:
            out.append(MaskingFlag(eps, "epsilon", None, float("nan"), 0.0, "not checked: needs a white-box attack"))
        else:
            acc = float(white_robust.double().mean())
            fall = previous_acc - acc
            before = "clean" if previous_eps == 0 else f"eps {_eps(previous_eps)}"
            floor = max(EPSILON_FLOOR, floor)
            out.append(MaskingFlag(eps, "epsilon", bool(previous_acc > floor and fall <= 0), fall, 0.0,
                                   f"white-box accuracy ({names}) {acc:.3f} at eps {_eps(eps)}, {previous_acc:.3f} "
                                   f"at {before}: fell by {fall:+.3f} (flag when it does not fall from above "
                                   f"{floor:.3g}, chance and its noise)"))
            previous_eps, previous_acc = eps, acc

        apgd = next((a for a in APGD if eps in robust.get(a, {})), None)
        if eps not in robust.get("pgd", {}) or apgd is None:
            out.append(MaskingFlag(eps, "apgd-vs-pgd", None, float("nan"), APGD_GAP,
                                   "not checked: needs pgd and apgd-ce (or apgd-dlr)"))
        else:
            pgd_acc = float(robust["pgd"][eps].double().mean())
            apgd_acc = float(robust[apgd][eps].double().mean())
            gap = pgd_acc - apgd_acc
            out.append(MaskingFlag(eps, "apgd-vs-pgd", gap > APGD_GAP, gap, APGD_GAP,
                                   f"pgd accuracy {pgd_acc:.3f}, {apgd} {apgd_acc:.3f}: {apgd} lower by {gap:+.3f} "
                                   f"(flag above {APGD_GAP:g})"))

        if dead is None or eps not in dead:
            out.append(MaskingFlag(eps, "gradient", None, float("nan"), GRADIENT_SHARE, "not checked"))
        else:
            count = int(dead[eps].sum())
            share = count / n
            out.append(MaskingFlag(eps, "gradient", share > GRADIENT_SHARE, share, GRADIENT_SHARE,
                                   f"margin gradient zero or not finite on {_pct(count, n)} at random points of the "
                                   f"ball (flag above {100 * GRADIENT_SHARE:g}%)"))
    return out


def dead_gradients(model: nn.Module, x: Tensor, y: Tensor, eps: float, batch_size: int = 256,
                   seed: int = 0) -> Tensor:
    """(N,) bool on the CPU: True where the input gradient of the logit margin is all zero or not finite.

    Taken at a uniform random point of the L-inf ball of radius ``eps`` around each image
    (the image itself for eps = 0), seeded per (seed, eps, batch) as the attacks' starts are.

    Example::

        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> dead_gradients(net, torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1]), eps=0.1).tolist()
        [False, False, False, False, False]
    """
    _check_batch(x, y)
    eps = _check_eps(eps, "linf", x[0].numel())
    device = _model_device(model, x.device)
    parts = []
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        for b, i in enumerate(range(0, x.shape[0], batch_size)):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            point = _random_start(xb, eps, "linf", _seeded_generator(seed, eps, b, device)) if eps > 0 else xb.clone()
            point.requires_grad_(True)
            logits = model(point)
            _check_logits(logits, yb)
            (grad,) = torch.autograd.grad(margin_loss(logits, yb).sum(), point)
            flat = grad.flatten(1)
            parts.append(((flat == 0).all(dim=1) | ~torch.isfinite(flat).all(dim=1)).cpu())
    return torch.cat(parts)
