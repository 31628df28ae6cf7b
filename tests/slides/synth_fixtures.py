"""A small synthetic multi-scanner cohort, written once per test session (imported by the tests)."""

from pathlib import Path

import pytest

from raypath.config.synth import SynthConfig
from raypath.slides.synth import write_cohort

SMALL = {
    "seed": 7,
    "specimens": 2,
    "scanners": ["aperio-gt450", "hamamatsu-s360"],
    "field_um": (640.0, 560.0),
    "workers": 1,
    "max_rotation_deg": 8.0,
    "max_shift_um": 30.0,
}


@pytest.fixture(scope="session")
def synth_cohort(tmp_path_factory) -> Path:
    """2 specimens x 2 scanners at 20x (0.526 and 0.46 mpp), ~1200 px slides."""
    out = tmp_path_factory.mktemp("synth")
    write_cohort(SynthConfig(**SMALL), out)
    return out
