"""Frozen encoders of one's own for the MonoLoss embedding tests, loaded as
``"tests.train.encoders:<name>"`` (built as every model factory: with ``num_classes=``)."""

from torch import nn


def tiny_encoder(num_classes, dim=6):
    """(N, 3, H, W) -> (N, dim): the mean colour of 4 x 4 regions, one linear map (no use of num_classes)."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(3 * 4 * 4, dim))


def feature_map_encoder(num_classes):
    """Returns (N, 2, H, W) feature maps, not (N, D) embeddings: refused."""
    return nn.Conv2d(3, 2, 3, padding=1)
