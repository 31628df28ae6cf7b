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


def tiny_sweep_data(cohort: Path, out: Path, *, sweep_id: str, train: dict, **rest) -> dict:
    """A sweep config (as YAML-like data) over a `write_simulated` cohort with a tiny model; the
    caller's `train` fields and top-level keys come on top of the shared ones."""
    return {
        "sweep_id": sweep_id,
        "output_dir": str(out),
        "features": {
            "root": str(cohort / "features"),
            "fms": ["sim-16"],
            "labels": str(cohort / "labels.csv"),
            "splits": str(cohort / "splits.csv"),
        },
        "train": {
            "batch_specimens": 6,
            "robustness_k": 3,
            "model": {"hidden": 16, "attention_dim": 8, "projection_dim": 8, "dropout": 0.0},
            **train,
        },
        **rest,
    }
