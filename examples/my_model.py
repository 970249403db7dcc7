"""A model of one's own, trained with the selectivity knob from the command line.

    selectivity train demo --set model.name=examples.my_model:small_cnn train.epochs=2

The factory takes ``num_classes`` (required) and any keyword arguments you pass with
``--set model.kwargs.width=32``. It need not take ``mean`` and ``std``: a factory that does
not gets images in [0, 1] and may normalize them itself (or not). ``selectivity_layers``
names the modules whose units the regularizer and the meter use (exact names or globs);
without it, every module whose class name ends in ``Block`` or ``Bottleneck`` is used.
"""

from torch import nn


def small_cnn(num_classes: int, width: int = 16) -> nn.Module:
    """Two conv-ReLU stages and a linear head; selectivity measured after each ReLU."""
    model = nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
    )
    model.selectivity_layers = ("2", "6")  # the two ReLUs, by module name
    return model
