"""Suite-wide settings and shared fixtures: CI's two cores, headless plotting, one private Ray,
and small feature-level simulated cohorts (on disk or in memory)."""

import os
from collections.abc import Callable
from pathlib import Path

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

    from raypath.cluster import connect

    started = connect(None, num_cpus=2)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def write_simulated() -> Callable[..., Path]:
    """`write_simulated(out, **fields)`: feature store, manifest, labels, splits and registration of a
    small simulated cohort (12 tiles x 16 dims unless `fields` say otherwise) under `out`."""
    from raypath.slides.synth.feature_config import SimulateConfig
    from raypath.slides.synth.feature_store import write_feature_cohort

    def write(out: Path, **fields) -> Path:
        write_feature_cohort(SimulateConfig(**{"tiles": 12, "dim": 16, "seed": 0, **fields}), out=out)
        return out

    return write


@pytest.fixture(scope="session")
def simulated_bags() -> Callable[..., "BagSet"]:  # noqa: F821
    """`simulated_bags(**fields)`: an in-memory simulated cohort as a BagSet with labels and splits."""
    from raypath.mil.bags import simulated_bagset
    from raypath.slides.synth.feature_config import SimulateConfig
    from raypath.slides.synth.features import simulate_cohort

    return lambda **fields: simulated_bagset(simulate_cohort(SimulateConfig(**fields)))


@pytest.fixture(scope="session")
def tiny_sweep_data() -> Callable[..., dict]:
    """`tiny_sweep_data(cohort, out, sweep_id=..., train={...}, **rest)`: a sweep config (as YAML-like
    data) over a `write_simulated` cohort with a tiny model; `train` and `rest` come on top."""
    def build(cohort: Path, out: Path, *, sweep_id: str, train: dict, **rest) -> dict:
        return {
            "sweep_id": sweep_id,
            "output_dir": str(out),
            "features": {"root": str(cohort / "features"), "fms": ["sim-16"],
                         "labels": str(cohort / "labels.csv"), "splits": str(cohort / "splits.csv")},
            "train": {"batch_specimens": 6, "robustness_k": 3, **train,
                      "model": {"hidden": 16, "attention_dim": 8, "projection_dim": 8, "dropout": 0.0,
                                **train.get("model", {})}},
            **rest,
        }

    return build
