"""Selectivity measured many ways (Gale et al. 2020): pure tensor functions and a streaming meter.

Every function takes activations ``acts`` (N, U) (a conv channel reduced by its spatial mean,
measured after the ReLU, so >= 0), integer ``labels`` (N,) in [0, C) and returns one number
per unit (U,), vectorized over units and classes. The preferred class of a unit is the
argmax of its class means. Formulas and pitfalls: ``shared/reference/measures.md``.

=================  ==========================================================  =========  ======
column             measure                                                     floor      source
=================  ==========================================================  =========  ======
``si``             class selectivity index (CCMAS), ``core.functional``        0          sums
``sparseness``     Rolls-Tovee sparseness of the class means                   0          sums
``dprime``         d' of the preferred class vs the rest, pref chosen on one   0          sums
                   half of the samples and scored on the other half
``precision``      share of the top-K activations that belong to one class     ~1/C       sample
``top_class``      recall at 100% precision (top-class selectivity)            0          sample
``localist_gap``   min over pref items - max over other items (> 0: detector)  <= 0       sample
``auroc``          max over classes of the one-vs-rest AUROC (Mann-Whitney)    0.5        sample
``informedness``   max over classes and thresholds of hit rate - false alarms  0          sample
``mi``             I(unit; class) / H(class), equal-frequency bins,            ~0         sample
                   Miller-Madow corrected
``mi_shuffled``    the same with shuffled labels: the estimator's noise floor  ~0         sample
=================  ==========================================================  =========  ======

Streaming (:class:`UnitMeasureAccumulator`): the "sums" measures are exact over any number of
samples (per-class sums, sums of squares and counts, in float64, per d' half). The "sample"
measures need the samples themselves: the accumulator keeps a class-balanced reservoir of at
most ``per_class`` samples of every class (default :data:`DEFAULT_PER_CLASS` = 100; memory
``C * per_class * U`` float32 per layer, e.g. 10 classes x 100 x 512 units = 2 MB,
1000 classes x 100 x 2048 units = 820 MB: lower ``per_class`` for ImageNet-sized layers), filled by
reservoir sampling (Vitter's algorithm R). While a class has at most ``per_class`` samples the
reservoir holds all of them and the sample measures are exact. Random choices (reservoir
slots, d' halves) come from a hash of (seed, global sample index) rather than a generator,
so streaming in any batch sizes gives the numbers of one batch.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..core.functional import DEFAULT_EPS, _check_inputs, _means_from_sums, selectivity_index

__all__ = [
    "ALL_MEASURES",
    "DEFAULT_PER_CLASS",
    "UnitMeasureAccumulator",
    "average_ranks",
    "class_auroc",
    "default_bins",
    "default_top_k",
    "dprime_from_halves",
    "localist_gap",
    "max_informedness",
    "measure_agreement",
    "mutual_information",
    "sparseness",
    "split_halves",
    "top_class_selectivity",
    "top_k_precision",
    "unit_measures",
]

#: Columns of :func:`unit_measures`, in order.
ALL_MEASURES = ("si", "sparseness", "dprime", "precision", "top_class", "localist_gap", "auroc", "informedness",
                "mi", "mi_shuffled")
STREAMED = ("si", "sparseness", "dprime")
#: Reservoir size per class of :class:`UnitMeasureAccumulator`.
DEFAULT_PER_CLASS = 100


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
    rank share one call (sorting is most of their cost)."""
    n = values.shape[0]
    order = values.argsort(dim=0, stable=True)
    ordered = values.gather(0, order)
    position = torch.arange(n, device=values.device).unsqueeze(1).expand_as(ordered)
    new_run = torch.ones_like(ordered, dtype=torch.bool)
    new_run[1:] = ordered[1:] != ordered[:-1]
    first = torch.where(new_run, position, torch.zeros_like(position)).cummax(dim=0).values
    end_run = torch.ones_like(new_run)
    end_run[:-1] = new_run[1:]
    # the last position of each run: a reversed running min over the run ends.
    last = torch.where(end_run, position, torch.full_like(position, n)).flip(0).cummin(dim=0).values.flip(0)
    return order, ordered, first, last


def average_ranks(values: Tensor, runs=None) -> Tensor:
    """Ranks 1..N along dim 0 of (N, U), ties given their average rank (scipy's rankdata 'average')."""
    order, _, first, last = runs if runs is not None else _sorted_runs(values)
    ranks_sorted = (first + last).to(torch.float64) / 2 + 1
    return torch.empty_like(ranks_sorted).scatter_(0, order, ranks_sorted)


def _class_counts(labels: Tensor, num_classes: int) -> Tensor:
    return torch.bincount(labels, minlength=num_classes).to(torch.float64)


def _class_extreme(acts: Tensor, labels: Tensor, num_classes: int, reduce: str) -> Tensor:
    """Per-class max or min (C, U); absent classes get -inf (max) or +inf (min)."""
    fill = float("-inf") if reduce == "amax" else float("inf")
    out = torch.full((num_classes, acts.shape[1]), fill, dtype=acts.dtype, device=acts.device)
    index = labels.unsqueeze(1).expand_as(acts)
    return out.scatter_reduce(0, index, acts, reduce=reduce, include_self=True)


def _preferred(acts: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """argmax of the class means, (U,) (absent classes excluded)."""
    sums = torch.zeros(num_classes, acts.shape[1], dtype=torch.float64, device=acts.device)
    sums.index_add_(0, labels, acts.to(torch.float64))
    means = _means_from_sums(sums, _class_counts(labels, num_classes))
    return means.nan_to_num(nan=float("-inf")).argmax(dim=0)


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


# ----------------------------------------------------------------------------- measures from samples


def default_top_k(num_samples: int, num_classes_present: int) -> int:
    """K of :func:`top_k_precision`: the size of an average class, at most 100 (Gale et al.'s K)."""
    return max(1, min(100, num_samples // max(1, num_classes_present)))


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
    kth = acts.topk(k, dim=0).values[-1]  # (U,)
    above = (acts > kth).to(torch.float64)
    tied = (acts == kth).to(torch.float64)
    count_above = torch.zeros(num_classes, acts.shape[1], dtype=torch.float64, device=acts.device)
    count_tied = torch.zeros_like(count_above)
    count_above.index_add_(0, labels, above)
    count_tied.index_add_(0, labels, tied)
    places = k - above.sum(dim=0)  # places left for the tied items
    share = count_above + count_tied * (places / tied.sum(dim=0)).unsqueeze(0)
    return share.amax(dim=0) / k


def top_class_selectivity(acts: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Recall at 100% precision, (U,).

    The top class is the class of the highest activation; the score is the share of its items
    that lie strictly above every item of every other class (ties count as a false alarm,
    so a unit that answers all alike scores 0). 1 for a perfect detector.
    """
    class_max = _class_extreme(acts, labels, num_classes, "amax")  # (C, U)
    top = class_max.argmax(dim=0)  # (U,)
    others = class_max.scatter(0, top.unsqueeze(0), float("-inf")).amax(dim=0)
    hits = ((labels.unsqueeze(1) == top.unsqueeze(0)) & (acts > others.unsqueeze(0))).sum(dim=0)
    return hits.to(torch.float64) / _class_counts(labels, num_classes)[top]


def localist_gap(acts: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """min over the preferred class's items - max over the other classes' items, (U,).

    Positive only for a perfect detector of the preferred class (argmax class mean).
    """
    pref = _preferred(acts, labels, num_classes).unsqueeze(0)
    low = _class_extreme(acts, labels, num_classes, "amin").gather(0, pref).squeeze(0)
    others = _class_extreme(acts, labels, num_classes, "amax").scatter(0, pref, float("-inf")).amax(dim=0)
    return (low - others).to(torch.float64)


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
    # Descending = the ascending order reversed (the order within a tie run does not matter here);
    # the end of a run, descending, is its first position ascending.
    order, last = order.flip(0), (n - 1 - first).flip(0)
    ys = labels[order]  # (N, U) classes in descending order of activation
    # r_i: sort positions by (class, position); an item's place in that order minus the
    # number of items of smaller classes is its 0-based index within its class.
    position = torch.arange(n, device=acts.device).unsqueeze(1)
    key = ys * n + position  # unique keys: no stable sort needed; int32 sorts faster when it fits
    by_class = (key.int() if num_classes * n < 2**31 else key).argsort(dim=0)
    place = torch.empty_like(by_class).scatter_(0, by_class, position.expand_as(by_class))
    before = torch.cumsum(n_c, 0) - n_c  # items of smaller classes
    r = (place - before[ys].long() + 1).to(torch.float64)
    n_y = n_c[ys]
    value = r / n_y - (last.to(torch.float64) + 1 - r) / (n - n_y).clamp(min=1)
    value = torch.where(n_y < n, value, torch.zeros_like(value))  # one class only: no contrast
    return value.amax(dim=0).clamp(min=0)


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


# ----------------------------------------------------------------------------- streaming


def _resolve_measures(measures) -> tuple[str, ...]:
    if measures == "all" or measures is None:
        return ALL_MEASURES
    names = [m.strip() for m in (measures.split(",") if isinstance(measures, str) else measures) if m.strip()]
    unknown = [m for m in names if m not in ALL_MEASURES]
    if unknown or not names:
        raise ValueError(f"measures must be 'all' or a list of {', '.join(ALL_MEASURES)}; got {measures!r}")
    return tuple(m for m in ALL_MEASURES if m in names)


class UnitMeasureAccumulator:
    """Stream (acts, labels) batches of one layer; :meth:`compute` gives every measure per unit.

    State: per-class sums, sums of squares and counts for each d' half (2, C, U), float64;
    a class-balanced reservoir (C, per_class, U) (float32, or float64 for float64 input) with
    the number of samples seen per class.
    See the module docstring for what streams exactly and what is sampled.

    Args:
        num_classes (int): C.
        measures: ``"all"`` or a list / comma-separated string of column names.
        per_class (int): reservoir size per class. Default: :data:`DEFAULT_PER_CLASS`.
        seed (int): seed of the reservoir, the d' halves and the label shuffle. Default: 0
        top_k (int | None): K of ``precision``; None: :func:`default_top_k`.
        bins (int | None): bins of ``mi``; None: :func:`default_bins`.
        eps (float): SI's guard. Default: 1e-7.
    """

    def __init__(self, num_classes: int, measures="all", per_class: int = DEFAULT_PER_CLASS, seed: int = 0,
                 top_k: int | None = None, bins: int | None = None, eps: float = DEFAULT_EPS):
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        if not isinstance(per_class, int) or per_class < 1:
            raise ValueError(f"per_class must be a positive int, got {per_class!r}")
        self.num_classes, self.per_class, self.seed = num_classes, per_class, int(seed)
        self.measures = _resolve_measures(measures)
        self.top_k, self.bins, self.eps = top_k, bins, eps
        self.needs_samples = any(m not in STREAMED for m in self.measures)
        self.sums = self.sumsq = self.counts = None
        self.reservoir: Tensor | None = None
        self.seen: Tensor | None = None  # (C,) samples of each class seen so far
        self.total = 0  # samples seen so far: the global index of the next sample

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
            self.seen = torch.zeros(c, dtype=torch.long, device=acts.device)
            if self.needs_samples:
                # float32 halves the memory; float64 input stays float64 (the measures rank, so little is lost).
                dtype = torch.float64 if acts.dtype == torch.float64 else torch.float32
                self.reservoir = torch.zeros(c, self.per_class, u, dtype=dtype, device=acts.device)
        elif self.sums.shape[2] != u:
            raise ValueError(f"acts have {u} units in this batch but {self.sums.shape[2]} before")
        x = acts.to(torch.float64)
        index = torch.arange(self.total, self.total + n, device=acts.device)
        half = split_halves(index, self.seed)
        cell = half * c + labels  # (N,) in [0, 2C)
        self.sums.view(2 * c, u).index_add_(0, cell, x)
        self.sumsq.view(2 * c, u).index_add_(0, cell, x * x)
        self.counts.view(-1).index_add_(0, cell, torch.ones(n, dtype=torch.float64, device=acts.device))
        # k: 0-based rank of each sample within its class, over everything seen.
        onehot = torch.nn.functional.one_hot(labels, c)
        k = self.seen[labels] + (onehot.cumsum(dim=0) - onehot).gather(1, labels.unsqueeze(1)).squeeze(1)
        self.seen += onehot.sum(dim=0)
        self.total += n
        if self.reservoir is None:
            return
        # Algorithm R: the k-th sample of a class takes slot k while there is room, else slot
        # j ~ U[0, k] if j < per_class. A later sample wins a slot over an earlier one.
        draw = _seeded_hash(k * c + labels, self.seed, salt=2) % (k + 1)
        j = torch.where(k < self.per_class, k, draw)
        keep = j < self.per_class
        slot = labels * self.per_class + j
        winner = torch.full((c * self.per_class,), -1, dtype=torch.long, device=acts.device)
        rows = torch.arange(n, device=acts.device)
        winner.scatter_reduce_(0, slot[keep], rows[keep], reduce="amax")
        filled = (winner >= 0).nonzero().squeeze(1)
        self.reservoir.view(c * self.per_class, u)[filled] = x[winner[filled]].to(self.reservoir.dtype)

    def samples(self) -> tuple[Tensor, Tensor]:
        """The reservoir as (acts (M, U), labels (M,)): min(seen, per_class) samples per class."""
        if self.seen is None:
            raise RuntimeError("the accumulator has seen no data: call update() first")
        if self.reservoir is None:
            raise RuntimeError("this accumulator keeps no samples (only streamed measures were asked for)")
        filled = torch.arange(self.per_class, device=self.seen.device).unsqueeze(0) < self.seen.unsqueeze(1)
        return self.reservoir[filled], filled.nonzero()[:, 0]

    @torch.no_grad()
    def compute(self) -> dict[str, Tensor]:
        """Every asked measure, name -> (U,) float64 on the CPU, plus ``preferred_class``."""
        if self.sums is None:
            raise RuntimeError("the accumulator has seen no data: call update() first")
        c = self.num_classes
        sums, counts = self.sums.sum(0), self.counts.sum(0)
        means = _means_from_sums(sums, counts)
        out: dict[str, Tensor] = {"preferred_class": means.nan_to_num(nan=float("-inf")).argmax(dim=0)}
        if "si" in self.measures:
            out["si"] = selectivity_index(means, self.eps)
        if "sparseness" in self.measures:
            out["sparseness"] = sparseness(means)
        if "dprime" in self.measures:
            out["dprime"] = dprime_from_halves(self.sums, self.sumsq, self.counts)
        if self.needs_samples:
            a, y = self.samples()
            runs = _sorted_runs(a)
            ranks = average_ranks(a, runs)
            sample_fns = {
                "precision": lambda: top_k_precision(a, y, c, self.top_k),
                "top_class": lambda: top_class_selectivity(a, y, c),
                "localist_gap": lambda: localist_gap(a, y, c),
                "auroc": lambda: class_auroc(a, y, c, ranks).nan_to_num(nan=float("-inf")).amax(dim=0),
                "informedness": lambda: max_informedness(a, y, c, runs),
                "mi": lambda: mutual_information(a, y, c, self.bins, ranks),
                "mi_shuffled": lambda: mutual_information(a, y[self._permutation(y.numel())], c, self.bins, ranks),
            }
            for name in self.measures:
                if name in sample_fns:
                    out[name] = sample_fns[name]()
        return {name: value.cpu() for name, value in out.items()}

    def to_frame(self, layer: str | None = None):
        """:meth:`compute` as a DataFrame: [layer,] unit, preferred_class, one column per measure."""
        return _frame(self.compute(), self.measures, layer)

    def _permutation(self, n: int) -> Tensor:
        gen = torch.Generator().manual_seed(self.seed)
        return torch.randperm(n, generator=gen).to(self.seen.device)


# ----------------------------------------------------------------------------- tables


def _frame(values: dict[str, Tensor], measures: tuple[str, ...], layer: str | None):
    import pandas as pd

    units = next(iter(values.values())).numel()
    columns = {"layer": layer} if layer is not None else {}
    columns |= {"unit": range(units), "preferred_class": values["preferred_class"].numpy()}
    columns |= {m: values[m].numpy() for m in measures}
    return pd.DataFrame(columns)


def unit_measures(acts, labels: Tensor, num_classes: int, measures="all", **options):
    """Every selectivity measure of every unit, as a pandas DataFrame.

    Args:
        acts (Tensor | dict[str, Tensor]): (N, U) activations, or layer name -> (N, U); a dict
            adds a ``layer`` column.
        labels (Tensor): (N,) int class labels in [0, num_classes).
        num_classes (int): C.
        measures: ``"all"`` (default) or a list of column names (see the module table).
        **options: ``per_class``, ``seed``, ``top_k``, ``bins``, ``eps`` of
            :class:`UnitMeasureAccumulator`. ``per_class`` defaults to the largest class
            size here (every sample is kept: the sample measures are exact); a smaller value
            makes them use the class-balanced reservoir.

    Returns:
        DataFrame: one row per unit: [layer,] unit, preferred_class, then one column per measure.

    Example::

        >>> acts = torch.tensor([[2.0, 1.0], [3.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
        >>> unit_measures(acts, torch.tensor([0, 0, 1, 1]), 2, measures=["si", "auroc"])
           unit  preferred_class   si  auroc
        0     0                0  1.0    1.0
        1     1                0  0.0    0.5
    """
    import pandas as pd

    layers = acts if isinstance(acts, dict) else {None: acts}
    if "per_class" not in options and labels.numel():  # all in memory already: keep every sample, exact
        options["per_class"] = max(1, int(torch.bincount(labels).max()))
    frames = []
    for name, layer_acts in layers.items():
        meter = UnitMeasureAccumulator(num_classes, measures, **options)
        meter.update(layer_acts, labels)
        frames.append(meter.to_frame(name))
    return pd.concat(frames, ignore_index=True)


def measure_agreement(frame):
    """Per layer, the Spearman rank correlation across units of every pair of measures.

    Args:
        frame (DataFrame): as :func:`unit_measures` returns (a missing ``layer`` column means
            one layer, named ``"all"``). ``mi_shuffled`` is a baseline, not a measure: left out.

    Returns:
        DataFrame: columns layer, measure_a, measure_b, spearman (one row per unordered pair;
        NaN where a measure is constant over the layer's units), layers in order of appearance.
    """
    import pandas as pd

    frame = frame if "layer" in frame.columns else frame.assign(layer="all")
    names = [m for m in ALL_MEASURES if m in frame.columns and m != "mi_shuffled"]
    rows = []
    for layer, group in frame.groupby("layer", sort=False):
        # Spearman = Pearson of the ranks; +-inf (d' of a noiseless detector) ranks as extreme.
        corr = group[names].rank().corr(method="pearson")
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                rows.append({"layer": layer, "measure_a": a, "measure_b": b, "spearman": corr.loc[a, b]})
    return pd.DataFrame(rows, columns=["layer", "measure_a", "measure_b", "spearman"])
