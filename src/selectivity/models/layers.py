"""Pieces shared by the model families: input normalization and weight initialization.

Every model in the zoo takes images in [0, 1] pixel space and starts with a
:class:`Normalize` layer; nothing else in the project normalizes. The dataset
statistics below are the usual published per-channel means and standard
deviations of the training pixels (the std over all pixels of a channel, not the
mean of per-image stds):

- CIFAR-10 (50,000 training images): mean (0.4914, 0.4822, 0.4465),
  std (0.2470, 0.2435, 0.2616). A recount on the JPEG re-encoding in
  ``shared/data`` agrees to within 0.002.
- Tiny ImageNet (100,000 training images): mean (0.4802, 0.4481, 0.3975),
  std (0.2770, 0.2691, 0.2821). A recount on a 20,000-image subset agrees to
  within 0.0012. The ImageNet values (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225)
  are close and work as well; pass them as ``mean=`` / ``std=``.
"""

from collections.abc import Sequence

import torch
from torch import nn

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
TINY_IMAGENET_MEAN = (0.4802, 0.4481, 0.3975)
TINY_IMAGENET_STD = (0.2770, 0.2691, 0.2821)


class Normalize(nn.Module):
    r"""Per-channel standardization, :math:`y_c = (x_c - \mathrm{mean}_c) / \mathrm{std}_c`.

    Args:
        mean (sequence of float): one value per channel.
        std (sequence of float): one positive value per channel, as many as ``mean``.

    Shapes: input (N, C, H, W), output the same. ``mean`` and ``std`` are buffers of
    shape (1, C, 1, 1), saved in the ``state_dict`` so that weights carry the
    normalization they were trained with.

    Example::

        >>> norm = Normalize(mean=(0.5, 0.0), std=(0.5, 2.0))
        >>> norm(torch.ones(1, 2, 1, 1)).flatten().tolist()
        [1.0, 0.5]
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean_t.numel() != std_t.numel():
            raise ValueError(
                f"Normalize needs one mean and one std per channel, got {mean_t.numel()} "
                f"means {tuple(mean)} and {std_t.numel()} stds {tuple(std)}"
            )
        if not bool((std_t > 0).all()):
            raise ValueError(f"Normalize needs positive stds, got {tuple(std)}")
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
        self.register_buffer("std", std_t.view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        mean = tuple(round(v, 4) for v in self.mean.flatten().tolist())
        std = tuple(round(v, 4) for v in self.std.flatten().tolist())
        return f"mean={mean}, std={std}"


def init_weights(model: nn.Module) -> None:
    """He (fan-out) normal init for convolutions, weight 1 and bias 0 for batch norms.

    The "MSRA" initialization of He et al. 2015, used by the ResNet and VGG-BN
    recipes; linear layers keep PyTorch's default.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
