"""Suite-wide settings: one torch thread per test process.

On a 2-core machine, torch's thread pool costs more than it gains on the small tensors of
the tests, and several tests start training subprocesses of their own.
"""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One decoded cache of the bundled demo set for the whole test session."""
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def tiny_overrides(cache_dir):
    """The demo recipe cut down to seconds: 30 train images per class, 200 test images."""
    return [
        f"data.cache_dir={cache_dir}",
        "data.train_per_class=30",
        "data.test_limit=200",
        "train.epochs=3",
        "train.batch_size=50",
        "train.threads=1",
        "regularizer.warmup_epochs=0",
    ]


def _zoo_installed() -> bool:
    try:
        import timm  # noqa: F401
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - not installed, or a torchvision that does not load beside this torch
        return False
    return True


def pytest_collection_modifyitems(config, items):
    """Tests marked ``zoo`` need timm and torchvision: `make test-zoo` runs them in .venv-zoo.

    Elsewhere they skip, saying why; with SELECTIVITY_REQUIRE_ZOO=1 (set by `make test-zoo`)
    a missing zoo fails them instead, so that CI cannot pass by skipping them.
    """
    import os

    zoo = [item for item in items if item.get_closest_marker("zoo")]
    if not zoo or os.environ.get("SELECTIVITY_REQUIRE_ZOO") == "1" or _zoo_installed():
        return  # required: a test that imports a missing zoo fails with its ImportError
    skip = pytest.mark.skip(reason="needs timm and torchvision: `make test-zoo` runs it in .venv-zoo")
    for item in zoo:
        item.add_marker(skip)
