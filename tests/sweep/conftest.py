"""Fixtures for the sweep tests: tiny runs, a fake trainer, and a real one-node SLURM cluster."""

from __future__ import annotations

import json

import pytest

from selectivity.runs import write_text

from .slurm_cluster import SlurmCluster, SlurmUnavailable


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One decoded cache of the bundled demo set, shared by every run of the session (and its jobs)."""
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def tiny(cache_dir):
    """The demo recipe cut down to a few seconds per run."""
    return [
        f"data.cache_dir={cache_dir}",
        "data.train_per_class=20",
        "data.test_limit=100",
        "train.epochs=1",
        "train.batch_size=50",
        "train.threads=1",
        "regularizer.warmup_epochs=0",
    ]


class FakeTrain:
    """Stands in for ``trainer.train``: records calls, writes a final.json, or raises for chosen alphas."""

    def __init__(self, fail_alphas=(), interrupt_after=None):
        self.calls = []
        self.fail_alphas = set(fail_alphas)
        self.interrupt_after = interrupt_after

    def __call__(self, config, out_dir, progress=True, wait_for_lock=False):
        alpha, seed = config.regularizer.alpha, config.train.seed
        self.calls.append((alpha, seed))
        if self.interrupt_after is not None and len(self.calls) > self.interrupt_after:
            raise KeyboardInterrupt
        if alpha in self.fail_alphas:
            raise RuntimeError(f"boom at alpha {alpha:g}")
        final = {"status": "completed", "alpha": alpha, "seed": seed, "model": config.model.name,
                 "dataset": "fake", "epochs": config.train.epochs, "train_seconds": 0.0,
                 "test_acc": 0.5 + alpha / 100, "mean_si": 0.25, "si/a": 0.2, "si/b": 0.3}
        write_text(out_dir / "final.json", json.dumps(final))
        return final


@pytest.fixture
def fake_train(monkeypatch):
    """Patch the trainer the sweep jobs call (in-process: the debug executor)."""

    def install(**kwargs):
        fake = FakeTrain(**kwargs)
        monkeypatch.setattr("selectivity.sweep.runner.train", fake)
        return fake

    return install


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real SLURM (munged + slurmctld + slurmd) on this machine, installed with apt-get when missing.

    Skips, with the reason, where SLURM cannot be installed or started. Clients find it
    through ``SLURM_CONF``, set for the session (sbatch passes it on to the jobs).
    """
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except (SlurmUnavailable, OSError) as err:
        cluster.stop()
        pytest.skip(f"no SLURM cluster: {err}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLURM_CONF", str(cluster.conf))
        yield cluster
    cluster.stop()
