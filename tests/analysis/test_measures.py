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


@pytest.mark.parametrize("unit", [2, 3], ids=["flat", "dead"])
def test_unit_that_answers_every_class_alike_is_at_every_floor(unit):
    acts, y = known_units()
    row = selectivity.unit_measures(acts[:, unit : unit + 1], y, C).iloc[0]
    assert row.si == 0 and row.sparseness == 0 and row.dprime == 0
    assert row.precision == pytest.approx(1 / C) and row.top_class == 0 and row.localist_gap == 0
    assert row.auroc == 0.5 and row.informedness == 0 and row.mi == 0 and row.mi_shuffled == 0


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
    pref = np.argmax([a[y == k].mean() for k in range(c)])
    return a[y == pref].min() - a[y != pref].max()


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
    frame = selectivity.unit_measures(torch.from_numpy(a), torch.from_numpy(y), C, per_class=1000, top_k=12, bins=5)
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


# ----------------------------------------------------------------------------- streaming and reservoir


def test_streaming_equals_one_batch_even_past_the_reservoir():
    gen = torch.Generator().manual_seed(4)
    y = torch.randint(0, C, (600,), generator=gen)
    acts = torch.rand(600, 6, generator=gen)
    one = M.UnitMeasureAccumulator(C, per_class=40, seed=5)
    one.update(acts, y)
    streamed = M.UnitMeasureAccumulator(C, per_class=40, seed=5)
    for chunk in torch.split(torch.arange(600), [1, 99, 7, 250, 243]):
        streamed.update(acts[chunk], y[chunk])
    a, b = one.compute(), streamed.compute()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-12, atol=1e-12, msg=name)


def test_reservoir_is_class_balanced_bounded_and_seeded():
    y = torch.cat([torch.zeros(5000, dtype=torch.long), torch.ones(30, dtype=torch.long), torch.full((700,), 2)])
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(6))]
    acts = torch.arange(len(y), dtype=torch.float64).unsqueeze(1)  # each sample's own index
    meter = M.UnitMeasureAccumulator(C, per_class=100, seed=7)
    for chunk in torch.split(torch.arange(len(y)), 333):
        meter.update(acts[chunk], y[chunk])
    kept, labels = meter.samples()
    assert torch.bincount(labels, minlength=C).tolist() == [100, 30, 100, 0]
    rows = kept[:, 0].long()
    assert len(set(rows.tolist())) == len(rows) and bool((y[rows] == labels).all())  # real, distinct samples
    # Uniform over the stream: the kept items of class 0 sit on average mid-stream
    # (100 draws from 5000 positions: mean rank 2500, standard error ~144).
    position = torch.empty(len(y), dtype=torch.long)
    position[(y == 0).nonzero().squeeze(1)] = torch.arange(5000)
    assert abs(float(position[rows[labels == 0]].double().mean()) - 2500) < 4 * 144
    again = M.UnitMeasureAccumulator(C, per_class=100, seed=7)
    again.update(acts, y)
    other = M.UnitMeasureAccumulator(C, per_class=100, seed=8)
    other.update(acts, y)
    assert torch.equal(again.samples()[0], kept) and not torch.equal(other.samples()[0], kept)


# ----------------------------------------------------------------------------- tables and errors


def test_measure_agreement_is_spearman_per_layer():
    gen = torch.Generator().manual_seed(9)
    y = balanced_labels(30)
    acts = {"a": torch.rand(len(y), 12, generator=gen), "b": torch.rand(len(y), 8, generator=gen) ** 3}
    frame = selectivity.unit_measures(acts, y, C)
    agreement = selectivity.measure_agreement(frame)
    names = [m for m in M.ALL_MEASURES if m != "mi_shuffled"]
    assert list(agreement.columns) == ["layer", "measure_a", "measure_b", "spearman"]
    assert len(agreement) == 2 * len(names) * (len(names) - 1) // 2
    row = agreement[(agreement.layer == "b") & (agreement.measure_a == "si") & (agreement.measure_b == "auroc")]
    units = frame[frame.layer == "b"]
    assert row.spearman.item() == pytest.approx(stats.spearmanr(units.si, units.auroc).statistic)


def test_measures_can_be_chosen_and_bad_names_are_named():
    y = balanced_labels(5)
    frame = selectivity.unit_measures(torch.rand(len(y), 3), y, C, measures="si,auroc")
    assert list(frame.columns) == ["unit", "preferred_class", "si", "auroc"]
    with pytest.raises(ValueError, match="measures must be 'all' or a list"):
        selectivity.unit_measures(torch.rand(len(y), 3), y, C, measures=["si", "grandmother"])
    assert isinstance(frame, pd.DataFrame)
