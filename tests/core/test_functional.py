import numpy as np
import pytest
import torch

from selectivity import class_means, selectivity_index

from .reference import class_means_loop, selectivity_loop


def test_hand_computed_values():
    # unit 0 answers class 0 only; unit 1 the same for every class; unit 2 is dead;
    # unit 3: class means 3, 1, 1 -> (3 - 1) / (3 + 1) = 0.5
    acts = torch.tensor(
        [[6.0, 2.0, 0.0, 3.0], [2.0, 2.0, 0.0, 3.0], [0.0, 2.0, 0.0, 1.0], [0.0, 2.0, 0.0, 1.0], [0.0, 2.0, 0.0, 1.0]]
    )
    labels = torch.tensor([0, 0, 1, 2, 2])
    means = class_means(acts, labels, num_classes=3)
    assert means.tolist() == [[4.0, 2.0, 0.0, 3.0], [0.0, 2.0, 0.0, 1.0], [0.0, 2.0, 0.0, 1.0]]
    si = selectivity_index(means, eps=0.0 + 1e-7)
    assert si[0].item() == pytest.approx(1.0, abs=1e-6)
    assert si[1].item() == 0.0
    assert si[2].item() == 0.0
    assert si[3].item() == pytest.approx(0.5, abs=1e-6)


def test_matches_loop_reference_with_absent_classes():
    gen = torch.Generator().manual_seed(0)
    acts = torch.rand(300, 17, generator=gen) ** 3
    labels = torch.randint(0, 12, (300,), generator=gen)
    labels[labels == 5] = 4  # class 5 absent
    labels[labels == 11] = 0  # class 11 absent
    means = class_means(acts, labels, 12)
    ref_means = class_means_loop(acts.numpy(), labels.numpy(), 12)
    np.testing.assert_allclose(means.numpy(), ref_means, rtol=1e-5, equal_nan=True)
    assert torch.isnan(means[5]).all() and torch.isnan(means[11]).all()
    np.testing.assert_allclose(selectivity_index(means).numpy(), selectivity_loop(ref_means), rtol=1e-5, atol=1e-7)


def test_absent_classes_are_excluded_not_zero():
    # Only classes 0 and 1 present out of 10: SI is computed over those two alone.
    acts = torch.tensor([[3.0], [1.0]])
    si = selectivity_index(class_means(acts, torch.tensor([0, 1]), 10))
    assert si.item() == pytest.approx((3 - 1) / (3 + 1), rel=1e-6)


def test_fewer_than_two_present_classes_give_zero():
    with pytest.warns(RuntimeWarning, match="1 class"):  # said, not silent (tests/faults/test_library.py)
        si = selectivity_index(class_means(torch.tensor([[5.0, 1.0]]), torch.tensor([2]), 4))
    assert si.tolist() == [0.0, 0.0]


def test_low_precision_is_accumulated_in_float32():
    # 4096 ones summed in bfloat16 would stall at 256; accumulated in float32 the mean is 1.
    acts = torch.ones(4096, 3, dtype=torch.bfloat16)
    labels = torch.zeros(4096, dtype=torch.long)
    means = class_means(acts, labels, 2)
    assert means.dtype == torch.float32
    assert means[0].tolist() == [1.0, 1.0, 1.0]


def test_gradient_flows_to_activations():
    acts = torch.rand(20, 5, requires_grad=True)
    labels = torch.arange(20) % 4
    selectivity_index(class_means(acts, labels, 6)).sum().backward()
    assert torch.isfinite(acts.grad).all() and acts.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "acts, labels, match",
    [
        (torch.rand(4, 3), torch.tensor([0, 1, 2, 3]), r"labels must lie in \[0, 3\)"),
        (torch.rand(4, 3), torch.tensor([0, 1, -1, 2]), r"labels must lie in"),
        (torch.rand(4, 3), torch.tensor([0, 1, 2]), "different batch sizes: 4 activations, 3 labels"),
        (torch.tensor([[1.0], [float("nan")]]), torch.tensor([0, 1]), "NaN or infinite"),
        (torch.tensor([[1.0], [float("inf")]]), torch.tensor([0, 1]), "NaN or infinite"),
        (torch.rand(4, 3, 2), torch.tensor([0, 1, 2, 0]), r"shape \(N, U\)"),
        (torch.rand(4, 3), torch.tensor([0.0, 1.0, 2.0, 0.0]), "integer"),
    ],
)
def test_bad_input_is_refused(acts, labels, match):
    with pytest.raises(ValueError, match=match):
        class_means(acts, labels, 3)


def test_partly_nan_means_are_refused():
    means = torch.tensor([[1.0, float("nan")], [2.0, 3.0]])
    with pytest.raises(ValueError, match="partly NaN"):
        selectivity_index(means)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    acts = torch.rand(256, 33) ** 2
    labels = torch.randint(0, 10, (256,))
    cpu = selectivity_index(class_means(acts, labels, 10))
    gpu = selectivity_index(class_means(acts.cuda(), labels.cuda(), 10))
    torch.testing.assert_close(gpu.cpu(), cpu)
