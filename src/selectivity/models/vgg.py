"""VGG with batch norm (Simonyan & Zisserman 2015, "Very deep convolutional networks for
large-scale image recognition"; BN after each convolution as in Ioffe & Szegedy 2015).

``vgg16_bn`` is configuration D (13 convolutions) for 32x32 CIFAR, the VGG16 of
Leavitt & Morcos (ICLR 2021). The ImageNet head (two 4096-wide layers on a 7x7x512
map) is sized for 224 px; at 32 px the five max-pools leave a 1x1x512 map, so the
head here is the common CIFAR adaptation 512 -> 512 -> num_classes with ReLU and
dropout 0.5 (the original VGG's dropout rate) between.

Layers carry Caffe-style names: ``features.conv{stage}_{i}``, ``features.bn{stage}_{i}``,
``features.relu{stage}_{i}``, ``features.pool{stage}``; ``selectivity_layers`` lists the 13
post-convolution ReLUs ``features.relu1_1`` ... ``features.relu5_3``.
"""

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from .layers import CIFAR10_MEAN, CIFAR10_STD, Normalize, init_weights

# Channels of the 3x3 convolutions, stage by stage; each stage ends with a 2x2 max-pool.
VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class VGG(nn.Module):
    """Normalize, stages of (conv3x3-BN-ReLU) x k each ending in a 2x2 max-pool,
    global average pool, then linear-ReLU-dropout-linear.

    Args:
        stages (sequence of sequence of int): conv output channels per stage.
        num_classes (int): outputs of the final linear layer.
        hidden (int): width of the hidden linear layer.
        dropout (float): dropout probability before the final linear layer.
        mean, std (sequence of float): per-channel input statistics for :class:`Normalize`.
        input_size (tuple): (C, H, W) the model is meant for; metadata only. The global
            average pool is the identity at 32 px and lets other sizes through.

    Attributes:
        selectivity_layers (tuple of str): names of the post-convolution ReLUs, in order.
        input_size (tuple of int), num_classes (int).
    """

    def __init__(
        self,
        stages: Sequence[Sequence[int]],
        num_classes: int,
        *,
        hidden: int,
        dropout: float,
        mean: Sequence[float],
        std: Sequence[float],
        input_size: tuple[int, int, int],
    ) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        features: OrderedDict[str, nn.Module] = OrderedDict()
        channels = 3
        for s, widths in enumerate(stages, start=1):
            for i, width in enumerate(widths, start=1):
                features[f"conv{s}_{i}"] = nn.Conv2d(channels, width, 3, padding=1, bias=False)
                features[f"bn{s}_{i}"] = nn.BatchNorm2d(width)
                features[f"relu{s}_{i}"] = nn.ReLU()
                channels = width
            features[f"pool{s}"] = nn.MaxPool2d(2)
        self.features = nn.Sequential(features)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            OrderedDict(
                fc1=nn.Linear(channels, hidden),
                relu=nn.ReLU(),
                dropout=nn.Dropout(dropout),
                fc2=nn.Linear(hidden, num_classes),
            )
        )

        self.selectivity_layers = tuple(
            f"features.{name}" for name in features if name.startswith("relu")
        )
        self.input_size = input_size
        self.num_classes = num_classes
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.normalize(x))
        return self.classifier(torch.flatten(self.pool(x), 1))


def vgg16_bn(
    num_classes: int = 10,
    *,
    dropout: float = 0.5,
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
) -> VGG:
    """VGG16 with batch norm for 32x32 CIFAR (Simonyan & Zisserman 2015, configuration D).

    13 conv3x3-BN-ReLU layers (64, 64 | 128, 128 | 256 x 3 | 512 x 3 | 512 x 3, a 2x2
    max-pool after each group, 32 px -> 1 px), then 512 -> 512 -> num_classes with ReLU
    and dropout. Convolutions have no bias (BN follows). 14,986,698 parameters for
    10 classes. Thirteen selectivity layers: the post-convolution ReLUs.
    """
    return VGG(
        VGG16_STAGES,
        num_classes=num_classes,
        hidden=512,
        dropout=dropout,
        mean=mean,
        std=std,
        input_size=(3, 32, 32),
    )
