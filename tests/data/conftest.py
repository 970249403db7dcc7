"""Fixtures for the data tests; the dataset builders live in ``builders.py``."""

from __future__ import annotations

import pytest

from .builders import make_imagefolder, make_tiny


@pytest.fixture
def tiny(tmp_path):
    return make_tiny(tmp_path / "src")


@pytest.fixture
def imagefolder(tmp_path):
    return make_imagefolder(tmp_path / "src")


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"
