"""A model of one's own for `selectivity measure --model measure_factories:tiny_conv` in the tests."""

from torch import nn


class TinyConv(nn.Module):
    """Two 3x3 conv + ReLU layers, global average pool, a linear classifier; any input size."""

    selectivity_layers = ("features.1", "features.3")

    def __init__(self, num_classes, width=6):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU()
        )
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def tiny_conv(num_classes, width=6):
    return TinyConv(num_classes, width)
