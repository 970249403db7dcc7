"""Selectivity measured many ways (Gale et al. 2020): pure tensor functions and a streaming meter.

Every function takes activations ``acts`` (N, U) (a conv channel reduced by its spatial mean,
measured after the ReLU, so >= 0), integer ``labels`` (N,) in [0, C) and returns one number
per unit (U,), vectorized over units and classes. The preferred class of a unit is the
argmax of its class means. Formulas and pitfalls: ``shared/reference/measures.md``.

=================  ==========================================================  =======  ======  ========
column             measure                                                     floor    dead    source
=================  ==========================================================  =======  ======  ========
``si``             class selectivity index (CCMAS), ``core.functional``        0        0       sums
``sparseness``     Rolls-Tovee sparseness of the class means                   0        0       sums
``dprime``         d' of the preferred class vs the rest, pref chosen on one   0        NaN     sums
                   half of the samples and scored on the other half
``precision``      share of the top-K activations that belong to one class     ~1/C     NaN     top-K
``top_class``      recall at 100% precision (top-class selectivity)            0        NaN     top run
``localist_gap``   (min over pref items - max over other items) / the unit's   <= 0     NaN     extremes
                   range over all items, in [-1, 1] (> 0: detector)
``auroc``          max over classes of the one-vs-rest AUROC (Mann-Whitney)    0.5      0.5     samples
``informedness``   max over classes and thresholds of hit rate - false alarms  0        0       samples
``mi``             I(unit; class) / H(class), equal-frequency bins,            ~0       0       samples
                   Miller-Madow corrected
``mi_shuffled``    the same with shuffled labels: the estimator's noise floor  ~0       0       samples
``monoscore``      MonoScore with label embeddings: activation-weighted share  ~1/C     NaN     sums,
                   of same-class pairs, min-max scaled (``core.monoscore``)                     extremes
``class_purity``   share of the activating (> 0) samples in the class with     ~1/C     NaN     positives
                   the most of them (MonoLoss's binary purity)
``weighted_purity``  the same, each sample weighted by its response            ~1/C     NaN     positives
=================  ==========================================================  =======  ======  ========

MonoScore and purity are the measures of MonoLoss (Nasiri-Sarvi et al. 2026). Purity counts a
unit's *activating* samples, those with a response above 0: for a sparse unit (an SAE latent) a
few images, for a dense one (a conv channel's mean after a ReLU is almost always above 0) every
image, so a dense unit's purity is near the largest class share. The share of a unit's *top K*
samples in one class is ``precision``.

Besides the measures, a frame has ``unit``, ``dead`` (True for a unit with no response above 0
on the data) and ``preferred_class`` (the argmax of the class means; empty/NaN for a dead unit).

Dead units: a unit that never responds has no preferred class, no top-K items, no items above
the other classes' and no spread, so ``preferred_class``, ``precision``, ``top_class``,
``localist_gap`` and ``dprime`` are NaN for it (the "dead" column of the table), never 0 or
class 0. SI and sparseness keep the value the formula gives to a unit that answers every class
alike (0, as the meter reports it, so that mean SI is the papers' mean), and AUROC,
informedness and MI the value of a unit that carries no information (0.5, 0, 0): these are
exact, not conventions. Rank or average a measure over the live units (``frame[~frame.dead]``).

Streaming (:class:`UnitMeasureAccumulator`): every measure but the "samples" ones is exact over
any number of samples, in memory independent of N:

- sums: per-class sums, sums of squares and counts in float64, per d' half (2 x 2 x C x U).
- top-K: the K largest activations of every unit with their classes, and per-class counts of
  every item tied with the K-th (K x U, C x U). K is :func:`default_top_k` of the whole data.
- extremes: per-class minima and maxima (2 x C x U).
- top run: the items of the top class that lie above every item of every other class,
  at most the size of the largest class per unit (usually a handful).

The "samples" measures (AUROC, informedness, MI) rank all the samples at once. By default the
accumulator keeps every sample (exact; memory N x U x 4 bytes per layer: 10,000 images x 512
units = 20 MB; 50,000 x 2048 = 410 MB; ranking them took 4 s for 10,000 x 512 on one CPU
thread). ``sample_size=M`` keeps a seeded uniform sample of M
samples instead (Vitter's algorithm R): the estimand stays the measure over the data as it is
(class sizes included), estimated from M samples; :meth:`UnitMeasureAccumulator.sampling_errors`
measures the error of that estimate. ``balanced=True`` keeps ``M // C`` samples of every class
instead: the estimand is then the measure over a class-balanced version of the data (each
class weighs the same), which differs from the data's when class sizes differ.
Random choices (the sample, d' halves) come from a hash of (seed, global sample index) rather
than a generator, so streaming in any batch sizes gives the numbers of one batch.

A measure is one function of a :class:`LayerStats` and one :data:`MEASURES` entry saying
which streamed state it reads, which way is more selective and what it means in one sentence
(:class:`Measure`); see :func:`register_measure`. Every built-in measure is more selective when
higher, and each is free of the unit's scale (a unit's responses times 100 score the same), so
that units can be ranked against each other (:func:`most_selective`, the exemplar page,
:func:`measure_agreement`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import torch
from torch import Tensor

from ..core.functional import DEFAULT_EPS, _check_inputs, _means_from_sums, selectivity_index
from ..core.meter import NEGATIVE_WARNING
from ..core.monoscore import _moments_from_sums, _score_from_moments

__all__ = [
    "ALL_MEASURES",
    "DEFAULT_TOP_K",
    "LayerStats",
    "MEASURES",
    "Measure",
    "UnitMeasureAccumulator",
    "average_ranks",
    "class_auroc",
    "class_purity",
    "default_bins",
    "default_top_k",
    "dprime_from_halves",
    "localist_gap",
    "max_informedness",
    "measure_agreement",
    "most_selective",
    "mutual_information",
    "register_measure",
    "sparseness",
    "split_halves",
    "top_class_selectivity",
    "top_k_precision",
    "unit_measures",
]

#: The largest K of :func:`default_top_k` (Gale et al.'s K): the top-K state keeps this many.
DEFAULT_TOP_K = 100


# ----------------------------------------------------------------------------- helpers


def _hash32(x: Tensor) -> Tensor:
    """A 32-bit integer hash (lowbias32) of int64 values, computed in int64 without overflow."""
    mask = 0xFFFFFFFF
    x = x & mask
    x = ((x >> 16) ^ x) * 0x21F0AAAD & mask
    x = ((x >> 15) ^ x) * 0x735A2D97 & mask
    return (x >> 15) ^ x


def _seeded_hash(index: Tensor, seed: int, salt: int) -> Tensor:
    return _hash32(_hash32(index + (seed & 0xFFFF) * 0x10001 + salt * 0x9E3779B1) + salt)


def split_halves(sample_index: Tensor, seed: int = 0) -> Tensor:
    """Half (0 or 1) of each sample, a seeded hash of its global index: the d' split."""
    return _seeded_hash(sample_index, seed, salt=1) & 1


def _sorted_runs(values: Tensor):
    """Sort (N, U) along dim 0, ascending; for every sorted position, the first and last position
    of its run of ties. Returns (order, ordered, first, last), all (N, U). The measures that
    rank share one call (sorting is most of their cost).

    The work runs on the rows of the transpose (U, N), 3-4x faster than along dim 0 on a CPU;
    the results are (N, U) views of (U, N) memory (``.t()`` gives the rows back for free)."""
    rows = values.t().contiguous()
    n = rows.shape[1]
    ordered, order = rows.sort(dim=1, stable=True)
    position = torch.arange(n, device=values.device).expand_as(ordered)
    new_run = torch.ones_like(ordered, dtype=torch.bool)
    new_run[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    first = torch.where(new_run, position, torch.zeros_like(position)).cummax(dim=1).values
    end_run = torch.ones_like(new_run)
    end_run[:, :-1] = new_run[:, 1:]
    # the last position of each run: a reversed running min over the run ends.
    last = torch.where(end_run, position, torch.full_like(position, n)).flip(1).cummin(dim=1).values.flip(1)
    return order.t(), ordered.t(), first.t(), last.t()


def average_ranks(values: Tensor, runs=None) -> Tensor:
    """Ranks 1..N along dim 0 of (N, U), ties given their average rank (scipy's rankdata 'average')."""
    order, _, first, last = runs if runs is not None else _sorted_runs(values)
    ranks_sorted = (first + last).to(torch.float64) / 2 + 1
    return torch.empty_like(ranks_sorted).scatter_(0, order, ranks_sorted)


def _class_counts(labels: Tensor, num_classes: int) -> Tensor:
    return torch.bincount(labels, minlength=num_classes).to(torch.float64)


# ----------------------------------------------------------------------------- measures from means


def sparseness(means: Tensor) -> Tensor:
    r"""Rolls-Tovee sparseness across classes, from class means (C, U) (NaN rows: absent classes).

    .. math:: a = \frac{(\frac1C \sum_c m_c)^2}{\frac1C \sum_c m_c^2}, \quad S = \frac{1 - a}{1 - 1/C}

    over the C present classes; in [0, 1] for non-negative means, 1 = one class only,
    0 = every class alike. A dead unit (all means 0) gets 0.
    """
    present = ~torch.isnan(means).all(dim=1)
    c = present.sum().to(torch.float64)
    m = means.to(torch.float64).nan_to_num(nan=0.0)
    mean = m.sum(dim=0) / c
    mean_sq = (m * m).sum(dim=0) / c
    a = torch.where(mean_sq > 0, mean * mean / mean_sq.clamp(min=1e-300), torch.ones_like(mean))
    s = (1 - a) / (1 - 1 / c).clamp(min=1e-12)
    return torch.where(c >= 2, s, torch.zeros_like(s))


def dprime_from_halves(sums: Tensor, sumsq: Tensor, counts: Tensor) -> Tensor:
    r"""d' of the preferred class vs the rest, pref chosen on half 0 and scored on half 1.

    Args:
        sums, sumsq: (2, C, U) per-half, per-class sums and sums of squares (float64).
        counts: (2, C) per-half class counts.

    .. math:: d' = \frac{\mu_{pref} - \mu_{rest}}{\sqrt{(\sigma^2_{pref} + \sigma^2_{rest}) / 2}}

    with population (ddof 0) variances over the samples of half 1; "rest" pools every other
    class's samples. Choosing pref on the scored samples would bias d' upward. 0/0 gives 0;
    a positive difference with zero spread gives +inf (a perfect, noiseless detector).
    """
    pref = _means_from_sums(sums[0], counts[0]).nan_to_num(nan=float("-inf")).argmax(dim=0)  # (U,)
    s, q, n = sums[1], sumsq[1], counts[1]
    s_p = s.gather(0, pref.unsqueeze(0)).squeeze(0)
    q_p = q.gather(0, pref.unsqueeze(0)).squeeze(0)
    n_p = n[pref]
    n_r = n.sum() - n_p
    s_r, q_r = s.sum(0) - s_p, q.sum(0) - q_p
    m_p, m_r = s_p / n_p.clamp(min=1), s_r / n_r.clamp(min=1)
    v_p = (q_p / n_p.clamp(min=1) - m_p * m_p).clamp(min=0)
    v_r = (q_r / n_r.clamp(min=1) - m_r * m_r).clamp(min=0)
    diff = m_p - m_r
    denom = ((v_p + v_r) / 2).sqrt()
    # sums of squares leave rounding noise of ~1e-16 * mean^2 in the variance: treat it as 0.
    scale = m_p.abs() + m_r.abs()
    noiseless = denom <= 1e-7 * scale
    diff = torch.where(diff.abs() <= 1e-12 * scale, torch.zeros_like(diff), diff)
    d = torch.where(noiseless, torch.where(diff.abs() > 0, diff.sign() * math.inf, torch.zeros_like(diff)),
                    diff / denom.clamp(min=1e-300))
    valid = (n_p > 0) & (n_r > 0)
    return torch.where(valid, d, torch.zeros_like(d))


# ----------------------------------------------------------------------------- streamed top and extremes


def default_top_k(num_samples: int, num_classes_present: int) -> int:
    """K of :func:`top_k_precision`: the size of an average class of the whole data, at most
    :data:`DEFAULT_TOP_K` (100, Gale et al.'s K), so that a precision of 1 is reachable."""
    return max(1, min(DEFAULT_TOP_K, num_samples // max(1, num_classes_present)))


def _per_class(labels: Tensor, mask: Tensor, num_classes: int) -> Tensor:
    """Per-class counts (C, U) of the True entries of ``mask`` (R, U); ``labels`` (R, U), -1: no item."""
    out = torch.zeros(num_classes, mask.shape[1], dtype=torch.float64, device=mask.device)
    return out.scatter_add_(0, labels.clamp(min=0), (mask & (labels >= 0)).to(torch.float64))


class _TopK:
    """The ``capacity`` largest activations of every unit over a stream, exactly, with ties.

    State: values (R, U) descending and their classes (R, U) (-1: empty, while fewer than R
    items were seen), and ``ties`` (C, U): per-class counts of every item seen that equals the
    R-th value. Every item above the R-th value is held; an item equal to it may have been
    dropped, and ``ties`` counts it. When the R-th value rises, every item equal to the new
    one lies in the held items or in the new batch (all others are below the old R-th value).
    """

    def __init__(self, capacity: int, num_classes: int):
        self.capacity, self.num_classes = capacity, num_classes
        self.values: Tensor | None = None

    def update(self, x: Tensor, labels: Tensor) -> None:
        n, u = x.shape
        c = self.num_classes
        if self.values is None:
            self.values = torch.full((self.capacity, u), float("-inf"), dtype=x.dtype, device=x.device)
            self.labels = torch.full((self.capacity, u), -1, dtype=torch.long, device=x.device)
            self.ties = torch.zeros(c, u, dtype=torch.float64, device=x.device)
        values = torch.cat([self.values, x])
        classes = torch.cat([self.labels, labels.unsqueeze(1).expand(n, u)])
        top = values.topk(self.capacity, dim=0)
        old, new = self.values[-1], top.values[-1]
        batch_tied = torch.zeros(c, u, dtype=torch.float64, device=x.device)
        batch_tied.index_add_(0, labels, (x == new).to(torch.float64))
        held_tied = _per_class(self.labels, self.values == new, c)
        self.ties = torch.where(new == old, self.ties + batch_tied, held_tied + batch_tied)
        self.values, self.labels = top.values, classes.gather(0, top.indices)

    def precision(self, k: int) -> Tensor:
        """Largest share of one class among the K highest items, (U,); items tied with the K-th
        value share the places left in proportion to their classes. K <= capacity and <= items seen."""
        kth = self.values[k - 1]
        above = _per_class(self.labels, self.values > kth.unsqueeze(0), self.num_classes)
        held_tied = _per_class(self.labels, self.values == kth.unsqueeze(0), self.num_classes)
        # Tied with the last held value: items may have been dropped; ``ties`` counts them all.
        tied = torch.where(kth == self.values[-1], self.ties, held_tied)
        places = k - above.sum(dim=0)
        share = above + tied * (places / tied.sum(dim=0)).unsqueeze(0)
        return share.amax(dim=0) / k


class _Extremes:
    """Per-class minimum and maximum (C, U) over a stream; absent classes +inf / -inf."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.low: Tensor | None = None

    def update(self, x: Tensor, labels: Tensor) -> None:
        if self.low is None:
            shape = (self.num_classes, x.shape[1])
            self.low = torch.full(shape, float("inf"), dtype=x.dtype, device=x.device)
            self.high = torch.full(shape, float("-inf"), dtype=x.dtype, device=x.device)
        index = labels.unsqueeze(1).expand_as(x)
        self.low = self.low.scatter_reduce(0, index, x, reduce="amin", include_self=True)
        self.high = self.high.scatter_reduce(0, index, x, reduce="amax", include_self=True)


class _TopRun:
    """The leading run of every unit over a stream: the items of its top class (the class of the
    highest activation) that lie strictly above every item of every other class.

    Exact in one pass: the threshold (the largest item of the other classes) only rises while
    the top class stays, so an item once below it never counts again; when the top class
    changes, none of the new top class's earlier items can lie above the old top class's
    maximum. Memory: the longest run (R, U), at most the size of the top class (a perfect
    detector's whole class; while the first class streams in alone, all of it).
    """

    def __init__(self):
        self.values: Tensor | None = None

    def update(self, x: Tensor, labels: Tensor, class_max: Tensor) -> None:
        """``class_max``: (C, U) per-class maxima including this batch."""
        top = class_max.argmax(dim=0)  # ties: the first class, and nothing lies above the other
        rest = class_max.scatter(0, top.unsqueeze(0), float("-inf")).amax(dim=0)
        fresh = (labels.unsqueeze(1) == top.unsqueeze(0)) & (x > rest.unsqueeze(0))
        candidates = torch.where(fresh, x, torch.full_like(x, float("-inf")))
        if self.values is not None:
            held = (top == self.top).unsqueeze(0) & (self.values > rest.unsqueeze(0))
            candidates = torch.cat([torch.where(held, self.values, torch.full_like(self.values, float("-inf"))),
                                    candidates])
        rows = max(1, int((candidates > float("-inf")).sum(dim=0).max()))
        self.values, self.top = candidates.topk(rows, dim=0).values, top

    def selectivity(self, counts: Tensor) -> Tensor:
        """Run length over the size of the top class, (U,)."""
        hits = (self.values > float("-inf")).sum(dim=0).to(torch.float64)
        return hits / counts[self.top].clamp(min=1)


def _gap_from_extremes(means: Tensor, extremes: _Extremes) -> Tensor:
    """The localist gap scaled by the unit's range: the raw gap is in the unit's own activation
    units, so a unit that barely responds (range 0.01) would outrank a clear detector (range 10)."""
    pref = means.nan_to_num(nan=float("-inf")).argmax(dim=0).unsqueeze(0)
    low = extremes.low.gather(0, pref).squeeze(0).to(torch.float64)
    others = extremes.high.scatter(0, pref, float("-inf")).amax(dim=0).to(torch.float64)
    span = extremes.high.amax(dim=0).to(torch.float64) - extremes.low.amin(dim=0).to(torch.float64)
    gap = low - others
    # a constant unit (span 0) has gap 0: no item of its class lies apart from the others
    return torch.where(span > 0, gap / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(gap))


def top_k_precision(acts: Tensor, labels: Tensor, num_classes: int, k: int | None = None) -> Tensor:
    """Largest share of one class among the K samples with the highest activation, (U,).

    K defaults to :func:`default_top_k` (one average class, at most 100), so 1 is reachable.
    Items tied with the K-th value share the remaining places in proportion to their classes,
    so a unit that answers all alike scores the largest class share (1/C when balanced).
    """
    n = acts.shape[0]
    if k is None:
        k = default_top_k(n, int((_class_counts(labels, num_classes) > 0).sum()))
    k = max(1, min(int(k), n))
    top = _TopK(k, num_classes)
    top.update(acts, labels)
    return top.precision(k)


def top_class_selectivity(acts: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Recall at 100% precision, (U,).

    The top class is the class of the highest activation; the score is the share of its items
    that lie strictly above every item of every other class (ties count as a false alarm,
    so a unit that answers all alike scores 0). 1 for a perfect detector.
    """
    extremes, run = _Extremes(num_classes), _TopRun()
    extremes.update(acts, labels)
    run.update(acts, labels, extremes.high)
    return run.selectivity(_class_counts(labels, num_classes).to(acts.device))


def localist_gap(acts: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    r"""The localist gap (Bowers et al.) over the unit's range, (U,), in [-1, 1].

    .. math:: g = \frac{\min_{i \in pref} a_i - \max_{i \notin pref} a_i}{\max_i a_i - \min_i a_i}

    pref the preferred class (argmax class mean); 0 for a constant unit. Positive only for a
    perfect detector of the preferred class; 1 for a binary one. Dividing by the range makes
    units comparable (the raw gap is in each unit's own activation scale).
    """
    extremes = _Extremes(num_classes)
    extremes.update(acts, labels)
    sums = torch.zeros(num_classes, acts.shape[1], dtype=torch.float64, device=acts.device)
    sums.index_add_(0, labels, acts.to(torch.float64))
    return _gap_from_extremes(_means_from_sums(sums, _class_counts(labels, num_classes)), extremes)


# ----------------------------------------------------------------------------- measures from samples


def class_auroc(acts: Tensor, labels: Tensor, num_classes: int, ranks: Tensor | None = None) -> Tensor:
    r"""One-vs-rest AUROC of every class for every unit, (C, U), via Mann-Whitney U with ties.

    .. math:: AUROC_c = \frac{R_c - n_c (n_c + 1) / 2}{n_c (N - n_c)}

    R_c the sum of the (tie-averaged) ranks of class c's samples (``ranks``: :func:`average_ranks`
    of ``acts``, if already computed). Absent classes: NaN.
    """
    ranks = average_ranks(acts) if ranks is None else ranks
    rank_sums = torch.zeros(num_classes, acts.shape[1], dtype=torch.float64, device=acts.device)
    rank_sums.index_add_(0, labels, ranks)
    n_c = _class_counts(labels, num_classes).unsqueeze(1)
    auc = (rank_sums - n_c * (n_c + 1) / 2) / (n_c * (acts.shape[0] - n_c))
    return torch.where((n_c > 0) & (n_c < acts.shape[0]), auc, torch.full_like(auc, float("nan")))


def max_informedness(acts: Tensor, labels: Tensor, num_classes: int, runs=None) -> Tensor:
    """max over classes c and thresholds t of H - F, (U,), in [0, 1].

    H = P(A > t | y = c), F = P(A > t | y != c). Sort each unit's activations, descending;
    a threshold is a cut after the last item of a run of tied values. Moving a cut past an
    item of another class only lowers H - F for c, so the best cut for c lies at the end of
    the tie run of one of c's items: each item i is scored for its own class at the end g_i
    of its run, with r_i = items of its class at or above i,

        H - F = r_i / n_c - (g_i + 1 - r_i) / (N - n_c),

    (an item followed by more of its class within the run scores lower than the last one,
    so the max is unaffected). O(N U log N) time and O(N U) memory, for any number of classes.
    """
    n, u = acts.shape
    n_c = _class_counts(labels, num_classes)
    order, _, first, _ = runs if runs is not None else _sorted_runs(acts)
    # On the rows (U, N) of the sort. Descending = the ascending order reversed (the order
    # within a tie run does not matter here); the end of a run, descending, is its first position ascending.
    order, last = order.t().flip(1), (n - 1 - first.t()).flip(1)
    ys = labels[order]  # (U, N) classes in descending order of activation
    # r_i: sort positions by (class, position); an item's place in that order minus the
    # number of items of smaller classes is its 0-based index within its class.
    position = torch.arange(n, device=acts.device).unsqueeze(0)
    key = ys * n + position  # unique keys: no stable sort needed; int32 sorts faster when it fits
    by_class = (key.int() if num_classes * n < 2**31 else key).argsort(dim=1)
    place = torch.empty_like(by_class).scatter_(1, by_class, position.expand_as(by_class))
    before = torch.cumsum(n_c, 0) - n_c  # items of smaller classes
    r = (place - before[ys].long() + 1).to(torch.float64)
    n_y = n_c[ys]
    value = r / n_y - (last.to(torch.float64) + 1 - r) / (n - n_y).clamp(min=1)
    value = torch.where(n_y < n, value, torch.zeros_like(value))  # one class only: no contrast
    return value.amax(dim=1).clamp(min=0)


def default_bins(num_samples: int, num_classes: int) -> int:
    """Equal-frequency bins of :func:`mutual_information`: about sqrt(N / C), between 2 and 16.

    Fewer bins than samples per class keeps the plug-in bias (B - 1)(C - 1) / 2N small.
    """
    return int(min(16, max(2, round(math.sqrt(num_samples / max(1, num_classes))))))


def mutual_information(acts: Tensor, labels: Tensor, num_classes: int, bins: int | None = None,
                       ranks: Tensor | None = None) -> Tensor:
    r"""I(unit; class) / H(class), (U,), Miller-Madow corrected.

    The activations are cut into ``bins`` equal-frequency bins from their tie-averaged ranks
    (tied values share a bin, so a constant unit has one bin and MI 0). Each entropy gets the
    Miller-Madow correction (m - 1) / 2N for its m occupied cells:

    .. math:: \hat I = \hat I_{plug-in} + \frac{(m_X - 1) + (m_Y - 1) - (m_{XY} - 1)}{2N}

    which is about -(B - 1)(C - 1) / 2N when every cell is occupied. The result is divided by
    the plug-in H(Y) so it lies near [0, 1]; after the correction it can dip below 0.
    """
    n, u = acts.shape
    if bins is None:
        bins = default_bins(n, int((_class_counts(labels, num_classes) > 0).sum()))
    ranks = average_ranks(acts) if ranks is None else ranks
    b = ((ranks - 1) * bins / n).floor().long().clamp(max=bins - 1)  # (N, U)
    cell = b * num_classes + labels.unsqueeze(1)
    joint = torch.zeros(bins * num_classes, u, dtype=torch.float64, device=acts.device)
    joint.scatter_add_(0, cell, torch.ones_like(cell, dtype=torch.float64))
    joint = joint.view(bins, num_classes, u)
    p_xy = joint / n
    p_x = p_xy.sum(dim=1)  # (B, U)
    p_y = p_xy.sum(dim=0)  # (C, U)

    def entropy(p: Tensor, dims) -> Tensor:
        return -(p * p.clamp(min=1e-300).log()).sum(dim=dims)

    h_x, h_y, h_xy = entropy(p_x, 0), entropy(p_y, 0), entropy(p_xy, (0, 1))
    m_x, m_y, m_xy = (p_x > 0).sum(0), (p_y > 0).sum(0), (p_xy > 0).sum((0, 1))
    mi = h_x + h_y - h_xy + ((m_x - 1) + (m_y - 1) - (m_xy - 1)).to(torch.float64) / (2 * n)
    return torch.where(h_y > 0, mi / h_y.clamp(min=1e-300), torch.zeros_like(mi))


# ----------------------------------------------------------------------------- the kept samples


class _Sample:
    """The samples the "samples" measures rank: all of them, or a seeded reservoir.

    ``size`` None keeps every sample. Otherwise Vitter's algorithm R within each stratum (one
    stratum: a uniform sample of ``size`` from the whole stream; ``balanced``: one per class,
    ``size // C`` each): the k-th item of a stratum takes slot k while there is room, else slot
    j ~ U[0, k] if j < capacity (a later item wins a slot over an earlier one). j is a hash of
    (seed, stratum, k), so the sample does not depend on the batch sizes.
    """

    def __init__(self, size: int | None, balanced: bool, num_classes: int, seed: int):
        self.size, self.seed, self.num_classes = size, seed, num_classes
        self.strata = num_classes if balanced else 1
        self.capacity = None if size is None else (max(1, size // num_classes) if balanced else size)
        self.parts: list[tuple[Tensor, Tensor]] = []
        self.values: Tensor | None = None
        self.seen: Tensor | None = None  # (strata,) items of each stratum seen so far

    def update(self, x: Tensor, labels: Tensor) -> None:
        if self.capacity is None:
            self.parts.append((x, labels))
            return
        n, u = x.shape
        s, cap = self.strata, self.capacity
        if self.values is None:
            self.values = torch.zeros(s * cap, u, dtype=x.dtype, device=x.device)
            self.labels = torch.zeros(s * cap, dtype=torch.long, device=x.device)
            self.seen = torch.zeros(s, dtype=torch.long, device=x.device)
        stratum = labels if s > 1 else torch.zeros_like(labels)
        onehot = torch.nn.functional.one_hot(stratum, s)
        k = self.seen[stratum] + (onehot.cumsum(dim=0) - onehot).gather(1, stratum.unsqueeze(1)).squeeze(1)
        self.seen += onehot.sum(dim=0)
        draw = _seeded_hash(k * s + stratum, self.seed, salt=2) % (k + 1)
        j = torch.where(k < cap, k, draw)
        keep = j < cap
        slot = stratum * cap + j
        winner = torch.full((s * cap,), -1, dtype=torch.long, device=x.device)
        rows = torch.arange(n, device=x.device)
        winner.scatter_reduce_(0, slot[keep], rows[keep], reduce="amax")
        filled = (winner >= 0).nonzero().squeeze(1)
        self.values[filled] = x[winner[filled]]
        self.labels[filled] = labels[winner[filled]]

    def samples(self) -> tuple[Tensor, Tensor]:
        if self.capacity is None:
            return torch.cat([p[0] for p in self.parts]), torch.cat([p[1] for p in self.parts])
        filled = torch.arange(self.capacity, device=self.seen.device).unsqueeze(0) < self.seen.unsqueeze(1)
        filled = filled.flatten()
        return self.values[filled], self.labels[filled]

    @property
    def kept(self) -> int:
        if self.capacity is None:
            return sum(p[1].numel() for p in self.parts)
        return int(self.seen.clamp(max=self.capacity).sum()) if self.seen is not None else 0


# ----------------------------------------------------------------------------- the registry


class LayerStats:
    """What a measure function reads: the streamed state of one layer, with lazy derived values.

    Attributes (each is computed on first use):
        num_classes, eps, seed: as given to the accumulator.
        counts: (C,) samples per class (float64). total: N.
        sums: (C, U) per-class sums (float64). means: (C, U) class means (NaN rows: absent).
        halves: (sums (2, C, U), sums of squares (2, C, U), counts (2, C)) per d' half.
        extremes: ``.low``, ``.high`` (C, U) per-class minima and maxima.
        top, top_k: the top-K state (``top.precision(k)``) and K of the whole data.
        top_run: the leading-run state (``top_run.selectivity(counts)``).
        acts, labels: the kept samples (M, U), (M,). ranks, runs: their average ranks and
            sorted runs (:func:`average_ranks`), shared by the measures that rank.
        bins: equal-frequency bins of ``mi``. permutation: (M,) a seeded shuffle of the samples.
    """

    def __init__(self, acc: "UnitMeasureAccumulator", samples: tuple[Tensor, Tensor] | None = None,
                 bins: int | None = None):
        self._acc = acc
        self.num_classes, self.eps, self.seed = acc.num_classes, acc.eps, acc.seed
        self.total = acc.total
        self._samples, self._bins = samples, bins

    @cached_property
    def halves(self):
        return self._acc.sums, self._acc.sumsq, self._acc.counts

    @cached_property
    def counts(self) -> Tensor:
        return self._acc.counts.sum(0)

    @cached_property
    def sums(self) -> Tensor:
        return self._acc.sums.sum(0)

    @cached_property
    def means(self) -> Tensor:
        return _means_from_sums(self.sums, self.counts)

    @property
    def extremes(self) -> _Extremes:
        return self._acc.extremes

    @property
    def positives(self) -> tuple[Tensor, Tensor]:
        """(counts, sums) (C, U): per class, the samples with a response above 0 and their responses."""
        return self._acc.positive_counts, self._acc.positive_sums

    @cached_property
    def sumsq(self) -> Tensor:
        """(U,) sum of squares of every unit's responses."""
        return self._acc.sumsq.sum(dim=(0, 1))

    @property
    def top(self) -> _TopK:
        return self._acc.top

    @cached_property
    def top_k(self) -> int:
        k = self._acc.top_k or default_top_k(self.total, int((self.counts > 0).sum()))
        return max(1, min(k, self.total))

    @property
    def top_run(self) -> _TopRun:
        return self._acc.top_run

    @cached_property
    def _kept(self) -> tuple[Tensor, Tensor]:
        return self._samples if self._samples is not None else self._acc.sample.samples()

    @property
    def acts(self) -> Tensor:
        return self._kept[0]

    @property
    def labels(self) -> Tensor:
        return self._kept[1]

    @cached_property
    def runs(self):
        return _sorted_runs(self.acts)

    @cached_property
    def ranks(self) -> Tensor:
        return average_ranks(self.acts, self.runs)

    @cached_property
    def bins(self) -> int:
        if self._bins is not None:
            return self._bins
        # bins of the whole data, also for a sample: the estimand is the data's MI
        return self._acc.bins or default_bins(self.total, int((self.counts > 0).sum()))

    @cached_property
    def permutation(self) -> Tensor:
        gen = torch.Generator().manual_seed(self.seed)
        return torch.randperm(self.labels.numel(), generator=gen).to(self.labels.device)


@dataclass(frozen=True)
class Measure:
    """One column of :func:`unit_measures`.

    Attributes:
        name: the column.
        compute: ``LayerStats -> (U,)`` float tensor, one value per unit.
        needs: the streamed state it reads, a subset of ``{"top", "extremes", "top_run",
            "samples"}`` (the class sums are always kept). "samples" marks a measure computed
            from the kept samples: estimated (with a sampling error) when the accumulator keeps
            a sample rather than everything.
        undefined_when_dead: NaN for a dead unit (no response above 0) instead of the formula's value.
        baseline: a noise floor, not a measure: left out of :func:`measure_agreement` and of rankings.
        higher_is_more_selective: which way :func:`most_selective` ranks (True for every built-in).
        description: what the measure says of a unit, in one sentence (the exemplar page shows it).
    """

    name: str
    compute: Callable[[LayerStats], Tensor]
    needs: frozenset = frozenset()
    undefined_when_dead: bool = False
    baseline: bool = False
    higher_is_more_selective: bool = True
    description: str = ""


def _auroc(s: LayerStats) -> Tensor:
    return class_auroc(s.acts, s.labels, s.num_classes, s.ranks).nan_to_num(nan=float("-inf")).amax(dim=0)


def _monoscore(s: LayerStats) -> Tensor:
    """MonoScore with label embeddings over all the data, from the class sums, the sum of squares
    and the extremes (exact; the same formula as the MonoLoss term, ``core.monoscore``)."""
    lo = s.extremes.low.amin(dim=0).to(torch.float64)
    hi = s.extremes.high.amax(dim=0).to(torch.float64)
    return _score_from_moments(*_moments_from_sums(s.sums, s.counts, s.sums.sum(dim=0), s.sumsq, s.total, lo, hi))


def class_purity(positive: Tensor) -> Tensor:
    """Largest share of one class among a unit's activating samples, (U,), from per-class (C, U)
    counts (binary purity) or summed responses (weighted purity) of the samples above 0; NaN
    for a unit with none."""
    total = positive.sum(dim=0)
    share = positive.amax(dim=0) / torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, share, torch.full_like(share, float("nan")))


#: name -> :class:`Measure`, in column order. Add a measure with :func:`register_measure`.
MEASURES: dict[str, Measure] = {}


def register_measure(measure: Measure) -> Measure:
    """Add ``measure`` to :data:`MEASURES` (a new column of :func:`unit_measures`, the streaming
    accumulator, the CSVs, :func:`measure_agreement` and the exemplar page). Returns it.

    Example::

        >>> def mean_activation(stats):  # the largest class mean of every unit
        ...     return stats.means.nan_to_num(nan=float("-inf")).amax(dim=0)
        >>> _ = register_measure(Measure("mean_activation", mean_activation))
        >>> del MEASURES["mean_activation"]
    """
    known = {"top", "extremes", "top_run", "samples"}
    if not set(measure.needs) <= known:
        raise ValueError(f"measure {measure.name!r} needs {sorted(set(measure.needs) - known)}; known: {sorted(known)}")
    if measure.name in MEASURES or measure.name in ("layer", "unit", "dead", "preferred_class"):
        raise ValueError(f"a column named {measure.name!r} exists already")
    MEASURES[measure.name] = measure
    return measure


for _measure in (
    Measure("si", lambda s: selectivity_index(s.means, s.eps),
            description="Class selectivity index: (largest class mean - mean of the other class means) / their sum; "
                        "0 answers every class alike, 1 answers one class only."),
    Measure("sparseness", lambda s: sparseness(s.means),
            description="Rolls-Tovee sparseness of the class means: 0 every class alike, 1 one class only."),
    Measure("dprime", lambda s: dprime_from_halves(*s.halves), undefined_when_dead=True,
            description="d': how many pooled standard deviations the preferred class's responses lie above the "
                        "rest (the class chosen on one half of the images, scored on the other)."),
    Measure("precision", lambda s: s.top.precision(s.top_k), frozenset({"top"}), undefined_when_dead=True,
            description="Share of the unit's K strongest responses (K about one class) that come from one class."),
    Measure("top_class", lambda s: s.top_run.selectivity(s.counts), frozenset({"extremes", "top_run"}),
            undefined_when_dead=True,
            description="Share of the top class's images that the unit ranks above every image of every other "
                        "class (recall at 100% precision); 1 for a perfect detector."),
    Measure("localist_gap", lambda s: _gap_from_extremes(s.means, s.extremes), frozenset({"extremes"}),
            undefined_when_dead=True,
            description="Weakest response to the preferred class minus the strongest to any other class, over the "
                        "unit's range; above 0 only for a perfect detector."),
    Measure("auroc", _auroc, frozenset({"samples"}),
            description="Best one-class-vs-rest area under the ROC curve: the chance that an image of that class "
                        "gets a stronger response than one of another class (0.5: none)."),
    Measure("informedness", lambda s: max_informedness(s.acts, s.labels, s.num_classes, s.runs),
            frozenset({"samples"}),
            description="Best hit rate minus false-alarm rate over classes and thresholds: how good a detector "
                        "of one class the unit is (0 none, 1 perfect)."),
    Measure("mi", lambda s: mutual_information(s.acts, s.labels, s.num_classes, s.bins, s.ranks),
            frozenset({"samples"}),
            description="Mutual information between the binned response and the class, over the class entropy "
                        "(0: the response says nothing of the class)."),
    Measure("mi_shuffled", lambda s: mutual_information(s.acts, s.labels[s.permutation], s.num_classes, s.bins,
                                                        s.ranks), frozenset({"samples"}), baseline=True,
            description="The same with shuffled labels: the estimator's noise floor, not a measure."),
    Measure("monoscore", _monoscore, frozenset({"extremes"}), undefined_when_dead=True,
            description="MonoScore with label embeddings: the response-weighted share of image pairs of the same "
                        "class, min-max scaled (MonoLoss's measure)."),
    Measure("class_purity", lambda s: class_purity(s.positives[0]), undefined_when_dead=True,
            description="Share of the images the unit responds to (above 0) that belong to its most frequent class."),
    Measure("weighted_purity", lambda s: class_purity(s.positives[1]), undefined_when_dead=True,
            description="The same, each image weighted by the strength of its response."),
):
    register_measure(_measure)

#: The built-in columns of :func:`unit_measures`, in order.
ALL_MEASURES = tuple(MEASURES)


def ranked_measures(columns) -> list[str]:
    """The registered measures among ``columns`` that rank units (baselines left out), in order."""
    return [m for m, spec in MEASURES.items() if m in columns and not spec.baseline]


def most_selective(frame, measure: str, k: int | None = None):
    """The live units of ``frame`` with a value of ``measure``, most selective first (by the
    measure's own direction, :attr:`Measure.higher_is_more_selective`); ties keep the frame's
    order. ``k``: the first k only. Dead units and NaN values (undefined) are left out.

    Example::

        >>> acts = torch.tensor([[1.0, 0.0], [0.5, 2.0], [0.5, 1.0]])  # unit 1 answers class 1 only
        >>> frame = unit_measures(acts, torch.tensor([0, 1, 1]), 2, measures=["si"])
        >>> most_selective(frame, "si").unit.tolist()
        [1, 0]
    """
    spec = MEASURES[measure]
    if spec.baseline:
        raise ValueError(f"{measure!r} is a baseline (a noise floor), not a measure to rank units by")
    live = frame[~frame["dead"].astype(bool)] if "dead" in frame.columns else frame
    ranked = live.dropna(subset=[measure]).sort_values(measure, ascending=not spec.higher_is_more_selective,
                                                       kind="stable")
    return ranked if k is None else ranked.head(k)


# ----------------------------------------------------------------------------- streaming


def _resolve_measures(measures) -> tuple[str, ...]:
    if measures == "all" or measures is None:
        return tuple(MEASURES)
    names = [m.strip() for m in (measures.split(",") if isinstance(measures, str) else measures) if m.strip()]
    unknown = [m for m in names if m not in MEASURES]
    if unknown or not names:
        raise ValueError(f"measures must be 'all' or a list of {', '.join(MEASURES)}; got {measures!r}")
    return tuple(m for m in MEASURES if m in names)


class UnitMeasureAccumulator:
    """Stream (acts, labels) batches of one layer; :meth:`compute` gives every measure per unit.

    State: see the module docstring. Everything but the "samples" measures is exact over any
    number of samples; those are exact too unless ``sample_size`` is set.

    Args:
        num_classes (int): C.
        measures: ``"all"`` or a list / comma-separated string of column names.
        sample_size (int | None): samples kept for the "samples" measures (AUROC,
            informedness, MI). None: every sample (exact; memory N x U x 4 bytes). Default: None.
        balanced (bool): keep ``sample_size // C`` samples of each class instead of a uniform
            sample (changes the estimand when class sizes differ). Default: False.
        seed (int): seed of the sample, the d' halves and the label shuffle. Default: 0
        top_k (int | None): K of ``precision``; None: :func:`default_top_k` of the whole data.
        bins (int | None): bins of ``mi``; None: :func:`default_bins` of the whole data.
        eps (float): SI's guard. Default: 1e-7.
        name (str): the layer, named in warnings. Default: "acts".
    """

    def __init__(self, num_classes: int, measures="all", sample_size: int | None = None, balanced: bool = False,
                 seed: int = 0, top_k: int | None = None, bins: int | None = None, eps: float = DEFAULT_EPS,
                 name: str = "acts"):
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        if sample_size is not None and (not isinstance(sample_size, int) or sample_size < 2):
            raise ValueError(f"sample_size must be an int >= 2 (or None: keep every sample), got {sample_size!r}")
        if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be a positive int (or None), got {top_k!r}")
        self.num_classes, self.seed, self.name = num_classes, int(seed), name
        self.measures = _resolve_measures(measures)
        self.top_k, self.bins, self.eps = top_k, bins, eps
        needs = set().union(*(MEASURES[m].needs for m in self.measures))
        self.top = _TopK(top_k or DEFAULT_TOP_K, num_classes) if "top" in needs else None
        self.extremes = _Extremes(num_classes) if needs & {"extremes", "top_run"} else None
        self.top_run = _TopRun() if "top_run" in needs else None
        self.sample = _Sample(sample_size, balanced, num_classes, self.seed) if "samples" in needs else None
        self.sums = self.sumsq = self.counts = self.positive = None
        self.positive_counts = self.positive_sums = None  # (C, U): the activating samples per class
        self.total = 0  # samples seen so far: the global index of the next sample
        self._warned_negative = False

    @torch.no_grad()
    def update(self, acts: Tensor, labels: Tensor) -> None:
        """Add a batch: acts (N, U) float, labels (N,) int in [0, C)."""
        _check_inputs(acts, labels, self.num_classes)
        labels = labels.to(acts.device)
        n, u = acts.shape
        c = self.num_classes
        if self.sums is None:
            self.sums = torch.zeros(2, c, u, dtype=torch.float64, device=acts.device)
            self.sumsq = torch.zeros_like(self.sums)
            self.counts = torch.zeros(2, c, dtype=torch.float64, device=acts.device)
            self.positive = torch.zeros(u, dtype=torch.long, device=acts.device)
            self.positive_counts = torch.zeros(c, u, dtype=torch.float64, device=acts.device)
            self.positive_sums = torch.zeros(c, u, dtype=torch.float64, device=acts.device)
        elif self.sums.shape[2] != u:
            raise ValueError(f"{self.name!r} has {u} units in this batch but {self.sums.shape[2]} before")
        if not self._warned_negative and bool((acts < 0).any()):
            self._warned_negative = True
            warnings.warn(NEGATIVE_WARNING.format(name=self.name), RuntimeWarning, stacklevel=2)
        x = acts.to(torch.float64)
        half = split_halves(torch.arange(self.total, self.total + n, device=acts.device), self.seed)
        cell = half * c + labels  # (N,) in [0, 2C)
        self.sums.view(2 * c, u).index_add_(0, cell, x)
        self.sumsq.view(2 * c, u).index_add_(0, cell, x * x)
        self.counts.view(-1).index_add_(0, cell, torch.ones(n, dtype=torch.float64, device=acts.device))
        self.positive += (acts > 0).sum(dim=0)
        self.positive_counts.index_add_(0, labels, (x > 0).to(torch.float64))
        self.positive_sums.index_add_(0, labels, x.clamp(min=0))
        self.total += n
        # float32 halves the memory; float64 input stays float64 (exactly what was given).
        kept = acts if acts.dtype == torch.float64 else acts.to(torch.float32)
        if self.top is not None:
            self.top.update(kept, labels)
        if self.extremes is not None:
            self.extremes.update(kept, labels)
        if self.top_run is not None:
            self.top_run.update(kept, labels, self.extremes.high)
        if self.sample is not None:
            self.sample.update(kept, labels)

    def _check_seen(self) -> None:
        if self.sums is None:
            raise RuntimeError("the accumulator has seen no data: call update() first")

    def samples(self) -> tuple[Tensor, Tensor]:
        """The kept samples as (acts (M, U), labels (M,))."""
        self._check_seen()
        if self.sample is None:
            raise RuntimeError("this accumulator keeps no samples (no measure asked for needs them)")
        return self.sample.samples()

    @property
    def kept(self) -> int:
        """Samples kept for the "samples" measures (``total`` when every sample is kept)."""
        return self.sample.kept if self.sample is not None else self.total

    @property
    def exact(self) -> bool:
        """Whether every measure is computed from all the data (no sample left anything out)."""
        return self.kept == self.total

    def dead_units(self) -> Tensor:
        """(U,) bool on the CPU: True for a unit with no response above 0 on the data seen."""
        self._check_seen()
        return (self.positive == 0).cpu()

    def class_means(self) -> Tensor:
        """(C, U) class means (float64; NaN rows for absent classes), on the CPU."""
        self._check_seen()
        return _means_from_sums(self.sums.sum(0), self.counts.sum(0)).cpu()

    def _values(self, stats: LayerStats, names) -> dict[str, Tensor]:
        return {name: MEASURES[name].compute(stats).to(torch.float64) for name in names}

    @torch.no_grad()
    def compute(self) -> dict[str, Tensor]:
        """Every asked measure, name -> (U,) float64 on the CPU, plus ``dead`` (bool) and
        ``preferred_class`` (float64, NaN for a dead unit). Undefined values are NaN (see the module)."""
        self._check_seen()
        stats = LayerStats(self)
        dead = self.positive == 0
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=dead.device)
        preferred = stats.means.nan_to_num(nan=float("-inf")).argmax(dim=0).to(torch.float64)
        out = {"dead": dead, "preferred_class": torch.where(dead, nan, preferred)}
        for name, value in self._values(stats, self.measures).items():
            out[name] = torch.where(dead, nan, value) if MEASURES[name].undefined_when_dead else value
        return {name: value.cpu() for name, value in out.items()}

    @torch.no_grad()
    def sampling_errors(self) -> dict[str, Tensor]:
        """Standard error of every asked "samples" measure, per unit (U,) float64 on the CPU.

        The kept samples are split in two random halves (a seeded hash); with X1, X2 the
        measure on each half, M samples kept of N,

            SE = |X1 - X2| / 2 * sqrt(1 - M / N),

        whose square is an unbiased estimate of the variance of the M-sample estimate for a
        mean (two disjoint halves of a simple random sample: Var(X1 - X2) = 4 Var(X_M) / (1 - M/N)).
        One unit's SE is a one-draw estimate (chi with 1 degree of freedom): summarize it over
        units (the root mean square over a layer's live units is the typical error).
        Zero when every sample is kept. Bias is not included: informedness and MI lean upward in
        a sample (1000 of 10,000 samples, ``benchmarks/measures_sampling.py``: informedness
        +0.011 to +0.020, MI +0.002 to +0.003, AUROC none); an exact run has neither.
        """
        self._check_seen()
        names = [m for m in self.measures if "samples" in MEASURES[m].needs]
        u = self.sums.shape[2]
        if self.exact or not names:
            return {name: torch.zeros(u, dtype=torch.float64) for name in names}
        full = LayerStats(self)
        acts, labels = full.acts, full.labels
        half = _seeded_hash(torch.arange(acts.shape[0], device=acts.device), self.seed, salt=3) & 1
        parts = [self._values(LayerStats(self, (acts[half == h], labels[half == h]), full.bins), names)
                 for h in (0, 1)]
        shrink = math.sqrt(max(0.0, 1 - acts.shape[0] / self.total))
        return {name: ((parts[0][name] - parts[1][name]).abs() / 2 * shrink).cpu() for name in names}

    def to_frame(self, layer: str | None = None):
        """:meth:`compute` as a DataFrame: [layer,] unit, dead, preferred_class, one column per measure."""
        return _frame(self.compute(), self.measures, layer)


# ----------------------------------------------------------------------------- tables


def _frame(values: dict[str, Tensor], measures: tuple[str, ...], layer: str | None):
    import pandas as pd

    units = values["dead"].numel()
    columns = {"layer": layer} if layer is not None else {}
    columns |= {"unit": range(units), "dead": values["dead"].numpy(),
                "preferred_class": pd.array(values["preferred_class"].numpy(), dtype="Int64")}
    columns |= {m: values[m].numpy() for m in measures}
    return pd.DataFrame(columns)


def unit_measures(acts, labels: Tensor, num_classes: int, measures="all", **options):
    """Every selectivity measure of every unit, as a pandas DataFrame, from all the samples given.

    Args:
        acts (Tensor | dict[str, Tensor]): (N, U) activations, or layer name -> (N, U); a dict
            adds a ``layer`` column. Negative values get a warning (once per layer): the
            measures assume responses after the ReLU.
        labels (Tensor): (N,) int class labels in [0, num_classes).
        num_classes (int): C.
        measures: ``"all"`` (default) or a list of column names (see the module table).
        **options: ``sample_size``, ``balanced``, ``seed``, ``top_k``, ``bins``, ``eps`` of
            :class:`UnitMeasureAccumulator`. By default every sample is used: every measure is exact.

    Returns:
        DataFrame: one row per unit: [layer,] unit, dead (no response above 0), preferred_class
        (NaN for a dead unit), then one column per measure (NaN where undefined: see the module).

    Example::

        >>> acts = torch.tensor([[2.0, 1.0, 0.0], [3.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
        >>> unit_measures(acts, torch.tensor([0, 0, 1, 1]), 2, measures=["si", "precision"])
           unit   dead  preferred_class   si  precision
        0     0  False                0  1.0        1.0
        1     1  False                0  0.0        0.5
        2     2   True             <NA>  0.0        NaN
    """
    import pandas as pd

    layers = acts if isinstance(acts, dict) else {None: acts}
    frames = []
    for name, layer_acts in layers.items():
        meter = UnitMeasureAccumulator(num_classes, measures, name="acts" if name is None else name, **options)
        meter.update(layer_acts, labels)
        frames.append(meter.to_frame(name))
    return pd.concat(frames, ignore_index=True)


AGREEMENT_COLUMNS = ["layer", "measure_a", "measure_b", "units", "spearman", "reason"]


def measure_agreement(frame):
    """Per layer, the Spearman rank correlation across live units of every pair of measures.

    Dead units are left out (a dead unit has no preferred class; its measures are NaN or the
    floor of a unit that answers nothing), and so is a unit where either value is NaN. A
    correlation that cannot be computed is NaN with its reason, and a warning names the layers
    and measures: a measure constant over the layer's units (e.g. ``top_class`` 0 for every
    unit of a layer with no detector) has no ranks to correlate.

    Args:
        frame (DataFrame): as :func:`unit_measures` returns (a missing ``layer`` column means
            one layer, named ``"all"``; a missing ``dead`` column means every unit is live).
            Baselines (``mi_shuffled``) are not measures: left out.

    Returns:
        DataFrame: columns layer, measure_a, measure_b, units (live units with both values),
        spearman, reason (empty where spearman is a number), one row per unordered pair,
        layers in order of appearance.
    """
    import pandas as pd

    frame = frame if "layer" in frame.columns else frame.assign(layer="all")
    names = ranked_measures(frame.columns)
    rows, constant = [], {}
    for layer, group in frame.groupby("layer", sort=False):
        live = group[~group["dead"].astype(bool)] if "dead" in group.columns else group
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                pair = live[[a, b]].dropna()
                flat = [m for m in (a, b) if pair[m].nunique() == 1]
                spearman, reason = float("nan"), ""
                if len(pair) < 3:
                    reason = f"{len(pair)} live units with both values: too few to rank"
                elif flat:
                    constant.setdefault(layer, set()).update(flat)
                    reason = " and ".join(f"{m} is {pair[m].iloc[0]:.4g} for every live unit" for m in flat)
                else:
                    # Spearman = Pearson of the ranks; +-inf (d' of a noiseless detector) ranks as extreme.
                    spearman = float(pair.rank().corr(method="pearson").loc[a, b])
                rows.append({"layer": layer, "measure_a": a, "measure_b": b, "units": len(pair),
                             "spearman": spearman, "reason": reason})
    if constant:
        where = "; ".join(f"{layer}: {', '.join(sorted(m))}" for layer, m in constant.items())
        warnings.warn(f"measure_agreement: measures constant over a layer's live units ({where}) have no ranks: "
                      "their Spearman correlations are NaN (see the reason column)", RuntimeWarning, stacklevel=2)
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
