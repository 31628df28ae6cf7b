"""Every YAML shipped under jobs/configs/ parses into its job's strict config model."""

from pathlib import Path

import pytest

from raypath.compare.config import CompareConfig
from raypath.config import ConfigError, load_config
from raypath.config.base import parse_yaml
from raypath.demo.config import DemoConfig
from raypath.demo.pipeline import plan_demo
from raypath.evaluate_fm.config import EvaluateFMConfig
from raypath.extract.config import ExtractConfig
from raypath.finetune.config import FinetuneConfig
from raypath.predict.config import PredictConfig
from raypath.slides.registration.config import RegisterConfig
from raypath.sweep.config import SweepConfig
from raypath.train.config import TrainConfig

CONFIGS = Path(__file__).resolve().parents[2] / "jobs" / "configs"
MODELS = {"extract": ExtractConfig, "sweep": SweepConfig, "compare": CompareConfig,
          "evaluate-fm": EvaluateFMConfig, "demo": DemoConfig, "predict": PredictConfig, "train": TrainConfig,
          "finetune": FinetuneConfig, "register": RegisterConfig}


def model_for(path: Path):
    """The config model of a shipped file, from its name (`sweep-demo.yaml` -> SweepConfig)."""
    for prefix in sorted(MODELS, key=len, reverse=True):
        if path.stem == prefix or path.stem.startswith(prefix + "-"):
            return MODELS[prefix]
    raise AssertionError(f"{path.name}: no config model for this file name; add it to MODELS")


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_config_validates(path: Path):
    config = load_config(model_for(path), path)
    if isinstance(config, DemoConfig):
        plan_demo(config, source=str(path))


def test_every_job_has_a_config():
    stems = {p.stem for p in CONFIGS.glob("*.yaml")}
    assert {"extract", "sweep", "compare", "evaluate-fm", "demo", "predict", "train", "finetune",
            "register"} <= stems


def test_unknown_key_in_a_demo_section_names_file_and_key(tmp_path: Path):
    path = tmp_path / "demo.yaml"
    path.write_text("sweep:\n  num_sample: 3\n")
    with pytest.raises(ConfigError) as error:
        plan_demo(load_config(DemoConfig, path), source=str(path))
    assert "num_sample" in str(error.value) and str(path) in str(error.value)


def test_cli_override_beats_the_file(tmp_path: Path):
    path = CONFIGS / "demo.yaml"
    config = load_config(DemoConfig, path, overrides=["synth.specimens=6", f"out={tmp_path}"])
    plan = plan_demo(config, source=str(path))
    assert config.synth.specimens == 6
    assert plan.extract.output == str(tmp_path.resolve() / "features")


def test_compare_selects_by_the_sweeps_own_rule_as_its_comments_say():
    def read(name: str) -> dict:
        return parse_yaml((CONFIGS / name).read_text())

    sweep, compare, demo = read("sweep.yaml"), read("compare.yaml"), read("demo.yaml")
    assert compare["objectives"] == sweep["objectives"]
    assert compare["accuracy_tolerance"] == sweep["replicates"]["accuracy_tolerance"]
    assert demo["compare"]["accuracy_tolerance"] == demo["sweep"]["replicates"]["accuracy_tolerance"]
