"""MonoScore (Nasiri-Sarvi et al., 2026): do the inputs that drive a unit mean the same thing?

For a unit over N inputs, its activations x_i min-max scaled over those inputs to
a_i = (x_i - min x) / (max x - min x) in [0, 1], and reference embeddings e_i:

    MonoScore = sum_{i<j} a_i a_j cos(e_i, e_j) / sum_{i<j} a_i a_j

computed in linear time from three moments: with w = sum_i a_i e_i / |e_i|,

    numerator   = (|w|^2 - sum_i a_i^2) / 2
    denominator = ((sum_i a_i)^2 - sum_i a_i^2) / 2

With one-hot **label embeddings** cos(e_i, e_j) is 1 for a same-class pair and 0 otherwise, so
w_c is the sum of a over class c and the score is the activation-weighted share of same-class
pairs: a class-based monosemanticity that needs no other model. A unit active on one class
only scores 1; a unit equally active on every image of C balanced classes scores the share
of same-class pairs, about 1/C.

A unit whose denominator is (close to) 0 is **inactive**: constant over the inputs (a dead
unit), or above its minimum on a single input. Its score is NaN and it takes no part in a
mean. The MonoLoss term (:class:`~selectivity.core.monoloss.MonoLossRegularizer`) and the
meter call the same private pair: ``_batch_moments`` (or the streamed
:class:`MonoScoreSums`) and ``_score_from_moments``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["DEFAULT_MONO_EPS", "MonoScoreSums", "label_embeddings", "monoscore"]

#: A unit whose sum over pairs of a_i a_j is at most this is inactive (the reference code's 1e-8).
DEFAULT_MONO_EPS = 1e-8


def _score_from_moments(q: Tensor, u: Tensor, v: Tensor, eps: float = DEFAULT_MONO_EPS) -> Tensor:
    """MonoScore per unit from q = |w|^2, u = sum a, v = sum a^2 (all (U,)); NaN if inactive."""
    numerator = 0.5 * (q - v)
    denominator = 0.5 * (u * u - v)
    active = denominator > eps
    score = numerator / torch.where(active, denominator, torch.ones_like(denominator))
    return torch.where(active, score, torch.full_like(score, float("nan")))


def _scaled(acts: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """Min-max scaling to [0, 1]; a constant unit (hi == lo) scales to 0 everywhere."""
    span = hi - lo
    constant = span <= 0
    return (acts - lo) / torch.where(constant, torch.ones_like(span), span) * (~constant)


def _unit_embeddings(embeddings: Tensor) -> Tensor:
    """Each row divided by its norm, computed stably: rows are first divided by their largest
    absolute entry, so the norm of a row of 1e20 (whose square overflows float32) or of 1e-30
    (whose square underflows to 0) is that of a row of order 1, and the unit row is exact."""
    peak = embeddings.abs().amax(dim=1, keepdim=True)
    if bool((peak == 0).any()):
        raise ValueError("embeddings has rows of norm 0: the cosine of a zero embedding is undefined")
    scaled = embeddings / peak
    return scaled / scaled.norm(dim=1, keepdim=True)


def _check(acts: Tensor, labels: Tensor | None, num_classes: int | None, embeddings: Tensor | None) -> None:
    if acts.ndim != 2 or not acts.is_floating_point():
        raise ValueError(f"acts must be a floating-point (N, U) tensor, got {acts.dtype} of shape {tuple(acts.shape)}")
    if (labels is None) == (embeddings is None):
        raise ValueError("give either labels (with num_classes: one-hot label embeddings) or embeddings, not both")
    if labels is not None:
        if num_classes is None or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int with labels, got {num_classes!r}")
        if labels.shape != (acts.shape[0],) or labels.is_floating_point():
            raise ValueError(f"labels must be (N,) integers for {acts.shape[0]} activations, got {tuple(labels.shape)}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes})")
    else:
        if embeddings.ndim != 2 or embeddings.shape[0] != acts.shape[0]:
            raise ValueError(f"embeddings must be (N, D) with N = {acts.shape[0]} rows, got {tuple(embeddings.shape)}")
    if not bool(torch.isfinite(acts).all()):
        raise ValueError("acts contain NaN or infinite values: MonoScore is undefined for them")


def _batch_moments(acts: Tensor, labels: Tensor | None = None, num_classes: int | None = None,
                   embeddings: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(q, u, v) of a batch, min-max scaled over the batch; differentiable (through min and max too)."""
    a = _scaled(acts, acts.amin(dim=0), acts.amax(dim=0))
    if labels is not None:
        w = torch.zeros(num_classes, acts.shape[1], dtype=a.dtype, device=a.device).index_add(0, labels, a)
    else:
        w = _unit_embeddings(embeddings.to(a.dtype)).T @ a  # (D, U)
    return (w * w).sum(dim=0), a.sum(dim=0), (a * a).sum(dim=0)


def monoscore(acts: Tensor, *, labels: Tensor | None = None, num_classes: int | None = None,
              embeddings: Tensor | None = None, eps: float = DEFAULT_MONO_EPS) -> Tensor:
    r"""MonoScore of every unit over the N inputs of ``acts``.

    .. math:: \mathrm{MonoScore} = \frac{\sum_{i<j} a_i a_j \cos(e_i, e_j)}{\sum_{i<j} a_i a_j},
        \quad a_i = \frac{x_i - \min x}{\max x - \min x}

    Args:
        acts (Tensor): (N, U) one number per unit per input.
        labels (Tensor | None): (N,) class labels: one-hot label embeddings. Needs ``num_classes``.
        num_classes (int | None): C, with ``labels``.
        embeddings (Tensor | None): (N, D) reference embeddings of the inputs (any norm > 0).
        eps (float): inactive-unit threshold on the pair-weight sum. Default: 1e-8.

    Returns:
        Tensor: (U,) scores in [-1, 1] ([0, 1] with label embeddings); NaN for inactive units.
        Differentiable with respect to ``acts``.

    Example::

        >>> acts = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
        >>> monoscore(acts, labels=torch.tensor([0, 0, 1, 1]), num_classes=2)
        tensor([1., 0.])
    """
    _check(acts, labels, num_classes, embeddings)
    dtype = torch.float64 if acts.dtype == torch.float64 else torch.float32
    return _score_from_moments(*_batch_moments(acts.to(dtype), labels, num_classes, embeddings), eps)


def label_embeddings(labels: Tensor, num_classes: int) -> Tensor:
    """One-hot rows (N, C): the embeddings under which MonoScore is class-based."""
    return torch.nn.functional.one_hot(labels.long(), num_classes).to(torch.float64)


def _moments_from_sums(p: Tensor, e: Tensor, x: Tensor, xx: Tensor, n, lo: Tensor, hi: Tensor):
    """(q, u, v) from streamed sums (see :class:`MonoScoreSums`); a constant unit gets zeros.

    p (D, U) = sum_i x_i e_i/|e_i| (label embeddings: the class sums), e (D,) = sum_i e_i/|e_i|
    (the class counts), x (U,) = sum x, xx (U,) = sum x^2, n inputs, lo/hi (U,) = min/max.
    """
    span = hi - lo
    constant = span <= 0
    r = torch.where(constant, torch.ones_like(span), span)
    u = (x - n * lo) / r
    v = (xx - 2 * lo * x + n * lo**2) / r**2
    w = (p - lo * e.unsqueeze(1)) / r
    zero = torch.zeros_like(u)
    return (w * w).sum(dim=0) * (~constant), torch.where(constant, zero, u), torch.where(constant, zero, v)


class MonoScoreSums:
    """MonoScore of every unit, streamed exactly over a whole data set in one pass.

    Min-max scaling needs the global minimum and maximum, but a_i is linear in x_i, so every
    moment follows from sums of x: with lo = min x, r = max x - min x,

        sum a = (X - N lo) / r,   sum a^2 = (Q - 2 lo X + N lo^2) / r^2,
        w = (P - lo E) / r        (label embeddings: P_c = X_c, E_c = N_c)

    where X = sum x, Q = sum x^2, P = sum_i (e_i / |e_i|) x_i and E = sum_i e_i / |e_i|.
    The sums are float64; ``update`` only adds (and keeps the running min and max),
    ``compute`` only divides.

    Args:
        num_units (int): U.
        num_classes (int | None): C for label embeddings; None when ``update`` gets embeddings.
    """

    def __init__(self, num_units: int, num_classes: int | None = None, device=None):
        self.num_units = num_units
        self.num_classes = num_classes
        self.device = device
        self.reset()

    def reset(self) -> None:
        z = dict(dtype=torch.float64, device=self.device)
        self.n = 0
        self.lo = torch.full((self.num_units,), float("inf"), **z)
        self.hi = torch.full((self.num_units,), float("-inf"), **z)
        self.x = torch.zeros(self.num_units, **z)
        self.xx = torch.zeros(self.num_units, **z)
        self.p: Tensor | None = None  # (D, U): D = C for label embeddings
        self.e: Tensor | None = None  # (D,)

    def update(self, acts: Tensor, labels: Tensor | None = None, embeddings: Tensor | None = None) -> None:
        """Add a batch: (N, U) activations with (N,) labels or (N, D) embeddings."""
        _check(acts, labels, self.num_classes if labels is not None else None, embeddings)
        if acts.shape[1] != self.num_units:
            raise ValueError(f"acts has {acts.shape[1]} units, the sums were made for {self.num_units}")
        x = acts.detach().to(torch.float64)
        if labels is not None:
            p = torch.zeros(self.num_classes, self.num_units, dtype=x.dtype, device=x.device).index_add(0, labels, x)
            e = torch.bincount(labels, minlength=self.num_classes).to(x.dtype)
        else:
            unit = _unit_embeddings(embeddings.detach().to(torch.float64))
            p, e = unit.T @ x, unit.sum(dim=0)
        if self.p is None:
            self.p, self.e = torch.zeros_like(p), torch.zeros_like(e)
        elif p.shape != self.p.shape:
            raise ValueError(f"embeddings of dimension {p.shape[0]} after batches of dimension {self.p.shape[0]}")
        self.n += x.shape[0]
        self.lo = torch.minimum(self.lo, x.amin(dim=0)) if x.shape[0] else self.lo
        self.hi = torch.maximum(self.hi, x.amax(dim=0)) if x.shape[0] else self.hi
        self.x += x.sum(dim=0)
        self.xx += (x * x).sum(dim=0)
        self.p += p
        self.e += e

    def moments(self) -> tuple[Tensor, Tensor, Tensor]:
        """(q, u, v) of everything seen, as if the whole data set were one batch."""
        if self.n == 0:
            raise ValueError("MonoScoreSums has seen no data")
        return _moments_from_sums(self.p, self.e, self.x, self.xx, self.n, self.lo, self.hi)

    def compute(self, eps: float = DEFAULT_MONO_EPS) -> Tensor:
        """(U,) MonoScore (float64), NaN for inactive units."""
        return _score_from_moments(*self.moments(), eps)
