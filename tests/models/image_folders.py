"""Small labelled image folders for measuring models by name, and an independent reader of them."""

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

COLORS = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]


def write_images(root: Path, size: int, per_class: int = 3) -> Path:
    """Three classes of noisy coloured squares, already ``size`` x ``size`` (no resize in measure)."""
    rng = np.random.default_rng(0)
    for c, color in enumerate(COLORS):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(color) + rng.integers(-60, 60, (size, size, 3)), 0, 255).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG")
            (folder / f"{i}.png").write_bytes(buffer.getvalue())
    return root


def read_images(root: Path) -> tuple[torch.Tensor, np.ndarray]:
    """The images in [0, 1] and their labels, read with PIL alone (not the tool's loader)."""
    pictures, labels = [], []
    for c in range(len(COLORS)):
        for path in sorted((root / f"class{c}").glob("*.png")):
            pictures.append(np.asarray(Image.open(path).convert("RGB")))
            labels.append(c)
    x = torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).float() / 255
    return x, np.array(labels)
