"""MonoScore and MonoLoss against the quadratic definition, written here from the paper's formula."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from selectivity.core.monoloss import MonoLossRegularizer
from selectivity.core.monoscore import MonoScoreSums, label_embeddings, monoscore


def monoscore_pairs(acts: np.ndarray, emb: np.ndarray) -> np.ndarray:
    """sum_{i<j} a_i a_j cos(e_i, e_j) / sum_{i<j} a_i a_j over explicit pairs; NaN if no pair weight."""
    out = np.full(acts.shape[1], np.nan)
    for u in range(acts.shape[1]):
        x = acts[:, u].astype(np.float64)
        if x.max() == x.min():
            continue
        a = (x - x.min()) / (x.max() - x.min())
        num = den = 0.0
        for i, j in itertools.combinations(range(len(a)), 2):
            cos = emb[i] @ emb[j] / (np.linalg.norm(emb[i]) * np.linalg.norm(emb[j]))
            num += a[i] * a[j] * cos
            den += a[i] * a[j]
        if den > 1e-8:
            out[u] = num / den
    return out


def test_the_linear_time_score_is_the_quadratic_definition_with_embeddings():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(40, 7))
    acts[:, 3] = np.maximum(acts[:, 3], 0)  # a ReLU-like unit
    emb = rng.normal(size=(40, 5))
    got = monoscore(torch.tensor(acts), embeddings=torch.tensor(emb)).numpy()
    np.testing.assert_allclose(got, monoscore_pairs(acts, emb), rtol=1e-6, atol=1e-9)
    # float32 input agrees to float32 precision
    got32 = monoscore(torch.tensor(acts, dtype=torch.float32), embeddings=torch.tensor(emb, dtype=torch.float32))
    np.testing.assert_allclose(got32.numpy(), monoscore_pairs(acts, emb), rtol=1e-4, atol=1e-5)


def test_label_embeddings_are_the_quadratic_definition_with_one_hot_rows():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 30)
    acts = np.maximum(rng.normal(size=(30, 6)), 0)
    onehot = np.eye(4)[labels]
    got = monoscore(torch.tensor(acts), labels=torch.tensor(labels), num_classes=4).numpy()
    np.testing.assert_allclose(got, monoscore_pairs(acts, onehot), rtol=1e-6, atol=1e-9)
    via_rows = monoscore(torch.tensor(acts), embeddings=label_embeddings(torch.tensor(labels), 4)).numpy()
    np.testing.assert_allclose(via_rows, got, rtol=1e-12)


def test_known_answers_with_label_embeddings():
    C, n = 5, 8  # balanced: n images of each of C classes
    labels = torch.arange(C).repeat_interleave(n)
    one_class = (labels == 2).double() * torch.rand(C * n, dtype=torch.float64).add(0.5)
    # Active (a = 1) on k images of every class, silent on the rest: weighted pairs are all equal,
    # so the score is the share of same-class pairs among the active images, (k - 1) / (C k - 1).
    k = 3
    everywhere = ((torch.arange(C * n) % n) < k).double()
    acts = torch.stack([one_class, everywhere], dim=1)
    score = monoscore(acts, labels=labels, num_classes=C)
    assert score[0].item() == pytest.approx(1.0, abs=1e-12)
    assert score[1].item() == pytest.approx((k - 1) / (C * k - 1), abs=1e-12)


def test_inactive_units_have_no_score():
    labels = torch.tensor([0, 1, 0, 1])
    acts = torch.tensor([[2.0, 0.0, 1.0], [2.0, 0.0, 0.0], [2.0, 3.0, 0.5], [2.0, 0.0, 0.0]])
    score = monoscore(acts, labels=labels, num_classes=2)
    assert torch.isnan(score[0]) and torch.isnan(score[1])  # constant; above its minimum on one image only
    assert score[2].item() == pytest.approx(1.0)  # two images of class 0 carry all the pair weight


def test_streamed_sums_equal_one_batch_in_any_split():
    rng = np.random.default_rng(2)
    acts = torch.tensor(rng.normal(size=(57, 9)) + 3.0)  # far from 0: the min shifts are exercised
    labels = torch.tensor(rng.integers(0, 3, 57))
    emb = torch.tensor(rng.normal(size=(57, 4)))
    whole_labels = monoscore(acts, labels=labels, num_classes=3)
    whole_emb = monoscore(acts, embeddings=emb)
    by_labels, by_emb = MonoScoreSums(9, num_classes=3), MonoScoreSums(9)
    for chunk in (slice(0, 5), slice(5, 31), slice(31, 57)):
        by_labels.update(acts[chunk], labels=labels[chunk])
        by_emb.update(acts[chunk], embeddings=emb[chunk])
    torch.testing.assert_close(by_labels.compute(), whole_labels, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(by_emb.compute(), whole_emb, rtol=1e-10, atol=1e-12)


def test_bad_inputs_say_what_is_wrong():
    acts = torch.rand(4, 2)
    with pytest.raises(ValueError, match="either labels"):
        monoscore(acts)
    with pytest.raises(ValueError, match="norm 0"):
        monoscore(acts, embeddings=torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        monoscore(acts, labels=torch.tensor([0, 1, 2, 0]), num_classes=2)
    with pytest.raises(ValueError, match="NaN"):
        monoscore(torch.full((4, 2), float("nan")), labels=torch.tensor([0, 1, 0, 1]), num_classes=2)


def _quadratic_torch(acts: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """The quadratic form in torch (pairwise matrix), for autograd: mean over active units."""
    lo, hi = acts.min(dim=0).values, acts.max(dim=0).values
    a = (acts - lo) / (hi - lo)
    unit = emb / emb.norm(dim=1, keepdim=True)
    cos = unit @ unit.T
    upper = torch.triu(torch.ones_like(cos), diagonal=1)
    pair = a.T[:, :, None] * a.T[:, None, :]  # (U, N, N)
    scores = (pair * cos * upper).sum(dim=(1, 2)) / (pair * upper).sum(dim=(1, 2))
    return scores.mean()


def test_the_loss_gradient_is_autograd_of_the_quadratic_form():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU())
    net.double()
    with torch.no_grad():
        net[0].bias += 0.5  # most inputs above 0, some below: ReLU zeros and all units active
    x = torch.randn(12, 6, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2] * 4)
    reg = MonoLossRegularizer(net, 0.3, num_classes=3, layers="1", schedule=None)
    acts = net(x)
    assert bool((acts.max(dim=0).values > acts.min(dim=0).values).all())  # every unit active here
    loss = reg.loss(labels)
    grads = torch.autograd.grad(loss, list(net.parameters()))
    reference = -0.3 * _quadratic_torch(net(x), label_embeddings(labels, 3))
    expected = torch.autograd.grad(reference, list(net.parameters()))
    assert loss.item() == pytest.approx(reference.item(), rel=1e-12)
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-12)
    reg.close()


def test_given_embeddings_reach_the_loss_and_layers_average():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3), nn.ReLU()).double()
    x = torch.rand(10, 4, dtype=torch.float64)
    emb = torch.randn(10, 8, dtype=torch.float64)
    reg = MonoLossRegularizer(net, -2.0, num_classes=3, layers=["1", "3"], embeddings="given", schedule=None)
    net(x)
    with pytest.raises(ValueError, match="needs the batch's embeddings"):
        reg.loss(torch.zeros(10, dtype=torch.long))
    net(x)
    loss = reg.loss(torch.zeros(10, dtype=torch.long), embeddings=emb)
    first = net[1](net[0](x))
    second = net[3](net[2](first))
    per_layer = [monoscore(a, embeddings=emb) for a in (first, second)]
    expected = 2.0 * torch.stack([s[~torch.isnan(s)].mean() for s in per_layer]).mean()  # -lambda, lambda = -2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    reg.close()


def test_the_meter_gives_each_units_monoscore_over_the_whole_data():
    from selectivity.core import SelectivityMeter

    rng = np.random.default_rng(3)
    acts = torch.tensor(np.maximum(rng.normal(size=(90, 6)), 0))
    acts[:, 5] = 0.0  # a dead unit: no score
    labels = torch.tensor(rng.integers(0, 4, 90))
    expected = monoscore(acts, labels=labels, num_classes=4)
    one, a, b = (SelectivityMeter(None, 4) for _ in range(3))
    for chunk in (slice(0, 7), slice(7, 50), slice(50, 90)):
        one.update_activations({"u": acts[chunk]}, labels[chunk])
    a.update_activations({"u": acts[:40]}, labels[:40])
    b.update_activations({"u": acts[40:]}, labels[40:])
    a.merge(b)  # two shards of one data set
    for meter in (one, a):
        result = meter.compute()
        torch.testing.assert_close(result.monoscore["u"], expected, rtol=1e-10, atol=1e-12, equal_nan=True)
        assert torch.isnan(result.monoscore["u"][5])
        assert result.mean_monoscore == pytest.approx(float(expected[:5].mean()), rel=1e-10)


@pytest.mark.parametrize("scale", [1e20, 1e-30, 3e38])
def test_rows_far_from_unit_norm_give_the_score_of_their_direction(scale):
    """One-hot rows scaled by 1e20 (finite in float32, but their squared norm overflows) or 1e-30 (it
    underflows to 0) are the same directions as the one-hot rows: the same MonoScore in float32, which
    for one-hot rows can never be negative, and the same MonoLoss term."""
    rng = np.random.default_rng(5)
    labels = torch.tensor(rng.integers(0, 4, 32))
    acts = torch.tensor(np.maximum(rng.normal(size=(32, 6)), 0), dtype=torch.float32)
    onehot = label_embeddings(labels, 4).float()
    scaled = onehot * scale
    assert torch.isfinite(scaled).all()
    expected = monoscore(acts, embeddings=onehot)
    got = monoscore(acts, embeddings=scaled)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
    assert (got[~torch.isnan(got)] >= 0).all()
    sums = MonoScoreSums(6)
    sums.update(acts, embeddings=scaled)
    torch.testing.assert_close(sums.compute().float(), expected, rtol=1e-5, atol=1e-6, equal_nan=True)
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU())
    x = torch.rand(32, 6)
    reg = MonoLossRegularizer(net, 1.0, num_classes=4, layers=["1"], embeddings="given", schedule=None)
    net(x)
    loss_scaled = reg.loss(labels, embeddings=scaled)
    net(x)
    loss_unit = reg.loss(labels, embeddings=onehot)
    assert torch.isfinite(loss_scaled) and loss_scaled.item() == pytest.approx(loss_unit.item(), rel=1e-5)
    reg.close()
