"""Fixtures shared by every test module."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Real-data statistics are cached per user; tests use a cache of their own."""
    from gan_dist.metrics import quality

    mp = pytest.MonkeyPatch()
    cache = tmp_path_factory.mktemp("cache")
    mp.setenv("GAN_DIST_CACHE", str(cache))  # for the `gan` processes tests start
    mp.setattr(quality, "_CACHE", cache)  # for what tests call in this process
    yield
    mp.undo()


def pytest_collection_modifyitems(config, items):
    """`gpu` tests need CUDA: without it they are skipped, with the reason shown."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run scripts/gpu_check.sh on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
