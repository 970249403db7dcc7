"""Fixtures for the fault tests: the CLI run in-process, and the data builders of tests/data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from selectivity.cli import main


def _load_builders():
    path = Path(__file__).parents[1] / "data" / "builders.py"
    spec = importlib.util.spec_from_file_location("fault_builders", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builders = _load_builders()


@pytest.fixture
def cli(capsys):
    """``cli(argv) -> (exit code, stdout, stderr)`` of ``selectivity`` run in this process."""

    def run(argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def one_line():
    def check(err: str) -> str:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, err
        return lines[0]

    return check


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One decoded cache of the bundled demo set for the fault tests."""
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def tiny_sets(cache_dir):
    """``--set`` arguments that cut the demo recipe to about a second of training."""
    return ["--set", f"data.cache_dir={cache_dir}", "data.train_per_class=10", "data.test_limit=50",
            "train.epochs=1", "train.batch_size=50", "train.threads=1", "regularizer.warmup_epochs=0"]
