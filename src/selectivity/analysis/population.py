"""Class information in a layer as a whole: how much a linear read-out finds, and whether the
unit axes are special.

Two questions about a layer's responses x (N, D) (one number per unit and image, as
:class:`selectivity.core.Probe` captures them) to labelled images:

- **Removed or moved?** :func:`linear_probe` fits a multinomial logistic regression on the
  responses to one split's images and scores it on another's: the layer's *linear
  decodability*. Lowering the units' selectivity while decodability holds means the class
  information moved rather than left.
- **Are the unit axes special?** :func:`axis_gap` compares the units' mean one-class preference
  with that of the directions of random orthonormal bases of the same space. A gap near 0 means
  the units are as class-selective as arbitrary mixtures of them: the information is not
  aligned with the axes.

The probe
---------
The features are standardized with the training split's mean and standard deviation (a
constant feature, such as a dead unit, has its deviation taken as 1 and so stays 0). The
model is softmax(z W + b) over the classes present in the training labels, fitted by
minimizing the penalized mean cross-entropy

    f(W, b) = (1/n) sum_i CE(z_i W + b, y_i) + (lambda / 2) ||W||_F^2     (b is not penalized)

with full-batch L-BFGS (preconditioned by the features' second moments, a backtracking line
search; the gradient in closed form, in float64). The strength lambda is chosen from a small
grid, :data:`DEFAULT_STRENGTHS` = 10^0, 10^-1, ..., 10^-5 (scikit-learn's C = 1 / (n lambda)),
on a held-out part of the training split: a seeded stratified 20% of each class
(:data:`DEFAULT_HOLDOUT`). The grid is walked from the strongest penalty to the weakest, each
fit starting from the previous solution (a warm start), and the strength with the lowest
held-out cross-entropy wins (a proper score, smoother than held-out accuracy on a few hundred
images; ties go to the stronger penalty). The probe is then refitted on the whole training split at that strength
and scored on the test split. A grid of one strength skips the selection. The same inputs and
seed give the same numbers on the same device and torch version.

The preference measure
----------------------
A direction w of the layer's space (a unit is a coordinate axis) has responses x w and class
means m_c(w) = mean over the images of class c of x_i w. Its one-class preference is the class
selectivity index of those means raised so that the lowest is 0:

    P(w) = SI(m(w) - min_c m_c(w))
         = (mu_max - mu_-max) / (mu_max + mu_-max - 2 min_c m_c + eps)

computed by :func:`selectivity.core.functional.selectivity_index` on the shifted means. It
is defined for signed responses, unchanged by adding a constant to a direction's responses and
by multiplying them by a positive number (exactly for the shift; for the scale up to the eps
guard of SI, eps / (scale x spread of the class means), 1e-7 relative for responses of order
1), and equal to a unit's SI when its lowest class mean is 0 (a ReLU unit that is silent for
one class). For a ReLU unit whose lowest class mean is above 0 it is larger than its SI: it
measures the class profile above the unit's floor. It lies in [0, 1]: 1 when one class alone
lifts the direction above the others' common level, 0 when every class mean is equal.

Sign matters: P(-w) is not P(w) (a unit prefers one class when that class mean stands out
*above* the others; negated, the same class stands out below). A unit has the sign its ReLU
gives it; a Haar-random basis is symmetric in sign (w and -w are equally likely), so the
random directions' measure averages over both.

The axis gap
------------
units  = mean of P over the layer's live units (axes);
random = mean over K rotations of the mean of P over the D' directions of a Haar-random
         orthonormal basis of the same live space (the QR factor of a Gaussian matrix, its
         columns' signs fixed by the diagonal of R: Mezzadri 2007);
gap    = units - random.

*Dead and constant units* (the same response to every image of the data) carry no class
information and span no direction the layer uses: they are left out of both sides, which
compare the D' live units with D' random directions of the span of the live axes. (Counted
with P = 0, as mean SI counts a dead unit, they would lower the units' side alone, and a knob
that kills units would seem to shrink the gap.) A layer without a live unit has no gap (NaN).
Class means are linear in w, so a basis's class means are the live units' class means times
the basis: the random side costs K D'^3 for the QR and K C D'^2 for the means, not a pass
over the images.

*The interval* is the Student-t interval of the gap's mean over the K rotations: it bounds
the Monte Carlo error of ``random`` (the expectation over Haar rotations), with the data held
fixed; it says nothing about how the gap varies between images, seeds or networks (that is
the report's job, across seeds). Its 95% coverage is checked by seeded simulation in
``tests/analysis/test_population.py``. With K = 1 it is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..core.functional import DEFAULT_EPS, class_means, selectivity_index

__all__ = [
    "DEFAULT_HOLDOUT",
    "DEFAULT_ROTATIONS",
    "DEFAULT_STRENGTHS",
    "AxisGap",
    "LinearProbeResult",
    "axis_gap",
    "haar_bases",
    "linear_probe",
    "linear_probe_accuracy",
    "one_class_preference",
]

#: The L2 strengths tried on the held-out part, strongest first (the order of the warm starts).
DEFAULT_STRENGTHS = (1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
#: Share of each class of the training split held out to choose the strength.
DEFAULT_HOLDOUT = 0.2
#: Random bases drawn by :func:`axis_gap` by default.
DEFAULT_ROTATIONS = 10
#: L-BFGS stops when every gradient entry is below this (the objective is a mean over images) ...
DEFAULT_TOLERANCE = 1e-6
#: ... or after this many iterations per strength.
DEFAULT_MAX_ITER = 1000


# ----------------------------------------------------------------------------- checks


def _check_responses(x: Tensor, y: Tensor, name: str) -> None:
    if not isinstance(x, Tensor) or x.ndim != 2:
        raise ValueError(f"{name} responses must have shape (N, units), got {tuple(getattr(x, 'shape', ()))}")
    if not x.is_floating_point():
        raise ValueError(f"{name} responses must be floating point, got dtype {x.dtype}")
    if not isinstance(y, Tensor) or y.ndim != 1 or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"{name} labels must be a 1-D integer tensor, got {getattr(y, 'dtype', type(y).__name__)} "
                         f"of shape {tuple(getattr(y, 'shape', ()))}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{name} split: {x.shape[0]} responses but {y.shape[0]} labels")
    if x.shape[0] == 0:
        raise ValueError(f"the {name} split holds no images")
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).any(dim=0).sum())
        raise ValueError(f"{name} responses contain NaN or infinite values ({bad} of {x.shape[1]} units): "
                         "the probe and the preference measure are undefined for them")
    if int(y.min()) < 0:
        raise ValueError(f"{name} labels must be >= 0, got {int(y.min())}")


# ----------------------------------------------------------------------------- the probe


@dataclass(frozen=True)
class LinearProbeResult:
    """What :func:`linear_probe` found.

    Attributes:
        accuracy (float): share of the test images whose most probable class is their own.
        loss (float): mean test cross-entropy (nats) of the probe's probabilities.
        strength (float): the L2 strength chosen (lambda of the module docstring).
        objective (float): the penalized training objective f(W, b) of the final fit, on the
            whole training split.
        selection (tuple): (strength, held-out accuracy, held-out cross-entropy, converged) for
            every strength tried, in the order tried; empty with a single strength. A weak
            strength on nearly separable data may stop at ``max_iter`` short of the tolerance
            (converged False): its held-out scores are then those of that approximate fit.
        converged (bool): the final fit (the one scored) reached the gradient tolerance.
        num_train, num_test, num_units, num_classes (int): the sizes it saw (classes: those
            of the training labels).
        weights (Tensor): (units + 1, classes) float64, the last row the biases, on the
            standardized features; ``classes`` (Tensor): the label of each column.
    """

    accuracy: float
    loss: float
    strength: float
    objective: float
    selection: tuple[tuple[float, float, float, bool], ...]
    converged: bool
    num_train: int
    num_test: int
    num_units: int
    num_classes: int
    weights: Tensor = field(repr=False)
    classes: Tensor = field(repr=False)


def _holdout_mask(labels: Tensor, fraction: float, generator: torch.Generator) -> Tensor:
    """(N,) bool: floor(fraction x n_c) images of every class c, drawn at random (seeded)."""
    n = labels.numel()
    perm = torch.randperm(n, generator=generator)
    shuffled = labels[perm]
    order = torch.argsort(shuffled, stable=True)
    ordered = shuffled[order]
    rank = torch.arange(n) - torch.searchsorted(ordered, ordered)
    quota = torch.floor(fraction * torch.bincount(labels).double()).long()
    mask = torch.zeros(n, dtype=torch.bool)
    mask[perm[order[rank < quota[ordered]]]] = True
    return mask


class _Objective:
    """The penalized mean cross-entropy of the module docstring, its gradient in closed form, and
    a preconditioner for L-BFGS.

    z: (N, D + 1) standardized features with a column of ones; onehot: (N, C) float64.

    The preconditioner is the inverse of M = Z'Z / (n C) + lambda diag(1, ..., 1, 0): the
    Hessian's feature part (each class's block is Z' diag(p_c (1 - p_c)) Z / n, and
    p_c (1 - p_c) ~ 1 / C while the classes are still mixed) plus the penalty. Correlated
    features (a layer's units often are) make the plain problem ill-conditioned; in M's metric
    L-BFGS needs a few tens of iterations instead of hundreds. It changes the path, never the
    minimum."""

    def __init__(self, z: Tensor, onehot: Tensor, strength: float):
        self.z, self.onehot = z, onehot
        self.moments = z.T @ z / (z.shape[0] * onehot.shape[1])
        self.set_strength(strength)

    def set_strength(self, strength: float) -> None:
        self.strength = strength
        penalty = torch.full((self.z.shape[1],), strength, dtype=self.z.dtype, device=self.z.device)
        penalty[-1] = 0.0  # the biases are not penalized
        self._factor = torch.linalg.cholesky(self.moments + torch.diag(penalty))

    def precondition(self, g: Tensor) -> Tensor:
        """M^-1 g for g (D + 1, C)."""
        return torch.cholesky_solve(g, self._factor)

    def value_and_grad(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.z @ theta
        lse = torch.logsumexp(logits, dim=1, keepdim=True)
        weights = theta[:-1]
        value = (lse.squeeze(1) - (logits * self.onehot).sum(1)).mean() + 0.5 * self.strength * weights.pow(2).sum()
        residual = torch.exp(logits - lse) - self.onehot  # softmax minus the one-hot labels
        grad = self.z.T @ residual / self.z.shape[0]
        grad[:-1] += self.strength * weights
        return value, grad


def _fit(objective: _Objective, theta: Tensor, tol: float, max_iter: int, history: int = 10) -> tuple[Tensor, bool]:
    """Minimize ``objective`` from ``theta``: full-batch L-BFGS (Nocedal & Wright, algorithm 7.4)
    with the objective's preconditioner as the initial inverse Hessian (scaled by
    s'y / y'M^-1 y) and a backtracking (Armijo) line search; returns (solution, converged).

    The objective is convex, so every step's curvature pair has s'y >= 0 and Armijo's
    condition alone keeps the quasi-Newton matrix positive definite (a pair with s'y ~ 0, along
    the biases' flat direction, is skipped). Written out rather than torch.optim.LBFGS, which
    takes no preconditioner and whose first construction in a process imports torch's compiler
    (1.6 s on a CPU)."""
    value, grad = objective.value_and_grad(theta)
    pairs: list[tuple[Tensor, Tensor, Tensor]] = []  # (s, y, 1 / s'y), oldest first
    scale = 1.0  # s'y / y'M^-1 y of the newest pair
    for _ in range(max_iter):
        if float(grad.abs().max()) <= tol:
            return theta, True
        q, coefficients = grad.clone(), []
        for s, y, rho in reversed(pairs):  # the two-loop recursion: q = H grad
            a = rho * (s * q).sum()
            coefficients.append(a)
            q -= a * y
        q = scale * objective.precondition(q)
        for (s, y, rho), a in zip(pairs, reversed(coefficients)):
            q += s * (a - rho * (y * q).sum())
        slope = -float((grad * q).sum())
        if slope >= 0:  # not a descent direction (rounding): start again from the preconditioned gradient
            pairs, scale, q = [], 1.0, objective.precondition(grad)
            slope = -float((grad * q).sum())
        step = 1.0
        while True:
            candidate = theta - step * q
            new_value, new_grad = objective.value_and_grad(candidate)
            if float(new_value) <= float(value) + 1e-4 * step * slope:
                break
            step *= 0.5
            if step < 1e-12:  # no decrease left at float64's resolution
                return theta, bool(grad.abs().max() <= tol)
        s, y = candidate - theta, new_grad - grad
        sy = float((s * y).sum())
        if sy > 1e-12 * float(s.norm() * y.norm()):
            pairs = [*pairs[-(history - 1):], (s, y, torch.tensor(1.0 / sy, dtype=s.dtype, device=s.device))]
            scale = sy / float((y * objective.precondition(y)).sum())
        theta, value, grad = candidate, new_value, new_grad
    return theta, bool(grad.abs().max() <= tol)


def _scores(theta: Tensor, z: Tensor, labels: Tensor) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of the probe ``theta`` on features z (with the ones column)."""
    logits = z @ theta
    loss = torch.nn.functional.cross_entropy(logits, labels)
    return float((logits.argmax(1) == labels).double().mean()), float(loss)


def linear_probe(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    strengths: Sequence[float] = DEFAULT_STRENGTHS,
    holdout: float = DEFAULT_HOLDOUT,
    seed: int = 0,
    tol: float = DEFAULT_TOLERANCE,
    max_iter: int = DEFAULT_MAX_ITER,
) -> LinearProbeResult:
    r"""Linear decodability of a layer: a multinomial logistic regression fitted on one split's
    responses and scored on another's.

    .. math:: \min_{W, b} \frac{1}{n}\sum_i \mathrm{CE}(z_i W + b, y_i) + \frac{\lambda}{2}\|W\|_F^2

    with z the responses standardized by the training split's mean and deviation, and lambda
    chosen on a held-out part of the training split (see the module docstring).

    Args:
        train_x (Tensor): (N, U) responses to the training images; float, finite.
        train_y (Tensor): (N,) integer labels; at least two classes.
        test_x (Tensor): (M, U) responses to the test images.
        test_y (Tensor): (M,) labels, each a class of ``train_y``.
        strengths (sequence of float): the L2 strengths tried, in this order (warm starts: put
            the strongest first). One strength: no selection, the probe is fitted on the whole
            training split at it. Default: :data:`DEFAULT_STRENGTHS`.
        holdout (float): share of each class held out to choose the strength, in (0, 1).
            Default: 0.2.
        seed (int): seed of the held-out draw. Default: 0.
        tol (float): L-BFGS stops when every gradient entry is below it. Default: 1e-6.
        max_iter (int): L-BFGS iterations per strength at most. Default: 1000.

    Returns:
        LinearProbeResult: test accuracy and cross-entropy, the chosen strength, the held-out
        scores of every strength, the fitted weights.

    Raises:
        ValueError: fewer training images than units, a single class, NaN or infinite
            responses, test labels the training split lacks, mismatched shapes.

    Example::

        >>> g = torch.Generator().manual_seed(0)
        >>> y = torch.arange(200) % 2
        >>> x = torch.randn(200, 3, generator=g) + 6.0 * y.unsqueeze(1)   # class 1 lies 6 deviations away
        >>> result = linear_probe(x[:100], y[:100], x[100:], y[100:])
        >>> result.accuracy, result.num_units, len(result.selection)
        (1.0, 3, 6)
    """
    _check_responses(train_x, train_y, "train")
    _check_responses(test_x, test_y, "test")
    n, units = train_x.shape
    if test_x.shape[1] != units:
        raise ValueError(f"train responses have {units} units but test responses {test_x.shape[1]}")
    if n < units:
        raise ValueError(f"{n} training images for {units} units: the probe needs at least as many images as units "
                         "(a linear read-out of more units than images can fit any labelling)")
    strengths = [float(s) for s in strengths]
    if not strengths or not all(math.isfinite(s) and s > 0 for s in strengths):
        raise ValueError(f"strengths must be positive finite numbers, got {strengths}")
    if not 0.0 < float(holdout) < 1.0:
        raise ValueError(f"holdout must lie in (0, 1), got {holdout}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1 or not float(tol) > 0:
        raise ValueError(f"max_iter must be a whole number >= 1 and tol > 0, got {max_iter!r} and {tol!r}")
    classes = torch.unique(train_y.cpu())
    if classes.numel() < 2:
        raise ValueError(f"the training labels hold a single class ({int(classes[0])}): there is nothing to decode")
    unseen = sorted(set(torch.unique(test_y.cpu()).tolist()) - set(classes.tolist()))
    if unseen:
        raise ValueError(f"test labels {unseen[:5]} do not occur in the training labels: the probe cannot predict them")

    device = train_x.device
    # Labels as 0..C-1 over the training classes.
    lookup = torch.full((int(classes.max()) + 1,), -1, dtype=torch.long)
    lookup[classes] = torch.arange(classes.numel())
    ytr, yte = lookup[train_y.cpu()].to(device), lookup[test_y.cpu()].to(device)
    x64 = train_x.to(torch.float64)
    mean, std = x64.mean(0), x64.std(0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant feature stays 0

    def features(x: Tensor) -> Tensor:
        z = (x.to(device=device, dtype=torch.float64) - mean) / std
        return torch.cat([z, torch.ones(z.shape[0], 1, dtype=z.dtype, device=device)], dim=1)

    ztr, zte = features(train_x), features(test_x)
    c = classes.numel()
    onehot = torch.nn.functional.one_hot(ytr, c).to(torch.float64)
    theta = torch.zeros(units + 1, c, dtype=torch.float64, device=device)
    selection: list[tuple[float, float, float, bool]] = []
    chosen = strengths[0]
    if len(strengths) > 1:
        held = _holdout_mask(ytr.cpu(), float(holdout), torch.Generator().manual_seed(seed)).to(device)
        if not bool(held.any()):
            raise ValueError(f"{n} training images leave none to hold out at holdout={holdout}: the strength cannot "
                             "be chosen (give more images, or a single strength)")
        fit_part = _Objective(ztr[~held], onehot[~held], strengths[0])
        starts = {}
        for strength in strengths:
            fit_part.set_strength(strength)
            theta, ok = _fit(fit_part, theta, tol, max_iter)
            starts[strength] = theta
            selection.append((strength, *_scores(theta, ztr[held], ytr[held]), ok))
        chosen = min(selection, key=lambda s: s[2])[0]  # min() keeps the first (stronger) of ties
        theta = starts[chosen]
    whole = _Objective(ztr, onehot, chosen)
    theta, converged = _fit(whole, theta, tol, max_iter)
    accuracy, loss = _scores(theta, zte, yte)
    objective = float(whole.value_and_grad(theta)[0])
    return LinearProbeResult(accuracy=accuracy, loss=loss, strength=chosen, objective=objective,
                             selection=tuple(selection), converged=converged, num_train=n, num_test=test_x.shape[0],
                             num_units=units, num_classes=c, weights=theta, classes=classes)


def linear_probe_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, **options) -> float:
    """Test accuracy of :func:`linear_probe` (the same arguments): the layer's linear decodability.

    Example::

        >>> y = torch.arange(40) % 4
        >>> noise = torch.randn(40, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> x = torch.nn.functional.one_hot(y, 4).double() + 0.1 * noise
        >>> linear_probe_accuracy(x[:20], y[:20], x[20:], y[20:], strengths=[1e-3])
        1.0
    """
    return linear_probe(train_x, train_y, test_x, test_y, **options).accuracy


# ----------------------------------------------------------------------------- the axis gap


def _preference_from_means(means: Tensor, eps: float) -> Tensor:
    """P per column of class means (C, U) (absent classes: NaN rows): SI of the means shifted to a floor of 0."""
    present = ~torch.isnan(means).all(dim=1)
    floor = means[present].amin(dim=0)
    return selectivity_index(means - floor, eps)  # NaN rows stay NaN: still absent


def _classes_present(y: Tensor, num_classes: int) -> int:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if int(y.max()) >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got values up to {int(y.max())}")
    present = int(torch.unique(y).numel())
    if present < 2:
        raise ValueError(f"the labels hold a single class ({int(y[0])}): a class preference needs at least two "
                         "classes to contrast")
    return present


def one_class_preference(x: Tensor, y: Tensor, num_classes: int, eps: float = DEFAULT_EPS) -> Tensor:
    r"""One-class preference P of every unit (column of ``x``): SI of its class means shifted so the lowest is 0.

    .. math:: P(u) = SI\big(m(u) - \min_c m_c(u)\big)
              = \frac{\mu_{max} - \mu_{-max}}{\mu_{max} + \mu_{-max} - 2\min_c m_c + \epsilon}

    Defined for signed responses; unchanged by shifting a unit's responses, and by positive
    scaling (up to eps); equal to SI for a unit whose lowest class mean is 0. See the module
    docstring.

    Args:
        x (Tensor): (N, U) responses, float, finite.
        y (Tensor): (N,) integer labels in [0, num_classes), at least two classes.
        num_classes (int): C. Classes without an image take no part.
        eps (float): SI's guard against 0 / 0 (a constant unit gets 0). Default: 1e-7.

    Returns:
        Tensor: (U,) float64, in [0, 1].

    Example::

        >>> x = torch.tensor([[1.0, -1.0], [3.0, -3.0], [1.0, -1.0], [1.0, -1.0]])
        >>> one_class_preference(x, torch.tensor([0, 1, 2, 2]), 3)
        tensor([1.0000, 0.3333], dtype=torch.float64)
    """
    _check_responses(x, y, "the")
    _classes_present(y, num_classes)
    return _preference_from_means(class_means(x.to(torch.float64), y, num_classes), eps)


def haar_bases(count: int, dim: int, generator: torch.Generator | None = None, device=None) -> Tensor:
    """``count`` Haar-random orthonormal bases of R^dim: (count, dim, dim) float64, directions as columns.

    The Q factor of the QR decomposition of a standard Gaussian matrix, each column multiplied
    by the sign of R's diagonal entry, which makes Q Haar-distributed (Mezzadri 2007). Drawn on
    the CPU from ``generator`` (the same seed gives the same bases everywhere), then moved.
    """
    gaussian = torch.randn(count, dim, dim, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    signs = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return (q * signs.unsqueeze(-2)).to(device)


@dataclass(frozen=True)
class AxisGap:
    """What :func:`axis_gap` found (see the module docstring).

    Attributes:
        units (float): mean one-class preference P over the live units.
        random (float): mean P of the directions of the K random bases (mean over rotations).
        gap (float): ``units - random``.
        low, high (float): the Student-t interval at ``level`` of the gap's mean over the K
            rotations (Monte Carlo error of ``random``; NaN with K = 1).
        level (float): its confidence level.
        rotations (int): K.
        live_units (int): D', the units that are not constant over the data; ``num_units`` (int): D.
        per_unit (Tensor): (D,) P of every unit, NaN for a constant one.
        per_rotation (Tensor): (K,) mean P of each random basis.
    """

    units: float
    random: float
    gap: float
    low: float
    high: float
    level: float
    rotations: int
    live_units: int
    num_units: int
    per_unit: Tensor = field(repr=False)
    per_rotation: Tensor = field(repr=False)


def axis_gap(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    rotations: int = DEFAULT_ROTATIONS,
    seed: int = 0,
    level: float = 0.95,
    eps: float = DEFAULT_EPS,
) -> AxisGap:
    r"""Are the unit axes special? The units' mean one-class preference minus that of random directions.

    .. math:: \text{gap} = \frac{1}{D'}\sum_u P(e_u) - \frac{1}{K}\sum_{k=1}^{K}\frac{1}{D'}\sum_{j} P(Q_k e_j)

    over the D' live units, with Q_k Haar-random orthonormal bases of their span (module docstring).

    Args:
        x (Tensor): (N, D) responses of a layer, float, finite.
        y (Tensor): (N,) integer labels in [0, num_classes), at least two classes.
        num_classes (int): C.
        rotations (int): K >= 1, the random bases. Default: 10.
        seed (int): seed of the bases. Default: 0.
        level (float): confidence level of the interval. Default: 0.95.
        eps (float): SI's guard. Default: 1e-7.

    Returns:
        AxisGap: ``units``, ``random``, ``gap``, its interval (``low``, ``high``) and the per-unit
        and per-rotation values. A layer whose units are all constant gives NaN.

    Example::

        >>> y = torch.arange(400) % 4
        >>> noise = torch.randn(400, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> code = torch.nn.functional.one_hot(y, 4).double() + 0.05 * noise   # unit c answers class c
        >>> result = axis_gap(code, y, 4, rotations=20)
        >>> round(result.units, 2), round(result.random, 2), result.low < result.gap < result.high
        (0.99, 0.5, True)
    """
    _check_responses(x, y, "the")
    _classes_present(y, num_classes)
    if isinstance(rotations, bool) or not isinstance(rotations, int) or rotations < 1:
        raise ValueError(f"rotations must be a whole number >= 1 (random bases to draw), got {rotations!r}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    from .stats import mean_ci

    units = x.shape[1]
    live = x.amax(dim=0) > x.amin(dim=0)
    per_unit = torch.full((units,), float("nan"), dtype=torch.float64, device=x.device)
    d = int(live.sum())
    if d == 0:
        nan = float("nan")
        return AxisGap(nan, nan, nan, nan, nan, float(level), rotations, 0, units, per_unit,
                       torch.full((rotations,), nan, dtype=torch.float64))
    means = class_means(x[:, live].to(torch.float64), y, num_classes)  # (C, D')
    per_unit[live] = _preference_from_means(means, eps)
    bases = haar_bases(rotations, d, torch.Generator().manual_seed(seed), device=x.device)  # (K, D', D')
    rotated = torch.einsum("cd,kde->cke", means, bases).reshape(means.shape[0], rotations * d)
    per_rotation = _preference_from_means(rotated, eps).reshape(rotations, d).mean(dim=1).cpu()
    on_axes = float(per_unit[live].mean())
    gaps = (on_axes - per_rotation).numpy()
    gap, low, high = mean_ci(gaps, float(level))
    return AxisGap(units=on_axes, random=float(per_rotation.mean()), gap=float(gap), low=float(low), high=float(high),
                   level=float(level), rotations=rotations, live_units=d, num_units=units, per_unit=per_unit.cpu(),
                   per_rotation=per_rotation)
