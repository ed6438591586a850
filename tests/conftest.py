"""Fixtures shared by every test module."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Real-data statistics are cached per user; tests use a cache of their own."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GAN_DIST_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()
