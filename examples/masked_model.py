"""A model that masks its gradients on purpose, and the same model without the mask.

    selectivity train demo --set model.name=examples.masked_model:quantized_cnn
    selectivity train demo --set model.name=examples.masked_model:quantized_cnn model.kwargs.quantize=false

``quantized_cnn`` rounds its input to ``levels`` grey levels per channel before the first
convolution. Rounding is flat almost everywhere, so the gradient of the loss with respect to
the input is exactly zero: FGSM, PGD and APGD get no direction and leave the image where they
found it (PGD's random start aside), and the model looks robust to them. A black-box attack
(Square) reads only the outputs and still finds perturbations that cross a rounding step.
``selectivity robustness RUN --attacks fgsm,pgd,apgd-ce,square`` flags it; with
``quantize=false`` the same network, trained the same way, is not flagged.
"""

import torch
from torch import nn


class Quantize(nn.Module):
    """x -> round(x (levels - 1)) / (levels - 1): a staircase with a zero gradient everywhere."""

    def __init__(self, levels: int):
        super().__init__()
        if levels < 2:
            raise ValueError(f"levels must be 2 or more, got {levels}")
        self.levels = levels

    def forward(self, x):
        return torch.round(x * (self.levels - 1)) / (self.levels - 1)


def quantized_cnn(num_classes: int, levels: int = 4, quantize: bool = True, width: int = 16) -> nn.Module:
    """Input rounding (or none), then two conv-ReLU stages and a linear head."""
    model = nn.Sequential(
        Quantize(levels) if quantize else nn.Identity(),
        nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
    )
    model.selectivity_layers = ("3", "7")  # the two ReLUs, by module name
    return model
