import pytest

from selectivity.config import load_config
from selectivity.train.trainer import load_data


@pytest.fixture(scope="session")
def ddp_overrides(tmp_path_factory):
    """20 steps of the demo ResNet: 640 training images, global batch 64, 2 epochs."""
    cache = tmp_path_factory.mktemp("cache")
    return [f"data.cache_dir={cache}", "data.train_per_class=64", "data.test_limit=100", "train.epochs=2",
            "train.batch_size=64", "train.threads=1", "regularizer.warmup_epochs=0", "lr_schedule.kind=constant",
            "optim.lr=0.05", "train.eval_every=1"]


@pytest.fixture(scope="session")
def ddp_data(ddp_overrides):
    return load_data(load_config("demo", ddp_overrides), progress=False)
