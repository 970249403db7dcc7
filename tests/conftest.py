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

