"""Issue 24, case 6: one rule for relative paths. Every path field of every config is taken from the
working directory and made absolute when the config is loaded, so a sweep whose config names its
features with relative paths (as the shipped `jobs/configs/sweep*.yaml` do) trains, although its
trials run in Tune's own trial directories."""

import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from raypath.compare.config import CompareConfig
from raypath.config import StrictModel, load_config
from raypath.demo.config import DemoConfig
from raypath.evaluate_fm.config import EvaluateFMConfig
from raypath.extract.config import ExtractConfig
from raypath.finetune.config import FinetuneConfig
from raypath.predict.config import PredictConfig
from raypath.slides.registration.config import RegisterConfig
from raypath.sweep.config import SweepConfig

STAGES = (ExtractConfig, SweepConfig, CompareConfig, EvaluateFMConfig, FinetuneConfig, PredictConfig,
          RegisterConfig, DemoConfig)


def sections(model: type[BaseModel]) -> list[type[BaseModel]]:
    """`model` and every config section nested in it."""
    found = [model]
    for info in model.model_fields.values():
        for argument in (info.annotation, *typing.get_args(info.annotation)):
            if isinstance(argument, type) and issubclass(argument, StrictModel) and argument not in found:
                found += [s for s in sections(argument) if s not in found]
    return found


@pytest.mark.parametrize("model", STAGES, ids=lambda m: m.__name__)
def test_no_config_field_is_a_plain_path(model):
    """A field typed `Path` would keep a relative path relative: path fields are `LocalPath`/`Location`."""
    plain = [f"{section.__name__}.{name}" for section in sections(model)
             for name, info in section.model_fields.items()
             if Path in (info.annotation, *typing.get_args(info.annotation)) and not info.metadata]
    assert plain == []


@pytest.fixture(scope="module")
def project(tmp_path_factory, write_simulated) -> Path:
    """A project folder with the cohort under `data/` and a sweep config naming it relatively."""
    root = tmp_path_factory.mktemp("project")
    write_simulated(root / "data", n_specimens=12)
    (root / "configs").mkdir()
    (root / "configs" / "sweep.yaml").write_text(yaml.safe_dump({
        "sweep_id": "relative", "output_dir": "runs",
        "features": {"root": "./data/features", "fms": ["sim-16"], "labels": "data/labels.csv",
                     "splits": "data/splits.csv", "cache": {"dir": "cache"}},
        "train": {"epochs": 1, "batch_specimens": 4, "robustness_k": 3,
                  "model": {"hidden": 8, "attention_dim": 4, "projection_dim": 4, "dropout": 0.0}},
        "space": {"optimizer.lr": {"type": "loguniform", "low": 1e-3, "high": 3e-3}},
        "num_samples": 2, "pack_size": 2, "asha": {"enabled": False}, "replicates": {"seeds": 0},
        "max_failures": 0, "resources": {"max_concurrent_trials": 1},
    }))
    return root


def test_relative_paths_are_taken_from_the_working_directory_once_at_load(project, monkeypatch):
    monkeypatch.chdir(project)
    config = load_config(SweepConfig, Path("configs/sweep.yaml"),
                         overrides=["tracking.uri=sqlite:///runs/other.db"])
    features = config.features
    assert features.root == str(project / "data" / "features")
    assert features.labels == project / "data" / "labels.csv"
    assert features.splits == project / "data" / "splits.csv"
    assert features.cache.dir == str(project / "cache") and config.output_dir == project / "runs"
    assert config.tracking.uri == f"sqlite:///{project / 'runs' / 'other.db'}"
    assert load_config(SweepConfig, Path("configs/sweep.yaml"), overrides=[
        "features.root=s3://bucket/features"]).features.root == "s3://bucket/features"
    predict = PredictConfig(model="models:/m@champion", out="predictions", features="s3://bucket/f")
    assert (predict.model, predict.out, predict.features) == ("models:/m@champion", project / "predictions",
                                                              "s3://bucket/f")
    assert PredictConfig(model="trained/model").model == str(project / "trained" / "model")


@pytest.mark.slow
def test_a_sweep_with_relative_roots_trains_from_another_directory(project, local_ray, monkeypatch):
    """Tune runs each trial in its own directory: a relative feature root handed to trials failed there."""
    from raypath.sweep.driver import run_sweep

    monkeypatch.chdir(project)
    (outcome,) = run_sweep(load_config(SweepConfig, Path("configs/sweep.yaml")))
    assert outcome.errored_packs == 0 and outcome.trials == 2
