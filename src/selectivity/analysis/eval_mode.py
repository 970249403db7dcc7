"""A context manager that puts a model in eval mode and gives every module its own mode back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["eval_mode"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode; restore every module's own ``training`` flag on exit.

    Restoring per module (not ``model.train(was_training)``) keeps mixed modes intact, e.g. a
    frozen batch norm inside a model in training mode.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


# -- checks ---------------------------------------------------------------------------------
