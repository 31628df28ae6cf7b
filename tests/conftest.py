"""Suite-wide test settings: keep torch and BLAS to the CI machine's cores, headless plotting."""

import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(autouse=True, scope="session")
def _limit_threads():
    """Two cores in CI: oversubscribed thread pools make every test slower."""
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield


@pytest.fixture(scope="session")
def local_ray():
    """One private local Ray instance for every in-process Ray test (no token written to ~/.ray)."""
    import ray

    from raypath.extract.cluster import connect

    started = connect(None, num_cpus=2)
    yield
    if started:
        ray.shutdown()
