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


@pytest.fixture(scope="session")
def _trained_run(tmp_path_factory, cache_dir):
    """One finished tiny run of the demo recipe, trained once per session (about a second)."""
    out = tmp_path_factory.mktemp("trained") / "alpha+0_seed0"
    code = main(["train", "demo", "--out", str(out), "--no-progress", "--set", f"data.cache_dir={cache_dir}",
                 "data.train_per_class=10", "data.test_limit=50", "train.epochs=1", "train.batch_size=50",
                 "train.threads=1", "regularizer.warmup_epochs=0"])
    assert code == 0
    return out


@pytest.fixture
def finished_run(_trained_run, tmp_path):
    """A private copy of the finished run, inside a sweep-like folder ``tmp_path/sweep``."""
    import shutil

    return Path(shutil.copytree(_trained_run, tmp_path / "sweep" / _trained_run.name))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes: what "nothing lost" compares."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
