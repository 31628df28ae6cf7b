"""A small synthetic multi-scanner cohort for the registration job: 4 specimens x 2 scanners at 20x."""

from pathlib import Path

import pytest

from raypath.slides.synth import write_cohort
from raypath.slides.synth.config import SynthConfig

COHORT = {"seed": 7, "specimens": 4, "scanners": ["aperio-gt450", "hamamatsu-s360"],
          "field_um": (640.0, 560.0), "workers": 1, "max_rotation_deg": 8.0, "max_shift_um": 30.0}


@pytest.fixture(scope="session")
def register_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("register-cohort")
    write_cohort(SynthConfig(**COHORT), out)
    return out
