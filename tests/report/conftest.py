from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from .sweep_builder import write_sweep


@pytest.fixture(scope="session")
def sweep_dir(tmp_path_factory):
    """A synthetic sweep of 5 alphas x 3 seeds (plus one diverged run), written like the trainer's."""
    return write_sweep(tmp_path_factory.mktemp("sweep"))


@pytest.fixture(scope="session")
def built_report(sweep_dir):
    """The report of ``sweep_dir``, built once for the session."""
    from selectivity.report import build_report

    return build_report(sweep_dir, n_boot=2000)


def _apt_get(*args: str) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(["apt-get", *args], env=env, capture_output=True, timeout=900).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def chromium():
    """The path of Debian's chromium, installed with apt-get when missing (skips if that fails)."""
    found = shutil.which("chromium")
    if found is None and shutil.which("apt-get"):
        if not _apt_get("install", "-y", "-qq", "chromium"):
            _apt_get("update", "-qq")
            _apt_get("install", "-y", "-qq", "chromium")
        found = shutil.which("chromium")
    if found is None:
        pytest.skip("chromium is not installed and `apt-get install -y chromium` failed "
                    "(needs root and Debian's package repositories)")
    return found
