"""Accuracy, loss and the selectivity of every unit of a model over a loader, in one pass."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core import SelectivityMeter
from ..core.distributed import sum_across_ranks
from .finite import check_finite_logits

__all__ = ["evaluate", "loss_logits"]


def loss_logits(logits: torch.Tensor) -> torch.Tensor:
    """Logits for the loss: bfloat16 (autocast) up to float32; float64 stays float64."""
    return logits if logits.dtype == torch.float64 else logits.float()


@torch.no_grad()
def evaluate(model, loader, num_classes: int, layers=None, amp: bool = False, check_finite: bool = True) -> dict:
    """Test accuracy, loss and the selectivity of every unit, in one pass (eval mode).

    ``loader`` yields (x, y) batches and has ``device``, ``dtype`` and ``labels`` (a
    :class:`~selectivity.data.DeviceLoader`). Under several processes each rank passes its shard
    and the sums are all-reduced: the numbers of one process over the whole split (every rank
    must call it). Logits that are not finite are an error naming the first non-finite layer
    (:class:`~selectivity.analysis.finite.NonFiniteOutputError`) when ``check_finite``; otherwise
    ``non_finite`` counts the images they hit (training marks such a run diverged).
    """
    was_training = model.training
    model.eval()
    correct = torch.zeros((), device=loader.device)
    loss = torch.zeros((), device=loader.device, dtype=loader.dtype)  # float64 in a float64 run
    broken = torch.zeros((), device=loader.device)  # images whose logits are not finite
    seen = 0
    with SelectivityMeter(model, num_classes, layers) as meter:
        for x, y in loader:
            with torch.autocast(loader.device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(x)
            if check_finite:  # before the meter sees the batch: name the layer where the output broke
                check_finite_logits(model, x, logits, f"test images {seen}-{seen + y.shape[0] - 1}")
            seen += y.shape[0]
            bad = (~torch.isfinite(logits).all(dim=1)).sum()
            broken += bad
            acts = meter.probe.collect(batch_size=y.shape[0])
            if check_finite or not bad:  # a broken batch of an unchecked evaluation is only counted
                meter.update_activations(acts, y)
            loss += F.cross_entropy(loss_logits(logits), y, reduction="sum")
            correct += (logits.argmax(dim=1) == y).sum()
        result = meter.compute()
    model.train(was_training)
    totals = sum_across_ranks(torch.stack([correct.float(), loss, loss.new_tensor(len(loader.labels)),
                                           broken.to(loss.dtype)]))
    correct, loss, n, broken = totals.tolist()
    return {"test_acc": correct / n, "test_loss": loss / n, "n_test": int(n), "selectivity": result,
            "non_finite": int(broken)}
