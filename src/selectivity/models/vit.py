"""A small vision transformer (Dosovitskiy et al. 2021) for the CPU demo, in timm's module names.

The image is cut into square patches, each linearly embedded; a learned class token and
learned position embeddings join them, and pre-norm transformer blocks follow:
``x = x + attn(norm1(x)); x = x + mlp(norm2(x))`` with ``mlp = fc2(act(fc1(.)))``, GELU
activation. The class token's final state, layer-normed, feeds the linear head.

The module names are timm's (``patch_embed.proj``, ``blocks.3.attn.qkv``,
``blocks.3.mlp.act``, ``norm``, ``head``), so globs written for a timm ViT work here. The
selectivity layers are the MLP activations, whose output is (N, tokens, hidden): the
probe reduces each hidden neuron over tokens (positive part, then the mean over all tokens
by default; see :mod:`selectivity.core.probe`). Attention is written out (no fused kernel),
so the model runs under ``torch.func.vmap`` and trains stacked.

=========  =====  =====  =====  =====  ===========  ==========================
name       patch  width  depth  heads  mlp hidden   selectivity layers
=========  =====  =====  =====  =====  ===========  ==========================
vit_demo   4      64     4      4      128          4 MLP activations, 65 tokens
=========  =====  =====  =====  =====  ===========  ==========================
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .layers import CIFAR10_MEAN, CIFAR10_STD, Normalize

__all__ = ["VisionTransformer", "vit_demo"]


class PatchEmbed(nn.Module):
    """(N, C, H, W) -> (N, patches, dim): a convolution with kernel = stride = patch size."""

    def __init__(self, image_size: int, patch_size: int, dim: int, channels: int = 3) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.num_patches = (image_size // patch_size) ** 2
        self.proj = nn.Conv2d(channels, dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention, softmax(q k^T / sqrt(d)) v, written out."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not a multiple of heads {heads}")
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        weights = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(n, t, d))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2; the hidden neurons after ``act`` are the selectivity units."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """A pre-norm transformer block: attention and MLP, each in a residual branch."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT with a class token, learned position embeddings and pre-norm blocks.

    Args:
        num_classes (int): outputs of the head.
        image_size (int): side of the square input. patch_size (int): side of a patch.
        dim (int): token width. depth (int): blocks. heads (int): attention heads.
        mlp_ratio (float): the MLP's hidden width over ``dim``.
        mean, std (sequence of float): the input normalization (first module).

    Attributes:
        selectivity_layers (tuple of str): the MLP activations, ``blocks.<i>.mlp.act``.
        selectivity_token_layers (tuple of str): every module whose output is (N, tokens, width).
        num_prefix_tokens (int): 1, the class token, first in the sequence.
        input_size (tuple of int), num_classes (int).
    """

    num_prefix_tokens = 1

    def __init__(
        self,
        num_classes: int,
        image_size: int,
        patch_size: int,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.patch_embed = PatchEmbed(image_size, patch_size, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, dim))
        hidden = int(dim * mlp_ratio)
        self.blocks = nn.Sequential(*(Block(dim, heads, hidden) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.selectivity_layers = tuple(f"blocks.{i}.mlp.act" for i in range(depth))
        self.selectivity_token_layers = ("patch_embed", "blocks", "blocks.**", "norm")
        self.input_size = (3, image_size, image_size)
        self.num_classes = num_classes
        self._init_weights()

    def _init_weights(self) -> None:
        # timm's ViT init: truncated normal (std 0.02) for linear weights and position embeddings.
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(self.normalize(x))
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def vit_demo(
    num_classes: int = 10,
    *,
    image_size: int = 32,
    patch_size: int = 4,
    dim: int = 64,
    depth: int = 4,
    heads: int = 4,
    mlp_ratio: float = 2.0,
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
) -> VisionTransformer:
    """A four-block ViT for 32 px images that trains on the CPU in minutes (no paper).

    Patches of 4 x 4 give 64 patch tokens and a class token; 4 blocks of width 64 with 128
    hidden MLP neurons each (512 units in all); 0.14M parameters for 10 classes.
    """
    return VisionTransformer(num_classes, image_size, patch_size, dim, depth, heads, mlp_ratio, mean, std)
