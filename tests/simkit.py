"""A tiny feature-level simulated cohort on disk, shared by the sweep, compare and PathoROB tests."""

from pathlib import Path

from raypath.config.simulate import SimulateConfig
from raypath.mil.simulate import simulate_cohort
from raypath.mil.simulate_io import write_cohort


def write_simulated(out: Path, **fields) -> Path:
    """Write feature store, manifest, labels, splits and registration of a simulated cohort."""
    config = SimulateConfig(**{"tiles": 12, "dim": 16, "seed": 0, **fields})
    write_cohort(simulate_cohort(config), config=config, out=out)
    return out
