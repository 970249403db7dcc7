"""A small float64 network, its data, and the plain loop every integration must equal.

The plain loop is the README's "own training loop": ``loss = (CE + reg.loss(y)) / k``,
backward, and an SGD step every k batches, with the library's regularizer built directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 4
# Layers of TinyNet: two conv channels' ReLUs and the hidden linear ReLU.
LAYERS = ["features.1", "features.3", "head.2"]
LR, MOMENTUM = 0.1, 0.9


class TinyNet(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1),
                                      nn.ReLU(), nn.AdaptiveAvgPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


def tiny_net(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet().double()


def tiny_data(n: int = 48, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """n float64 images (3, 6, 6) whose mean brightness depends on the class, and their labels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % NUM_CLASSES
    y = y[torch.randperm(n, generator=g)]
    x = torch.rand(n, 3, 6, 6, generator=g, dtype=torch.float64) + 0.3 * y.view(-1, 1, 1, 1)
    return x, y


def batches(x, y, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(y), size)]


def plain_loop(model: nn.Module, data: list, epochs: int, make_reg=None, accumulate: int = 1,
               record: list | None = None) -> nn.Module:
    """SGD over ``data`` (a list of (x, y), or a function epoch -> that list) with
    ``make_reg(model, steps_per_epoch)``'s term.

    ``record`` gets (knob value, batch score) of every step.
    """
    epoch_data = data if callable(data) else (lambda epoch: data)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    reg = make_reg(model, len(epoch_data(0))) if make_reg else None
    for epoch in range(epochs):
        if reg is not None:
            reg.set_epoch(epoch)
        for i, (x, y) in enumerate(epoch_data(epoch)):
            knob = reg.current_alpha if reg is not None else 0.0
            loss = F.cross_entropy(model(x), y)
            if reg is not None:
                loss = loss + reg.loss(y)
            (loss / accumulate).backward()
            if record is not None:
                record.append((knob, None if reg is None or reg.last_selectivity is None
                               else float(reg.last_selectivity)))
            if (i + 1) % accumulate == 0:
                opt.step()
                opt.zero_grad()
    if reg is not None:
        reg.close()
    return model


def relative_difference(a: dict, b: dict) -> float:
    """The largest ||a - b|| / max(||a||, ||b||) over the tensors of two state dicts."""
    assert a.keys() == b.keys()
    worst = 0.0
    for k in a:
        x, y = a[k].double(), b[k].double()
        scale = max(x.norm(), y.norm())
        worst = max(worst, float((x - y).norm() / scale) if scale > 0 else 0.0)
    return worst
