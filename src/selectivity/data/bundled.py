"""The bundled demo set: a small, balanced CIFAR-10 subset that ships with the package.

``selectivity/data/demo/cifar10-demo.zip`` is an ImageFolder zip (``train/<class>/*.jpg``,
``test/<class>/*.jpg``) with 500 training and 100 test images per class (5,000 + 1,000),
32x32 RGB. It is built by ``tools/make_demo_data.py`` from ``../shared/data/cifar10-jpeg.zip``
with a seeded choice per class; the JPEG bytes and file names are copied unchanged.

Provenance: CIFAR-10 (Krizhevsky, "Learning Multiple Layers of Features from Tiny Images",
2009), in a public re-encoding of the original pixels as JPEG at quality 75. It is not
bit-identical to the official ``cifar-10-python.tar.gz``, and a model trained on 5,000
images reaches far below published CIFAR-10 accuracy: the set is for examples, smoke
tests and tutorials, not for numbers.

Use it as ``load_split("demo", "train")``.
"""

from __future__ import annotations

from pathlib import Path

DEMO_ZIP_NAME = "cifar10-demo.zip"


def demo_path() -> Path:
    """Path of the bundled demo zip (it may be missing in a source checkout that never built it)."""
    return Path(__file__).with_name("demo") / DEMO_ZIP_NAME
