"""Residual networks (He et al. 2016, "Deep residual learning for image recognition").

Read top to bottom: shortcuts, the two residual blocks, the :class:`ResNet` body, then
the registered builders:

- ``resnet20``: the CIFAR ResNet-20 of He et al. 2016, section 4.2.
- ``resnet18``, ``resnet50``: the ImageNet ResNets with a 3x3 stride-1 stem and no
  max-pool, for 64x64 Tiny ImageNet, as Leavitt & Morcos (ICLR 2021) trained them.
- ``resnet_demo``: a three-block ResNet small enough to train on a laptop CPU.

Every block ends with its own ReLU module, so a block's output *is* its post-ReLU
output; the model lists those block names, in forward order, in
``selectivity_layers`` ("layer1.0", "layer1.1", ...). ReLUs are distinct modules and
not in-place, so a hook on any module sees that module's own output.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    TINY_IMAGENET_MEAN,
    TINY_IMAGENET_STD,
    Normalize,
    init_weights,
)

SHORTCUTS = ("A", "B")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class ShortcutA(nn.Module):
    """Option A of He et al. 2016: subsample by ``stride`` and append zero channels.

    Parameter-free; used by the CIFAR ResNets of the paper.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f"shortcut 'A' can only add channels, got {in_channels} -> {out_channels}"
            )
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


def make_shortcut(in_channels: int, out_channels: int, stride: int, kind: str) -> nn.Module:
    """The identity where shapes match; otherwise option "A" (zero-pad) or "B" (1x1 conv + BN)."""
    if kind not in SHORTCUTS:
        raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {kind!r}")
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if kind == "A":
        return ShortcutA(in_channels, out_channels, stride)
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU, conv3x3-BN, add the shortcut, ReLU (He et al. 2016, fig. 2 left).

    Output channels: ``width``. The stride is on the first convolution.
    """

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1, shortcut: str = "B") -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU()
        self.conv2 = conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.shortcut = make_shortcut(in_channels, width, stride, shortcut)
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """conv1x1-BN-ReLU, conv3x3-BN-ReLU, conv1x1-BN, add the shortcut, ReLU (fig. 5 right).

    Output channels: ``4 * width``. The stride is on the 3x3 convolution, as in
    torchvision's ResNet ("v1.5").
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, shortcut: str = "B") -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU()
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU()
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = make_shortcut(in_channels, out_channels, stride, shortcut)
        self.relu3 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + self.shortcut(x))


class ResNet(nn.Module):
    """Normalize, 3x3 stem conv-BN-ReLU, stages of residual blocks, global average pool, fc.

    Stage ``i`` (module ``layer{i}``) holds ``layers[i-1]`` blocks of base width
    ``widths[i-1]``; its first block has stride ``strides[i-1]``.

    Args:
        block (type): :class:`BasicBlock` or :class:`Bottleneck`.
        layers (sequence of int): blocks per stage.
        widths (sequence of int): base width per stage (block output: width * block.expansion).
        strides (sequence of int): stride of the first block of each stage.
        num_classes (int): outputs of the final linear layer.
        stem_width (int): channels of the stem convolution.
        stem_stride (int): stride of the stem convolution.
        shortcut (str): "A" (zero-pad, parameter-free) or "B" (1x1 conv + BN) where a
            block changes shape.
        mean, std (sequence of float): per-channel input statistics for :class:`Normalize`.
        input_size (tuple): (C, H, W) the model is meant for; metadata only, the network
            accepts any size.

    Attributes:
        selectivity_layers (tuple of str): names of the residual blocks, in forward order.
        input_size (tuple of int), num_classes (int).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        widths: Sequence[int],
        num_classes: int,
        *,
        strides: Sequence[int],
        stem_width: int,
        stem_stride: int,
        shortcut: str,
        mean: Sequence[float],
        std: Sequence[float],
        input_size: tuple[int, int, int],
    ) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.conv1 = conv3x3(3, stem_width, stem_stride)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU()
        channels = stem_width
        blocks = []
        stages = zip(layers, widths, strides, strict=True)
        for stage, (depth, width, stride) in enumerate(stages, start=1):
            stage_blocks = []
            for i in range(depth):
                stage_blocks.append(block(channels, width, stride if i == 0 else 1, shortcut))
                channels = width * block.expansion
            self.add_module(f"layer{stage}", nn.Sequential(*stage_blocks))
            blocks += [f"layer{stage}.{i}" for i in range(depth)]
        self.stage_names = tuple(f"layer{stage}" for stage in range(1, len(layers) + 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

        self.selectivity_layers = tuple(blocks)
        self.input_size = input_size
        self.num_classes = num_classes
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(self.normalize(x))))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.pool(x), 1))


def resnet20(
    num_classes: int = 10,
    *,
    shortcut: str = "A",
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
) -> ResNet:
    """ResNet-20 for 32x32 CIFAR (He et al. 2016, section 4.2).

    3x3 stem with 16 channels, three stages of three BasicBlocks (widths 16/32/64,
    32x32 -> 16x16 -> 8x8), global average pool, fc. Shortcut option "A" as in the
    paper (0.27M parameters; 269,722 for 10 classes); option "B" adds two 1x1
    projections (272,474). Nine selectivity layers: ``layer{1,2,3}.{0,1,2}``.
    """
    return ResNet(
        BasicBlock,
        layers=(3, 3, 3),
        widths=(16, 32, 64),
        strides=(1, 2, 2),
        stem_width=16,
        stem_stride=1,
        shortcut=shortcut,
        num_classes=num_classes,
        mean=mean,
        std=std,
        input_size=(3, 32, 32),
    )


def resnet18(
    num_classes: int = 200,
    *,
    mean: Sequence[float] = TINY_IMAGENET_MEAN,
    std: Sequence[float] = TINY_IMAGENET_STD,
) -> ResNet:
    """ResNet-18 for 64x64 Tiny ImageNet (He et al. 2016; Leavitt & Morcos 2021).

    The ImageNet ResNet-18 (BasicBlocks [2, 2, 2, 2], widths 64/128/256/512, option "B"
    shortcuts) with a 3x3 stride-1 stem and no max-pool, so the stages run at
    64/32/16/8 px. 11,271,432 parameters for 200 classes. Eight selectivity layers.
    """
    return ResNet(
        BasicBlock,
        layers=(2, 2, 2, 2),
        widths=(64, 128, 256, 512),
        strides=(1, 2, 2, 2),
        stem_width=64,
        stem_stride=1,
        shortcut="B",
        num_classes=num_classes,
        mean=mean,
        std=std,
        input_size=(3, 64, 64),
    )


def resnet50(
    num_classes: int = 200,
    *,
    mean: Sequence[float] = TINY_IMAGENET_MEAN,
    std: Sequence[float] = TINY_IMAGENET_STD,
) -> ResNet:
    """ResNet-50 for 64x64 Tiny ImageNet (He et al. 2016; Leavitt & Morcos 2021).

    The ImageNet ResNet-50 (Bottlenecks [3, 4, 6, 3], widths 64/128/256/512, expansion 4,
    option "B" shortcuts, stride on the 3x3 conv) with a 3x3 stride-1 stem and no
    max-pool. 23,910,152 parameters for 200 classes. Sixteen selectivity layers.
    """
    return ResNet(
        Bottleneck,
        layers=(3, 4, 6, 3),
        widths=(64, 128, 256, 512),
        strides=(1, 2, 2, 2),
        stem_width=64,
        stem_stride=1,
        shortcut="B",
        num_classes=num_classes,
        mean=mean,
        std=std,
        input_size=(3, 64, 64),
    )


def resnet_demo(
    num_classes: int = 10,
    *,
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
) -> ResNet:
    """A small ResNet for CPU demos on 32x32 CIFAR images (not from a paper).

    3x3 stride-2 stem with 16 channels (32x32 -> 16x16), then three stages of one
    BasicBlock each (widths 16/32/64 at 16x16, 8x8 and 4x4, option "A" shortcuts),
    global average pool, fc; 75,290 parameters for 10 classes. Starting at 16x16 keeps
    every activation small: a training step at batch 128 takes about 25 ms on two CPU
    cores, against about 130 ms for the same blocks at ResNet-20's resolutions
    (32/16/8), and reaches the same test accuracy after 5 epochs on 5,000 CIFAR-10
    images (about 48%; 56% after 10 epochs). Three selectivity layers: ``layer{1,2,3}.0``.
    """
    return ResNet(
        BasicBlock,
        layers=(1, 1, 1),
        widths=(16, 32, 64),
        strides=(1, 2, 2),
        stem_width=16,
        stem_stride=2,
        shortcut="A",
        num_classes=num_classes,
        mean=mean,
        std=std,
        input_size=(3, 32, 32),
    )
