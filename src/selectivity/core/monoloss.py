"""MonoLossRegularizer: the second knob, lambda, on the MonoScore of a network's units.

MonoLoss (Nasiri-Sarvi et al., 2026) rewards units whose strongly co-activating inputs are
semantically alike. It shares the machinery of :class:`SelectivityRegularizer` (probe,
schedule, steps, hooks) and replaces the per-layer score: SI becomes MonoScore.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .distributed import is_distributed, sum_across_ranks
from .monoscore import DEFAULT_MONO_EPS, _check, _scaled, _score_from_moments, _unit_embeddings
from .probe import LayerSpec
from .regularizer import SelectivityRegularizer
from .schedule import LinearWarmup, Schedule

__all__ = ["MonoLossRegularizer"]


def _global_extreme(local: Tensor, largest: bool) -> Tensor:
    """The min (or max) over all ranks, differentiable: the gradient goes to the rank(s) holding it."""
    if not is_distributed():
        return local
    target = local.detach().clone()
    op = torch.distributed.ReduceOp.MAX if largest else torch.distributed.ReduceOp.MIN
    torch.distributed.all_reduce(target, op=op)
    holds = (local.detach() == target).to(local.dtype)
    return sum_across_ranks(local * holds) / sum_across_ranks(holds).clamp(min=1)


class MonoLossRegularizer(SelectivityRegularizer):
    r"""The MonoLoss term of the loss, from each minibatch's activations.

    .. math:: L = \mathrm{CE} - \lambda \cdot \overline{\mathrm{MonoScore}}_{batch}

    where the network score is the mean over layers of the mean MonoScore over the layer's
    active units, each unit min-max scaled over the minibatch. **lambda > 0 rewards
    monosemantic units, lambda < 0 penalizes them, lambda = 0 is plain training** (the sign
    convention of alpha). MonoLoss's authors regularize the penultimate layer with lambda in
    {0.03, ..., 0.1}; here the layers are chosen as for SI (default: the model's own).

    Args:
        model (nn.Module): the network being trained.
        lam (float): lambda, the knob.
        num_classes (int): C (for label embeddings and label checks).
        layers: module names, glob patterns or modules; None for the model's default layers.
        embeddings (str): ``"labels"``: one-hot label embeddings from each batch's labels;
            ``"given"``: :meth:`loss` receives each batch's (N, D) embeddings. Default: "labels".
        schedule, steps_per_epoch, check, track, sync: as for :class:`SelectivityRegularizer`.
            Under ``torch.distributed`` with ``sync="global"`` the minimum, maximum and moments
            are those of the global batch (differentiably), so lambda means the same on any
            number of processes.
        eps (float): inactive-unit threshold. Default: 1e-8.
        tokens, positive_part: how a transformer's token layers (N, T, U) become units, as
            for SI (see :class:`~selectivity.core.probe.Probe`). Default: None (the model's).

    Example::

        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        >>> reg = MonoLossRegularizer(net, 0.1, num_classes=2, layers="1", schedule=None)
        >>> _ = net(torch.rand(6, 4))
        >>> reg.loss(torch.tensor([0, 1, 0, 1, 0, 1])).requires_grad
        True
    """

    score_name = "MonoScore"

    def __init__(
        self,
        model: nn.Module,
        lam: float,
        num_classes: int,
        layers: LayerSpec = None,
        *,
        embeddings: str = "labels",
        schedule: Schedule | None = LinearWarmup(5.0),
        steps_per_epoch: int | None = None,
        eps: float = DEFAULT_MONO_EPS,
        check: bool = True,
        track: bool = False,
        sync: str = "global",
        tokens: str | None = None,
        positive_part: bool | None = None,
    ):
        if embeddings not in ("labels", "given"):
            raise ValueError(f"embeddings must be 'labels' or 'given', got {embeddings!r}")
        super().__init__(model, lam, num_classes, layers, schedule=schedule, steps_per_epoch=steps_per_epoch,
                         eps=eps, check=check, track=track, sync=sync, tokens=tokens, positive_part=positive_part)
        self.embeddings = embeddings
        self._batch_embeddings: Tensor | None = None

    @property
    def lam(self) -> float:
        """lambda (stored as :attr:`alpha`, the name the shared schedule logic uses)."""
        return self.alpha

    def loss(self, labels: Tensor, embeddings: Tensor | None = None) -> Tensor:
        """``-lambda * network MonoScore`` of the last forward pass; then advance one step."""
        if (self.embeddings == "given") != (embeddings is not None):
            raise ValueError("this MonoLoss takes its embeddings from the labels; pass none" if embeddings is not None
                             else "this MonoLoss needs the batch's embeddings: loss(labels, embeddings)")
        self._batch_embeddings = embeddings
        try:
            return super().loss(labels)
        finally:
            self._batch_embeddings = None

    def selectivity(self, labels: Tensor) -> Tensor:
        """Per-layer mean MonoScore (L,) of the last forward pass over active units; differentiable.

        A layer with no active unit in the batch scores 0 (it has nothing to reward).
        """
        acts = self.probe.collect(batch_size=labels.shape[0])
        units = torch.cat(list(acts.values()), dim=1)
        labels = labels.to(units.device)
        emb = self._batch_embeddings
        if self.check:
            # No sign check: min-max scaling makes MonoScore defined for any real activations.
            _check(units, labels if emb is None else None, self.num_classes if emb is None else None, emb)
        dtype = torch.float64 if units.dtype == torch.float64 else torch.float32
        units = units.to(dtype)
        lo, hi = units.amin(dim=0), units.amax(dim=0)
        distributed = self.sync == "global" and is_distributed()
        if distributed:
            lo, hi = _global_extreme(lo, largest=False), _global_extreme(hi, largest=True)
        a = _scaled(units, lo, hi)
        if emb is None:
            w = torch.zeros(self.num_classes, a.shape[1], dtype=dtype, device=a.device).index_add(0, labels, a)
        else:
            w = _unit_embeddings(emb.to(device=a.device, dtype=dtype)).T @ a
        moments = [w, a.sum(dim=0), (a * a).sum(dim=0)]
        if distributed:  # one all-reduce of the three moments side by side
            both = sum_across_ranks(torch.cat([moments[0], moments[1][None], moments[2][None]]))
            moments = [both[:-2], both[-2], both[-1]]
        w, u, v = moments
        score = _score_from_moments((w * w).sum(dim=0), u, v, self.eps)
        active = ~torch.isnan(score)
        score = torch.where(active, score, torch.zeros_like(score))
        sizes = [t.shape[1] for t in acts.values()]
        per_layer = [s.sum() / k.sum().clamp(min=1) for s, k in zip(score.split(sizes), active.split(sizes))]
        return torch.stack(per_layer)
