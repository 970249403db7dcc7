import pytest


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
