"""Selectivity measures: known answers, slow numpy/scipy references, streaming and the reservoir."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

import selectivity
from selectivity.analysis import measures as M

C = 4


def balanced_labels(per_class, num_classes=C):
    return torch.arange(per_class * num_classes) % num_classes


# ----------------------------------------------------------------------------- known answers


def known_units(per_class=100):
    """Columns: a perfect detector of class 2, Gale's sparse unreliable unit, a flat unit, a dead unit."""
    y = balanced_labels(per_class)
    gen = torch.Generator().manual_seed(0)
    acts = torch.zeros(len(y), 4, dtype=torch.float64)
    noise = torch.rand(len(y), generator=gen, dtype=torch.float64)
    acts[:, 0] = torch.where(y == 2, 1.0 + noise, 0.05 * noise)  # every item of 2 above every other item
    fires = (y == 1).nonzero().squeeze(1)[: per_class // 20]  # 5% of class 1
    acts[fires, 1] = 5.0
    acts[:, 2] = 0.7  # answers every class alike
    return acts, y


def test_perfect_detector():
    acts, y = known_units()
    row = selectivity.unit_measures(acts, y, C, bins=4).iloc[0]  # bin edges fall on the class boundary
    assert row.preferred_class == 2
    assert row.localist_gap > 0
    assert row.top_class == 1.0 and row.auroc == 1.0 and row.informedness == 1.0 and row.precision == 1.0
    assert row.si > 0.95 and row.sparseness > 0.9 and row.dprime > 3
    # I(unit; class) = H(is class 2) = H(0.25) bits, over H(Y) = 2 bits; the correction is small.
    expected = stats.entropy([0.25, 0.75]) / np.log(4)
    assert row.mi == pytest.approx(expected, abs=0.01)


def test_sparse_unreliable_unit_reproduces_gales_disagreement():
    acts, y = known_units()
    row = selectivity.unit_measures(acts[:, 1:2], y, C, top_k=5).iloc[0]
    assert row.si == pytest.approx(1.0, abs=1e-6)  # SI and precision call it a perfect "class 1 unit"
    assert row.sparseness == pytest.approx(1.0, abs=1e-9)
    assert row.precision == 1.0
    assert row.informedness == pytest.approx(0.05, abs=1e-12)  # ... a detector that misses 95% of class 1
    assert row.top_class == pytest.approx(0.05)
    assert row.auroc == pytest.approx(0.525)
    assert row.localist_gap <= 0


def test_unit_that_answers_every_class_alike_is_at_every_floor():
    acts, y = known_units()
    row = selectivity.unit_measures(acts[:, 2:3], y, C).iloc[0]
    assert not row.dead
    assert row.si == 0 and row.sparseness == 0 and row.dprime == 0
    assert row.precision == pytest.approx(1 / C) and row.top_class == 0 and row.localist_gap == 0
    assert row.auroc == 0.5 and row.informedness == 0 and row.mi == 0 and row.mi_shuffled == 0


def test_dead_unit_has_no_preferred_class_and_nan_where_a_measure_is_undefined():
    """A unit with no response above 0 has no preferred class, no top-K, no run and no spread:
    NaN, not class 0, precision 1/C, gap 0 or d' 0. SI and sparseness keep the flat unit's 0
    (the meter's value), AUROC / informedness / MI the no-information values."""
    acts, y = known_units()  # unit 3: zero everywhere
    frame = selectivity.unit_measures(acts, y, C)
    assert frame.dead.tolist() == [False, False, False, True]
    dead = frame.iloc[3]
    assert pd.isna(dead.preferred_class) and frame.preferred_class.iloc[:3].tolist() == [2, 1, 0]
    for name in ("precision", "top_class", "localist_gap", "dprime"):
        assert np.isnan(dead[name]), name
        assert frame[name].iloc[:3].notna().all(), name
    # every other measure of a dead unit: the value of a unit that answers nothing
    assert dead.si == 0 and dead.sparseness == 0
    assert dead.auroc == 0.5 and dead.informedness == 0 and dead.mi == 0 and dead.mi_shuffled == 0


def test_mutual_information_of_shuffled_labels_is_near_zero():
    gen = torch.Generator().manual_seed(1)
    y = balanced_labels(200, 10)
    acts = torch.rand(len(y), 50, generator=gen, dtype=torch.float64) + y.unsqueeze(1) * 0.05  # informative
    frame = selectivity.unit_measures(acts, y, 10)
    assert frame.mi.mean() > 0.05
    assert abs(frame.mi_shuffled.mean()) < 0.005 and frame.mi_shuffled.abs().max() < 0.03
    # The correction removes the plug-in bias: labels unrelated to the unit give ~0 on average.
    unrelated = y[torch.randperm(len(y), generator=gen)]
    assert abs(M.mutual_information(acts, unrelated, 10).mean()) < 0.005


def test_dprime_chooses_the_preferred_class_on_another_half():
    """Pure noise: an argmax-class d' chosen and scored on the same samples is biased up; split-half is not."""
    gen = torch.Generator().manual_seed(2)
    y = balanced_labels(50, 10)
    acts = torch.rand(len(y), 400, generator=gen, dtype=torch.float64)
    split = M.UnitMeasureAccumulator(10, ["dprime"])
    split.update(acts, y)
    d_split = split.compute()["dprime"]
    assert abs(float(d_split.mean())) < 0.05  # standard error ~0.01
    same = M.dprime_from_halves(*[torch.stack([t, t]) for t in (
        torch.zeros(10, 400, dtype=torch.float64).index_add_(0, y, acts),
        torch.zeros(10, 400, dtype=torch.float64).index_add_(0, y, acts * acts),
        torch.bincount(y, minlength=10).double())])
    assert float(same.mean()) > 0.15  # the expected max of 10 class means: ~0.24 here


# ----------------------------------------------------------------------------- slow references


def ref_si(a, y, c):
    means = np.array([a[y == k].mean() for k in range(c)])
    top = means.max()
    rest = (means.sum() - top) / (c - 1)
    return (top - rest) / (top + rest + 1e-7)


def ref_sparseness(a, y, c):
    m = np.array([a[y == k].mean() for k in range(c)])
    ratio = m.mean() ** 2 / (m ** 2).mean()
    return (1 - ratio) / (1 - 1 / c)


def ref_precision(a, y, k):
    top = np.argsort(-a, kind="stable")[:k]
    return np.bincount(y[top]).max() / k


def ref_top_class(a, y):
    order = np.argsort(-a)
    top = y[order[0]]
    run = 0
    while run < len(a) and y[order[run]] == top:
        run += 1
    return run / (y == top).sum()


def ref_gap(a, y, c):
    """Bowers et al.'s gap over the unit's range (0 for a constant unit)."""
    pref = np.argmax([a[y == k].mean() for k in range(c)])
    span = a.max() - a.min()
    return (a[y == pref].min() - a[y != pref].max()) / span if span > 0 else 0.0


def ref_auroc(a, y, c):
    return max(stats.mannwhitneyu(a[y == k], a[y != k]).statistic / ((y == k).sum() * (y != k).sum())
               for k in range(c))


def ref_informedness(a, y, c):
    best = 0.0
    for k in range(c):
        for t in np.unique(a):
            best = max(best, (a[y == k] >= t).mean() - (a[y != k] >= t).mean())
    return best


def ref_mi(a, y, c, bins):
    n = len(a)
    b = np.minimum(np.floor((stats.rankdata(a) - 1) * bins / n).astype(int), bins - 1)
    joint = np.zeros((bins, c))
    for bi, yi in zip(b, y):
        joint[bi, yi] += 1

    def h(counts):
        p = counts[counts > 0] / n
        return -(p * np.log(p)).sum() + (len(p) - 1) / (2 * n)  # Miller-Madow

    hy_plugin = stats.entropy(np.bincount(y, minlength=c))
    return (h(joint.sum(1)) + h(joint.sum(0)) - h(joint.ravel())) / hy_plugin


def ref_dprime(a, y, c, half):
    pref = np.argmax([a[(y == k) & (half == 0)].mean() for k in range(c)])
    p, r = a[(y == pref) & (half == 1)], a[(y != pref) & (half == 1)]
    return (p.mean() - r.mean()) / np.sqrt((p.var() + r.var()) / 2)


@pytest.fixture(scope="module")
def random_data():
    rng = np.random.default_rng(3)
    y = rng.integers(0, C, size=90)
    a = rng.gamma(1.0, size=(90, 5)) + (y[:, None] == np.arange(5)[None, :] % C) * 0.8
    a[:, 4] = np.round(a[:, 4] * 2) / 2  # a unit with many ties
    return a, y


def test_every_measure_matches_a_slow_reference(random_data):
    a, y = random_data
    frame = selectivity.unit_measures(torch.from_numpy(a), torch.from_numpy(y), C, top_k=12, bins=5)
    half = M.split_halves(torch.arange(len(y))).numpy()
    for u in range(a.shape[1]):
        row, x = frame.iloc[u], a[:, u]
        assert row.si == pytest.approx(ref_si(x, y, C), rel=1e-9)
        assert row.sparseness == pytest.approx(ref_sparseness(x, y, C), rel=1e-9)
        assert row.auroc == pytest.approx(ref_auroc(x, y, C), rel=1e-12)
        assert row.informedness == pytest.approx(ref_informedness(x, y, C), abs=1e-12)
        assert row.mi == pytest.approx(ref_mi(x, y, C, 5), abs=1e-12)
        assert row.dprime == pytest.approx(ref_dprime(x, y, C, half), rel=1e-9)
        if u < 4:  # without ties, the tie-free textbook forms apply
            assert row.precision == pytest.approx(ref_precision(x, y, 12))
            assert row.top_class == pytest.approx(ref_top_class(x, y))
            assert row.localist_gap == pytest.approx(ref_gap(x, y, C))


def test_every_measure_is_free_of_the_units_scale(random_data):
    """Units are ranked against each other (the exemplar page, measure_agreement): a unit's
    responses times 100 or times 0.01 must score what they scored, or a unit that barely responds
    outranks a clear detector (the raw localist gap did: -0.01 beats -1)."""
    a, y = random_data
    t, labels = torch.from_numpy(a), torch.from_numpy(y)
    base = selectivity.unit_measures(t, labels, C, top_k=12, bins=5)
    for scale in (100.0, 0.01):
        scaled = selectivity.unit_measures(t * scale, labels, C, top_k=12, bins=5)
        for name in M.ALL_MEASURES:
            # rtol: SI's guard eps = 1e-7 in its denominator moves SI by ~1e-5 at responses ~0.01
            np.testing.assert_allclose(scaled[name].to_numpy(), base[name].to_numpy(), rtol=1e-4, atol=1e-12,
                                       err_msg=f"{name} at scale {scale}")


def test_most_selective_ranks_live_units_each_measure_its_own_way(monkeypatch):
    acts, y = known_units()  # a perfect detector, Gale's sparse unit, a flat unit, a dead unit
    small = acts[:, 0:1] * 1e-3  # the detector again, a thousand times weaker
    frame = selectivity.unit_measures(torch.cat([acts, small], 1), y, C, top_k=5)
    gap = M.most_selective(frame, "localist_gap")
    assert gap.unit.tolist()[:2] == [0, 4] and 3 not in gap.unit.tolist()  # detectors first, the dead unit out
    assert gap.localist_gap.iloc[1] == pytest.approx(gap.localist_gap.iloc[0], rel=1e-12) and gap.localist_gap.iloc[0] > 0
    assert M.most_selective(frame, "top_class", k=1).unit.tolist() == [0]
    assert all(spec.higher_is_more_selective and spec.description for spec in M.MEASURES.values())
    with pytest.raises(ValueError, match="baseline"):
        M.most_selective(frame, "mi_shuffled")
    # a measure that is more selective when lower (the entropy of the class means) ranks upward
    monkeypatch.setattr(M, "MEASURES", dict(M.MEASURES))

    def class_entropy(stats):
        p = stats.means.clamp(min=0) / stats.means.clamp(min=0).sum(0).clamp(min=1e-300)
        return -(p * p.clamp(min=1e-300).log()).sum(0)

    M.register_measure(M.Measure("class_entropy", class_entropy, higher_is_more_selective=False,
                                 description="Entropy of the class means."))
    frame = selectivity.unit_measures(acts[:, :3], y, C, measures=["si", "class_entropy"])
    assert M.most_selective(frame, "class_entropy").unit.tolist() == [1, 0, 2]
    assert M.most_selective(frame, "si").unit.tolist() == [1, 0, 2]


def test_average_ranks_match_scipy(random_data):
    a, _ = random_data
    np.testing.assert_allclose(M.average_ranks(torch.from_numpy(a)).numpy(), stats.rankdata(a, axis=0))


def test_informedness_with_many_classes_and_ties_matches_the_reference():
    rng = np.random.default_rng(10)
    y = rng.integers(0, 30, size=120)
    a = np.round(rng.gamma(1.0, size=(120, 3)) * 3) / 3 + (y[:, None] == 7) * 0.5  # many ties
    got = M.max_informedness(torch.from_numpy(a), torch.from_numpy(y), 30)
    np.testing.assert_allclose(got.numpy(), [ref_informedness(a[:, u], y, 30) for u in range(3)], atol=1e-12)


def test_si_is_the_core_implementation(random_data):
    a, y = (torch.from_numpy(v) for v in random_data)
    expected = selectivity.selectivity_index(selectivity.class_means(a, y, C))
    np.testing.assert_allclose(selectivity.unit_measures(a, y, C, measures=["si"]).si, expected.numpy())


# ----------------------------------------------------------------------------- streaming, exact


def ref_precision_ties(a, y, k, c):
    """Top-K share with ties: items tied with the K-th value share the places left by class."""
    kth = np.sort(a)[::-1][k - 1]
    above = np.bincount(y[a > kth], minlength=c).astype(float)
    tied = np.bincount(y[a == kth], minlength=c).astype(float)
    return ((above + tied * (k - above.sum()) / tied.sum()) / k).max()


def ref_top_class_ties(a, y, c):
    top = min(k for k in range(c) if (y == k).any() and a[y == k].max() == a.max())  # first class at the max
    others = a[y != top].max() if (y != top).any() else -np.inf
    return (a[y == top] > others).sum() / (y == top).sum()


def known_answer_layer(seed=0):
    """10 classes x 1000 images; unit 0 fires on exactly 100 images of class 0, zero elsewhere."""
    gen = torch.Generator().manual_seed(seed)
    y = (torch.arange(10_000) % 10)[torch.randperm(10_000, generator=gen)]
    acts = torch.rand(10_000, 3, generator=gen)
    acts[:, 0] = 0.0
    acts[(y == 0).nonzero().squeeze(1)[:100], 0] = 1.0
    return acts, y


def test_known_answer_unit_has_precision_one_streamed_and_in_one_batch():
    acts, y = known_answer_layer()
    acc = M.UnitMeasureAccumulator(10)  # the defaults of `selectivity measure`
    for chunk in torch.split(torch.arange(len(y)), 512):
        acc.update(acts[chunk], y[chunk])
    streamed = acc.to_frame()
    assert streamed.precision[0] == 1.0
    assert selectivity.unit_measures(acts, y, 10).precision[0] == 1.0
    assert streamed.top_class[0] == pytest.approx(0.1) and streamed.localist_gap[0] == 0.0


@pytest.mark.parametrize("order", ["shuffled", "by_class"])
def test_streamed_precision_top_class_and_gap_are_exact_over_all_data(order):
    """Far past any sample size, with ties at the K-th value and classes arriving one after another."""
    rng = np.random.default_rng(11)
    y = np.repeat(np.arange(5), [900, 700, 500, 300, 100])
    if order == "shuffled":
        y = rng.permutation(y)
    a = np.round(rng.gamma(1.0, size=(len(y), 6)) * 4) / 4  # many ties, also at the K-th value
    a[:, 1] = np.where(y == 3, 5 + rng.random(len(y)), rng.random(len(y)))  # a perfect detector of class 3
    a[:, 2] = np.where((y == 2) & (rng.random(len(y)) < 0.3), 9.0, 0.0)  # sparse, tied at the top
    a[:, 3] = 1.0  # flat
    acc = M.UnitMeasureAccumulator(5, ["precision", "top_class", "localist_gap"])
    for chunk in np.array_split(np.arange(len(y)), [1, 2, 300, 301, 1000, 1999]):
        acc.update(torch.from_numpy(a[chunk]), torch.from_numpy(y[chunk]))
    got = acc.compute()
    k = M.default_top_k(len(y), 5)
    assert k == 100
    for u in range(a.shape[1]):
        x = a[:, u]
        assert got["precision"][u].item() == pytest.approx(ref_precision_ties(x, y, k, 5), abs=1e-12), u
        assert got["top_class"][u].item() == pytest.approx(ref_top_class_ties(x, y, 5), abs=1e-12), u
        assert got["localist_gap"][u].item() == pytest.approx(ref_gap(x, y, 5), abs=1e-12), u
    assert got["top_class"][1].item() == 1.0 and got["localist_gap"][1].item() > 0


def test_default_keeps_every_sample_so_ranked_measures_are_exact_with_unequal_classes():
    rng = np.random.default_rng(12)
    y = rng.permutation(np.repeat(np.arange(C), [2000, 600, 150, 50]))
    a = rng.gamma(1.0, size=(len(y), 4)) + (y[:, None] == np.arange(4)[None, :]) * 0.7
    acc = M.UnitMeasureAccumulator(C, ["auroc", "informedness", "mi"], bins=6)
    for chunk in np.array_split(np.arange(len(y)), 7):
        acc.update(torch.from_numpy(a[chunk]), torch.from_numpy(y[chunk]))
    got = acc.compute()
    assert acc.exact and acc.kept == len(y)
    for u in range(4):
        assert got["auroc"][u].item() == pytest.approx(ref_auroc(a[:, u], y, C), rel=1e-12)
        assert got["informedness"][u].item() == pytest.approx(ref_informedness(a[:, u], y, C), abs=1e-12)
        assert got["mi"][u].item() == pytest.approx(ref_mi(a[:, u], y, C, 6), abs=1e-12)
    assert all(float(e.abs().max()) == 0 for e in acc.sampling_errors().values())  # exact: no sampling error


# ----------------------------------------------------------------------------- a sample, on request


def sampled(acts, y, seed, **options):
    acc = M.UnitMeasureAccumulator(int(y.max()) + 1, ["auroc", "informedness", "mi"], seed=seed, **options)
    for chunk in torch.split(torch.arange(len(y)), 256):
        acc.update(acts[chunk], y[chunk])
    return acc


@pytest.fixture(scope="module")
def unequal_layer():
    """Class 0 prefers the unit; class 1 (2000 images) answers almost as strongly, classes 2-4 (100 each) weakly.

    Over the data, class 0's AUROC is pulled down by class 1, which is most of "the rest";
    a class-balanced sample gives class 1 a quarter of the rest and a higher AUROC."""
    gen = torch.Generator().manual_seed(13)
    y = torch.cat([torch.full((n,), c) for c, n in enumerate([400, 2000, 100, 100, 100])])
    y = y[torch.randperm(len(y), generator=gen)]
    level = torch.tensor([2.0, 1.6, 0.2, 0.2, 0.2], dtype=torch.float64)
    acts = (level[y].unsqueeze(1) + 0.6 * torch.randn(len(y), 24, generator=gen, dtype=torch.float64)).clamp(min=0)
    return acts, y


def test_uniform_sample_estimates_the_measure_over_the_data_and_balanced_does_not(unequal_layer):
    acts, y = unequal_layer
    exact = selectivity.unit_measures(acts, y, 5, measures=["auroc"]).auroc.to_numpy()
    uniform = np.stack([sampled(acts, y, s, sample_size=500).compute()["auroc"].numpy() for s in range(20)])
    balanced = np.stack([sampled(acts, y, s, sample_size=500, balanced=True).compute()["auroc"].numpy()
                         for s in range(20)])
    # mean over 20 seeds x 24 units; the sampling SD of one draw is ~0.02, of the mean ~0.001
    assert abs(uniform.mean() - exact.mean()) < 0.004
    assert balanced.mean() - exact.mean() > 0.03


def test_sampling_error_matches_the_spread_over_sample_draws(unequal_layer):
    """The half-split standard error is calibrated: its root mean square over units and draws equals
    the standard deviation of (sampled - exact) over the same draws. It leaves out bias: AUROC has
    none, informedness and MI lean upward in a sample (documented in ``sampling_errors``)."""
    acts, y = unequal_layer
    exact = selectivity.unit_measures(acts, y, 5, measures=["auroc", "informedness", "mi"])
    errors = {m: [] for m in ("auroc", "informedness", "mi")}
    estimated = {m: [] for m in errors}
    for seed in range(40):
        acc = sampled(acts, y, seed, sample_size=400)
        got, se = acc.compute(), acc.sampling_errors()
        assert not acc.exact and acc.kept == 400
        for m in errors:
            errors[m].append(got[m].numpy() - exact[m].to_numpy())
            estimated[m].append(se[m].numpy())
    for m in errors:
        err, se = np.concatenate(errors[m]), np.concatenate(estimated[m])
        assert np.sqrt(np.mean(se ** 2)) == pytest.approx(err.std(), rel=0.15), m  # measured: within 4%
        if m == "auroc":
            assert abs(err.mean()) < 0.1 * err.std()
        else:
            assert 0.2 * err.std() < err.mean() < err.std(), m  # measured: +0.037 and +0.016


def test_streaming_equals_one_batch_even_past_the_sample():
    gen = torch.Generator().manual_seed(4)
    y = torch.randint(0, C, (600,), generator=gen)
    acts = torch.rand(600, 6, generator=gen)
    for options in ({"sample_size": 160}, {"sample_size": 160, "balanced": True}, {}):
        one = M.UnitMeasureAccumulator(C, seed=5, **options)
        one.update(acts, y)
        streamed = M.UnitMeasureAccumulator(C, seed=5, **options)
        for chunk in torch.split(torch.arange(600), [1, 99, 7, 250, 243]):
            streamed.update(acts[chunk], y[chunk])
        a, b = one.compute(), streamed.compute()
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=1e-12, atol=1e-12, equal_nan=True, msg=name)


def shuffled_index_layer():
    y = torch.cat([torch.zeros(5000, dtype=torch.long), torch.ones(30, dtype=torch.long), torch.full((700,), 2)])
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(6))]
    return torch.arange(len(y), dtype=torch.float64).unsqueeze(1), y  # each sample's own index


def fill(acts, y, **options):
    meter = M.UnitMeasureAccumulator(C, ["auroc"], **options)
    for chunk in torch.split(torch.arange(len(y)), 333):
        meter.update(acts[chunk], y[chunk])
    return meter


def test_balanced_sample_is_class_balanced_bounded_and_seeded():
    acts, y = shuffled_index_layer()
    meter = fill(acts, y, sample_size=400, balanced=True, seed=7)  # 100 per class
    kept, labels = meter.samples()
    assert torch.bincount(labels, minlength=C).tolist() == [100, 30, 100, 0]
    rows = kept[:, 0].long()
    assert len(set(rows.tolist())) == len(rows) and bool((y[rows] == labels).all())  # real, distinct samples
    # Uniform over the stream: the kept items of class 0 sit on average mid-stream
    # (100 draws from 5000 positions: mean rank 2500, standard error ~144).
    position = torch.empty(len(y), dtype=torch.long)
    position[(y == 0).nonzero().squeeze(1)] = torch.arange(5000)
    assert abs(float(position[rows[labels == 0]].double().mean()) - 2500) < 4 * 144
    again = fill(acts, y, sample_size=400, balanced=True, seed=7)
    other = fill(acts, y, sample_size=400, balanced=True, seed=8)
    assert torch.equal(again.samples()[0], kept) and not torch.equal(other.samples()[0], kept)


def test_uniform_sample_is_a_uniform_draw_from_the_stream():
    acts, y = shuffled_index_layer()
    counts, positions = [], []
    for seed in range(20):
        kept, labels = fill(acts, y, sample_size=570, seed=seed).samples()  # a tenth of 5730
        rows = kept[:, 0].long()
        assert len(rows) == 570 and len(set(rows.tolist())) == 570 and bool((y[rows] == labels).all())
        counts.append(torch.bincount(labels, minlength=C).double())
        positions.append(rows.double().mean())
    # classes in proportion to the data (5000 : 30 : 700), positions spread over the stream
    mean = torch.stack(counts).mean(0)
    assert mean[0].item() == pytest.approx(500, abs=8) and mean[2].item() == pytest.approx(70, abs=6)
    assert float(torch.stack(positions).mean()) == pytest.approx(2864.5, abs=4 * 1654 / np.sqrt(570 * 20))


def test_negative_activations_warn_once_naming_the_layer():
    y = balanced_labels(10)
    acts = torch.rand(len(y), 3) - 0.2
    with pytest.warns(RuntimeWarning, match="layer 'block2' has negative activations") as caught:
        selectivity.unit_measures({"block2": acts, "fine": acts.clamp(min=0)}, y, C)
    assert len([w for w in caught if "negative" in str(w.message)]) == 1
    acc = M.UnitMeasureAccumulator(C, ["si"], name="fc")
    with pytest.warns(RuntimeWarning, match="'fc'") as caught:
        acc.update(acts, y)
        acc.update(acts, y)
    assert len(caught) == 1


# ----------------------------------------------------------------------------- tables and errors


def test_measure_agreement_is_spearman_per_layer():
    gen = torch.Generator().manual_seed(9)
    y = balanced_labels(30)
    acts = {"a": torch.rand(len(y), 12, generator=gen), "b": torch.rand(len(y), 8, generator=gen) ** 3}
    frame = selectivity.unit_measures(acts, y, C)
    agreement = selectivity.measure_agreement(frame)
    names = [m for m in M.ALL_MEASURES if m != "mi_shuffled"]
    assert list(agreement.columns) == ["layer", "measure_a", "measure_b", "units", "spearman", "reason"]
    assert len(agreement) == 2 * len(names) * (len(names) - 1) // 2
    row = agreement[(agreement.layer == "b") & (agreement.measure_a == "si") & (agreement.measure_b == "auroc")]
    units = frame[frame.layer == "b"]
    assert row.spearman.item() == pytest.approx(stats.spearmanr(units.si, units.auroc).statistic)
    assert row.units.item() == 8 and row.reason.item() == ""


def test_measure_agreement_leaves_dead_units_out_and_says_why_a_correlation_is_nan():
    gen = torch.Generator().manual_seed(14)
    y = balanced_labels(40)
    acts = torch.rand(len(y), 9, generator=gen) + 0.3 * (y.unsqueeze(1) == torch.arange(9) % C)
    acts[:2] = 5.0  # the highest value, in classes 0 and 1: no unit has a leading run
    acts[:, 7:] = 0.0  # two dead units
    frame = selectivity.unit_measures({"conv": acts}, y, C, measures=["si", "precision", "top_class", "auroc"])
    assert (frame.top_class.iloc[:7] == 0).all()  # constant over the live units
    with pytest.warns(RuntimeWarning, match=r"constant over a layer's live units \(conv: top_class\)"):
        agreement = selectivity.measure_agreement(frame)
    flat = agreement[(agreement.measure_a == "top_class") | (agreement.measure_b == "top_class")]
    assert len(flat) == 3 and flat.spearman.isna().all()
    assert (flat.reason == "top_class is 0 for every live unit").all()
    row = agreement[(agreement.measure_a == "si") & (agreement.measure_b == "precision")]
    live = frame.iloc[:7]
    assert row.units.item() == 7 and row.reason.item() == ""
    assert row.spearman.item() == pytest.approx(stats.spearmanr(live.si, live.precision).statistic)
    # two live units are too few to rank
    few = selectivity.unit_measures(acts[:, 5:], y, C, measures=["si", "auroc"])
    agreement = selectivity.measure_agreement(few)
    assert agreement.units.tolist() == [2] and agreement.spearman.isna().all()
    assert agreement.reason.item() == "2 live units with both values: too few to rank"


def test_a_registered_measure_is_one_function_and_one_entry(monkeypatch):
    """What the registry promises a new measure: a column of unit_measures and of the streamed
    accumulator, NaN for dead units when it says so, and a place in measure_agreement."""
    monkeypatch.setattr(M, "MEASURES", dict(M.MEASURES))

    def top_share(stats):  # share of a unit's activation mass in its largest class, from the sums
        return stats.sums.amax(dim=0) / stats.sums.sum(dim=0)

    M.register_measure(M.Measure("top_share", top_share, undefined_when_dead=True))
    gen = torch.Generator().manual_seed(15)
    y = balanced_labels(20)
    acts = torch.rand(len(y), 5, generator=gen, dtype=torch.float64)
    acts[:, 4] = 0
    frame = selectivity.unit_measures(acts, y, C, measures=["si", "top_share"])
    assert list(frame.columns) == ["unit", "dead", "preferred_class", "si", "top_share"]
    for u in range(4):
        mass = np.array([acts[y == c, u].sum().item() for c in range(C)])
        assert frame.top_share[u] == pytest.approx(mass.max() / mass.sum(), rel=1e-12)
    assert np.isnan(frame.top_share[4])
    assert "top_share" in set(selectivity.measure_agreement(frame).measure_b)
    with pytest.raises(ValueError, match="exists already"):
        M.register_measure(M.Measure("si", top_share))
    with pytest.raises(ValueError, match="needs"):
        M.register_measure(M.Measure("other", top_share, frozenset({"everything"})))


def test_measures_can_be_chosen_and_bad_names_are_named():
    y = balanced_labels(5)
    frame = selectivity.unit_measures(torch.rand(len(y), 3), y, C, measures="si,auroc")
    assert list(frame.columns) == ["unit", "dead", "preferred_class", "si", "auroc"]
    with pytest.raises(ValueError, match="measures must be 'all' or a list"):
        selectivity.unit_measures(torch.rand(len(y), 3), y, C, measures=["si", "grandmother"])
    with pytest.raises(ValueError, match="sample_size must be an int >= 2"):
        M.UnitMeasureAccumulator(C, sample_size=1)
    assert isinstance(frame, pd.DataFrame)


# ----------------------------------------------------------------------------- MonoLoss's measures


def ref_monoscore_pairs(x, y):
    """sum_{i<j} a_i a_j [y_i = y_j] / sum_{i<j} a_i a_j over explicit pairs, a min-max scaled."""
    a = (x - x.min()) / (x.max() - x.min())
    same = (y[:, None] == y[None, :]).astype(float)
    weight = np.triu(np.outer(a, a), k=1)
    return (weight * same).sum() / weight.sum()


def ref_purity(x, y, weighted):
    active = x > 0
    per_class = np.bincount(y[active], weights=x[active] if weighted else None, minlength=C)
    return per_class.max() / per_class.sum()


def test_monoscore_and_purity_match_references_and_stream_exactly(random_data):
    a, y = random_data
    a = a - 0.4  # some responses at or below 0: purity counts only the activating ones
    ta, ty = torch.from_numpy(a), torch.from_numpy(y)
    with pytest.warns(RuntimeWarning, match="negative"):
        frame = selectivity.unit_measures(ta, ty, C, measures=["monoscore", "class_purity", "weighted_purity"])
    for u in range(a.shape[1]):
        row, x = frame.iloc[u], a[:, u]
        assert row.monoscore == pytest.approx(ref_monoscore_pairs(x, y), rel=1e-9)
        assert row.class_purity == pytest.approx(ref_purity(x, y, weighted=False), rel=1e-12)
        assert row.weighted_purity == pytest.approx(ref_purity(x, y, weighted=True), rel=1e-12)
    streamed = M.UnitMeasureAccumulator(C, measures=["monoscore", "class_purity", "weighted_purity"])
    for chunk in np.array_split(np.arange(len(y)), 7):
        with pytest.warns(RuntimeWarning) if chunk[0] == 0 else _nothing():
            streamed.update(ta[chunk], ty[chunk])
    for name, values in streamed.compute().items():
        if name in frame.columns:
            np.testing.assert_allclose(values.numpy(), frame[name].to_numpy(dtype=float), rtol=1e-10)


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def test_monoscore_is_the_meter_and_regularizer_formula():
    from selectivity.core.monoscore import monoscore

    gen = torch.Generator().manual_seed(3)
    y = balanced_labels(25)
    acts = torch.rand(len(y), 6, generator=gen, dtype=torch.float64) + 0.5 * (y.unsqueeze(1) == 1)
    acts[:, 5] = 0.0  # dead: MonoScore and purity undefined
    frame = selectivity.unit_measures(acts, y, C, measures=["monoscore", "class_purity"])
    expected = monoscore(acts, labels=y, num_classes=C)
    np.testing.assert_allclose(frame.monoscore.to_numpy(dtype=float)[:5], expected[:5].numpy(), rtol=1e-10)
    assert frame.monoscore.isna().iloc[5] and frame.class_purity.isna().iloc[5] and frame.dead.iloc[5]
