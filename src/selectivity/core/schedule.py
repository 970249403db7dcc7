"""Schedules for alpha: a multiplier in [0, 1] as a function of the step and the epoch.

A schedule is any callable ``schedule(step, epoch) -> float``; the regularizer uses
``alpha * schedule(step, epoch)``. ``epoch`` is fractional (epoch 2.5 = half-way through the
third epoch) when the regularizer knows the steps per epoch, and None when it does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Schedule", "LinearWarmup", "EpochWindow", "PerEpochAlpha", "constant", "first_active_epoch"]

Schedule = Callable[[int, "float | None"], float]


def _need_epoch(name: str) -> ValueError:
    return ValueError(
        f"the {name} schedule counts in epochs but the regularizer does not know the epoch: pass "
        "steps_per_epoch=len(train_loader), or call reg.set_epoch(epoch) each epoch, or schedule=None"
    )


def constant(step: int, epoch: float | None) -> float:
    """Full alpha from the first step."""
    return 1.0


@dataclass(frozen=True)
class LinearWarmup:
    """alpha rises linearly from 0 to its full value over the first ``epochs`` epochs.

    The papers' default (an open choice there): 5 epochs. ``epochs=0`` is no warm-up.
    """

    epochs: float = 5.0

    def __call__(self, step: int, epoch: float | None) -> float:
        if self.epochs <= 0:
            return 1.0
        if epoch is None:
            raise _need_epoch("linear warm-up")
        return min(1.0, max(0.0, epoch / self.epochs))


@dataclass(frozen=True)
class EpochWindow:
    """Full alpha inside the epoch range [start, end), none outside it.

    The follow-up paper (Ranadive et al. 2023) regularizes only in chosen epoch ranges, e.g.
    the first epochs, where class selectivity emerges. ``end=None`` means to the end.
    """

    start: float = 0.0
    end: float | None = None

    def __call__(self, step: int, epoch: float | None) -> float:
        if epoch is None:
            raise _need_epoch("epoch window")
        return 1.0 if epoch >= self.start and (self.end is None or epoch < self.end) else 0.0


@dataclass(frozen=True)
class PerEpochAlpha:
    """alpha epoch by epoch, in Ranadive et al.'s form: ``"0*5 -20*15"`` is 5 epochs at alpha 0,
    then 15 at alpha -20 (alpha < 0 discourages selectivity, alpha > 0 encourages it).

    Every part is VALUE*EPOCHS, or a bare VALUE for one epoch (``-2*``, a count left out, is an
    error). A training run checks that the schedule covers exactly its epochs (``train.epochs``);
    used alone, epochs past the end keep the last value. As a schedule it is a multiplier of the
    strongest value, ``strength`` (the alpha of largest magnitude), which the regularizer takes
    as its alpha.

    Example::

        >>> s = PerEpochAlpha.parse("0*2 -20*3")
        >>> s.strength, s.alphas, s(0, 1.5), s(0, 2.0), s(0, 9.0)
        (-20.0, (0.0, 0.0, -20.0, -20.0, -20.0), 0.0, 1.0, 1.0)
    """

    alphas: tuple[float, ...]

    @classmethod
    def parse(cls, text: str) -> "PerEpochAlpha":
        alphas: list[float] = []
        for part in str(text).split():
            value, star, count = part.partition("*")
            try:
                if star and not count:  # '-2*' names no count: not one epoch by default
                    raise ValueError
                value_f, count_i = float(value), int(count) if star else 1
            except ValueError:
                raise ValueError(f"alpha schedule {text!r}: {part!r} should read VALUE*EPOCHS, e.g. 0*5 -20*15") \
                    from None
            if count_i < 1 or value_f != value_f or abs(value_f) == float("inf"):
                raise ValueError(f"alpha schedule {text!r}: {part!r} needs a finite value and at least one epoch")
            alphas += [value_f] * count_i
        if not alphas:
            raise ValueError(f"alpha schedule {text!r} is empty; expected e.g. '0*5 -20*15'")
        return cls(tuple(alphas))

    @property
    def strength(self) -> float:
        return max(self.alphas, key=abs)

    @property
    def epochs(self) -> int:
        """The epochs the schedule spells out."""
        return len(self.alphas)

    def alpha_at(self, epoch: float) -> float:
        return self.alphas[min(int(epoch), len(self.alphas) - 1)]

    def __call__(self, step: int, epoch: float | None) -> float:
        if epoch is None:
            raise _need_epoch("per-epoch alpha")
        return self.alpha_at(epoch) / self.strength + 0.0 if self.strength else 0.0  # no -0.0


def first_active_epoch(schedule: Schedule, alpha: float, epochs: int) -> float | None:
    """The epoch from which the selectivity term acts (a warm-up counts as acting), or None if never.

    The condition Ranadive et al. vary: regularizing from the start against from a later epoch.
    """
    if alpha == 0:
        return None
    if isinstance(schedule, EpochWindow):
        return schedule.start if schedule.start < epochs else None
    if isinstance(schedule, PerEpochAlpha):
        return next((float(e) for e in range(epochs) if schedule.alpha_at(e) != 0), None)
    return 0.0
