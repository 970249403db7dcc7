"""SelectivityRegularizer: the one knob, alpha, on the class selectivity of a network."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .distributed import sum_across_ranks
from .functional import DEFAULT_EPS, NO_CONTRAST_WARNING, _check_inputs, _class_sums, _selectivity_from_sums
from .meter import NEGATIVE_WARNING
from .probe import LayerSpec, Probe
from .schedule import LinearWarmup, Schedule, constant

__all__ = ["SelectivityRegularizer"]


class SelectivityRegularizer:
    r"""The selectivity term of the loss, computed from each minibatch's activations.

    .. math:: L = \mathrm{CE} - \alpha \cdot \overline{SI}_{batch}

    where the network selectivity is the mean over layers of the mean SI over units, from
    the class means of this minibatch (classes absent from the batch take no part).
    **alpha < 0 discourages selectivity, alpha > 0 encourages it, alpha = 0 is plain
    training** (and costs nothing: no activation is captured).

    Args:
        model (nn.Module): the network being trained.
        alpha (float): the knob. Its sign convention is above.
        num_classes (int): C.
        layers: module names, glob patterns or modules; None for the model's default layers
            (residual block outputs). Default: None.
        schedule: multiplier of alpha as a function of (step, epoch); None for full alpha
            from the first step. Default: ``LinearWarmup(5)``, linear from 0 over 5 epochs.
        steps_per_epoch (int | None): lets the regularizer count epochs by itself; otherwise
            call :meth:`set_epoch`. Default: None.
        eps (float): SI's guard against 0/0. Default: 1e-7.
        check (bool): validate labels and activations each step (one host sync).
            Default: True.
        track (bool): also measure the batch selectivity (without gradient) while the
            scheduled alpha is 0, for logging; off, alpha = 0 captures nothing. Default: False.
        sync (str): under ``torch.distributed``, ``"global"`` sums the class sums and counts of
            every rank (a differentiable all-reduce) before SI is taken, so the term is the SI
            of the global batch and alpha means the same on any number of processes.
            ``"local"`` takes SI of each rank's own share of the batch: a different estimator
            (minibatch SI grows as the batch shrinks), cheaper by one all-reduce per step.
            Without a process group both are the same. Default: "global".
        tokens, positive_part: how a transformer's token layers become units (see
            :class:`~selectivity.core.probe.Probe`); None: the model's setting, else all
            tokens and each token's positive part. Default: None.

    Call :meth:`loss` once after each training forward pass, with that batch's labels.

    Example::

        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        >>> reg = SelectivityRegularizer(net, alpha=-1.0, num_classes=2, layers="1", schedule=None)
        >>> _ = net(torch.rand(6, 4))
        >>> reg.loss(torch.tensor([0, 1, 0, 1, 0, 1])).requires_grad
        True
    """

    def __init__(
        self,
        model: nn.Module,
        alpha: float,
        num_classes: int,
        layers: LayerSpec = None,
        *,
        schedule: Schedule | None = LinearWarmup(5.0),
        steps_per_epoch: int | None = None,
        eps: float = DEFAULT_EPS,
        check: bool = True,
        track: bool = False,
        sync: str = "global",
        tokens: str | None = None,
        positive_part: bool | None = None,
    ):
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        if steps_per_epoch is not None and steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be a positive int, got {steps_per_epoch!r}")
        if sync not in ("global", "local"):
            raise ValueError(f"sync must be 'global' or 'local', got {sync!r}")
        if not math.isfinite(float(alpha)):
            raise ValueError(f"alpha must be a finite number, got {alpha!r}")
        if not (eps > 0 and math.isfinite(eps)):
            raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
        self.alpha = float(alpha)
        self.sync = sync
        self.num_classes = num_classes
        self.schedule = schedule if schedule is not None else constant
        self.steps_per_epoch = steps_per_epoch
        self.eps = eps
        self.check = check
        self.track = track
        self.step = 0
        self._epoch: float | None = None
        self.probe = Probe(model, layers, detach=False, tokens=tokens, positive_part=positive_part)
        self.layers = self.probe.layers
        self.last_selectivity: Tensor | None = None
        self.last_per_layer: Tensor | None = None
        self._checked_sign = False
        self._refresh()

    @property
    def epoch(self) -> float | None:
        """Fractional epoch: counted from the steps when steps_per_epoch is known."""
        if self.steps_per_epoch:
            return self.step / self.steps_per_epoch
        return self._epoch

    @property
    def current_alpha(self) -> float:
        """alpha times the schedule's multiplier at this step."""
        if self.alpha == 0.0:
            return 0.0
        return self.alpha * float(self.schedule(self.step, self.epoch))

    def set_epoch(self, epoch: float) -> None:
        """Tell the schedule where training is (also restores it when resuming a run)."""
        self._epoch = float(epoch)
        if self.steps_per_epoch:
            self.step = round(self._epoch * self.steps_per_epoch)
        self._refresh()

    def _refresh(self) -> None:
        # Capture only when the term will be used: alpha = 0 costs no work at all.
        try:
            self.probe.enabled = self.track or self.current_alpha != 0.0
        except ValueError:
            # The schedule needs the epoch and nobody has said it yet: set_epoch() may still
            # come before training; loss() raises the schedule's error if it does not.
            self.probe.enabled = False

    def selectivity(self, labels: Tensor) -> Tensor:
        """Per-layer mean SI (L,) of the last forward pass; differentiable."""
        acts = self.probe.collect(batch_size=labels.shape[0])
        # All layers side by side: one scatter and one SI computation for the whole network.
        units = torch.cat(list(acts.values()), dim=1)
        labels = labels.to(units.device)
        if self.check:  # the host sync is paid here already; check=False (training) skips both
            if not _check_inputs(units, labels, self.num_classes):
                self.probe.warn_once("*", "no contrast", NO_CONTRAST_WARNING.format(
                    where=f"the batch of {labels.shape[0]} labels", n=int(labels.unique().numel())))
            self._warn_once_if_negative(acts)
        sums, counts = _class_sums(units, labels, self.num_classes)
        if self.sync == "global":  # one all-reduce of sums and counts side by side
            both = sum_across_ranks(torch.cat([sums, counts.unsqueeze(1)], dim=1))
            sums, counts = both[:, :-1], both[:, -1]
        si = _selectivity_from_sums(sums, counts, self.eps)
        sizes = [a.shape[1] for a in acts.values()]
        return torch.stack([part.mean() for part in si.split(sizes)])

    def _warn_once_if_negative(self, acts: dict[str, Tensor]) -> None:
        if self._checked_sign:
            return
        self._checked_sign = True
        negative = torch.stack([(a < 0).any() for a in acts.values()]).tolist()
        for name, is_negative in zip(acts, negative):
            if is_negative:
                self.probe.warn_once(name, "negative", NEGATIVE_WARNING.format(name=name))

    def loss(self, labels: Tensor) -> Tensor:
        """``-alpha * network selectivity`` of the last forward pass; then advance one step.

        alpha < 0 discourages selectivity, alpha > 0 encourages it. Returns a scalar
        zero (no graph) while the scheduled alpha is 0.
        """
        alpha = self.current_alpha
        if alpha == 0.0:
            if self.track:
                with torch.no_grad():
                    self.last_per_layer = self.selectivity(labels)
                    self.last_selectivity = self.last_per_layer.mean()
            self._advance()
            return torch.zeros((), device=labels.device)
        per_layer = self.selectivity(labels)
        network = per_layer.mean()
        self.last_per_layer = per_layer.detach()
        self.last_selectivity = network.detach()
        self._advance()
        return -alpha * network

    def _advance(self) -> None:
        self.probe.clear()
        self.step += 1
        self._refresh()

    def close(self) -> None:
        """Remove the hooks from the model."""
        self.probe.close()

    def __enter__(self) -> "SelectivityRegularizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
