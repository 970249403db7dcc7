"""A model of one's own for `selectivity measure --model measure_factories:tiny_conv` in the tests."""

import torch
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


class MarkerNet(nn.Module):
    """A known answer: unit 0 of ``detect`` answers only images with a white patch (R + G + B > 2.5
    in [0, 1] images; the coloured test images stay below 1.5), unit 1 never answers (dead),
    unit 2 is the blue channel (live, prefers blue)."""

    selectivity_layers = ("detect",)

    def __init__(self, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.detect = nn.ReLU()
        self.fc = nn.Linear(3, num_classes)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0] = 1.0
            self.conv.weight[2, 2] = 1.0
            self.conv.bias.copy_(torch.tensor([-2.5, -1.0, 0.0]))

    def forward(self, x):
        return self.fc(self.detect(self.conv(x)).mean(dim=(2, 3)))


def marker_net(num_classes):
    return MarkerNet(num_classes)
