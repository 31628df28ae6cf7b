"""The finetune tests' session cohort (see finetunekit)."""

from pathlib import Path

import pytest
from finetunekit import synthetic_cohort


@pytest.fixture(scope="session")
def ft_cohort(tmp_path_factory) -> Path:
    return synthetic_cohort(tmp_path_factory.mktemp("ft-cohort"), seed=3)
