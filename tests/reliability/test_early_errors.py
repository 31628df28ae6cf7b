"""Issue 24, case 4: bad input fails before Ray starts (or any FM is evaluated), with exit status 2 and
one line naming it: features filed under another FM's name (`sweep`, `evaluate-fm`), a model name,
version, alias or run the store does not hold (`predict`, listing what it holds), and near misses of
encoder names and config keys (`did you mean ...`)."""

from pathlib import Path

import numpy as np
import pytest
import ray
import yaml
from test_bad_input import no_sweep_work, one_error_line  # noqa: F401 (no_sweep_work: a fixture)

from raypath.cli import main
from raypath.store import FeatureStore, provenance, tiles_table

TILING = "abc"
PATIENTS = [f"P{i}" for i in range(4)]


def write_store(root: Path, *, filed_as: str, written_by: str) -> FeatureStore:
    """Four slides of `written_by`'s features under `filed_as`'s name."""
    meta = provenance(encoder=written_by, card={"name": written_by}, weights_hash="w", tiling={},
                      tiling_hash=TILING, embed_dim=4)
    store = FeatureStore(root, encoder=filed_as, tiling_hash=TILING)
    for index, patient in enumerate(PATIENTS):
        identity = {"slide_id": f"s{index}", "specimen_id": f"S{index}", "patient_id": patient,
                    "scanner": f"scanner-{'ab'[index % 2]}"}
        store.write(identity["slide_id"], tiles_table(
            slide=identity, coords=np.zeros((3, 2)), features=np.ones((3, 4), np.float32), extent_l0=224,
            tile_px=224, mpp=0.5, tissue_fraction=np.ones(3), metadata=meta))
    return store


@pytest.fixture
def cohort(tmp_path) -> dict[str, Path]:
    """A store with tiny-uni's own features and tiny-uni's features copied under tiny-virchow2."""
    write_store(tmp_path / "features", filed_as="tiny-uni", written_by="tiny-uni")
    write_store(tmp_path / "features", filed_as="tiny-virchow2", written_by="tiny-uni")
    (tmp_path / "labels.csv").write_text("patient_id,label\n" + "".join(f"{p},{i % 2}\n"
                                                                      for i, p in enumerate(PATIENTS)))
    (tmp_path / "manifest.csv").write_text("slide_id,path,patient_id,specimen_id,scanner\n" + "".join(
        f"s{i},s{i}.svs,{p},S{i},scanner-{'ab'[i % 2]}\n" for i, p in enumerate(PATIENTS)))
    return {name: tmp_path / name for name in ("features", "labels.csv", "manifest.csv")}


MISFILED = "written by encoder 'tiny-uni', not 'tiny-virchow2'"


@pytest.mark.usefixtures("no_sweep_work")
def test_sweep_refuses_features_filed_under_another_fms_name_before_ray(tmp_path, cohort, capsys):
    """Before: Ray started and every trial failed with a ProvenanceError until its retries ran out."""
    config = tmp_path / "sweep.yaml"
    features = {"root": str(cohort["features"]), "fms": ["tiny-virchow2"],
                "labels": str(cohort["labels.csv"])}
    config.write_text(yaml.safe_dump({"sweep_id": "misfiled", "output_dir": str(tmp_path / "sweep"),
                                      "features": features}))
    code = main(["sweep", "--config", str(config)])
    line = one_error_line(capsys)
    assert code == 2 and MISFILED in line


def test_evaluate_fm_refuses_a_misfiled_fm_before_evaluating_any(tmp_path, cohort, monkeypatch, capsys):
    """Before: the first FM was evaluated in full, then the misfiled second one failed."""
    from raypath.evaluate_fm import pipeline

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("evaluate-fm evaluated an FM before checking every FM's features")

    monkeypatch.setattr(pipeline, "robustness", forbidden)
    code = main(["evaluate-fm", "--features", str(cohort["features"]), "--manifest",
                 str(cohort["manifest.csv"]), "--labels", str(cohort["labels.csv"]), "--out",
                 str(tmp_path / "report"), "--no-tracking"])
    line = one_error_line(capsys)
    assert code == 2 and MISFILED in line


@pytest.fixture
def registry(tmp_path) -> str:
    """A SQLite store holding model 'raypath-demo-uni' with versions 1 and 2 and alias champion -> 2."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    (tmp_path / "runs").mkdir()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("raypath-demo-uni")
    for _ in range(2):
        version = client.create_model_version("raypath-demo-uni", source=str(tmp_path), run_id=None).version
    client.set_registered_model_alias("raypath-demo-uni", "champion", version)
    return uri


@pytest.fixture
def no_prediction_work(monkeypatch):
    from raypath.predict import run

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("predict started Ray for an unknown model"))
    monkeypatch.setattr(run, "ensure_features", lambda *a, **k: pytest.fail("predict extracted features"))


UNKNOWN_MODELS = {
    "name": ("models:/raypath-demo-unii@champion",
             "no registered model 'raypath-demo-unii'", "did you mean 'raypath-demo-uni'?"),
    "alias": ("models:/raypath-demo-uni@champoin", "has no alias 'champoin' (did you mean 'champion'?)",
              "its versions: 1, 2; its aliases: champion -> 2"),
    "version": ("models:/raypath-demo-uni/7", "has no version '7'",
                "its versions: 1, 2; its aliases: champion -> 2"),
    "run": ("runs:/0123456789abcdef/model", "no run '0123456789abcdef'", "mlflow.db"),
}


@pytest.mark.parametrize("case", UNKNOWN_MODELS)
@pytest.mark.usefixtures("no_prediction_work")
def test_predict_names_an_unknown_model_and_what_the_store_holds(tmp_path, cohort, registry, capsys, case):
    """Before: an MlflowException traceback, exit 1."""
    model, *expected = UNKNOWN_MODELS[case]
    code = main(["predict", "--model", model, "--tracking-uri", registry, "--manifest",
                 str(cohort["manifest.csv"]), "--out", str(tmp_path / "predictions")])
    line = one_error_line(capsys)
    assert code == 2 and model in line and all(text in line for text in expected), line


@pytest.mark.usefixtures("no_prediction_work")
def test_predict_refuses_a_tracking_store_that_does_not_exist(tmp_path, cohort, capsys):
    """MLflow would create an empty store there and report the model missing."""
    missing = tmp_path / "runs" / "mlfow.db"
    code = main(["predict", "--model", "models:/m@champion", "--tracking-uri", f"sqlite:///{missing}",
                 "--manifest", str(cohort["manifest.csv"]), "--out", str(tmp_path / "predictions")])
    line = one_error_line(capsys)
    assert code == 2 and f"no MLflow store at {missing}" in line and not missing.exists()


def test_an_unknown_encoder_suggests_the_near_miss(tmp_path, cohort, monkeypatch, capsys):
    import raypath.extract.run as extract_run

    monkeypatch.setattr(extract_run, "connect", lambda *a, **k: pytest.fail("extract started Ray"))
    code = main(["extract", "--manifest", str(cohort["manifest.csv"]), "--out", str(tmp_path / "out"),
                 "--encoder", "tiny-unii"])
    line = one_error_line(capsys)
    assert code == 2 and "unknown encoder 'tiny-unii' (did you mean 'tiny-uni'?); known:" in line


def test_an_unknown_config_key_suggests_the_near_miss(tmp_path, cohort, capsys):
    code = main(["extract", "--manifest", str(cohort["manifest.csv"]), "--out", str(tmp_path / "out"),
                 "--set", "batchsize=8", "--set", "tiling.tile_pix=256"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "unknown key 'batchsize' (not a field of this section) (did you mean 'batch_size'?)" in err
    assert "unknown key 'tiling.tile_pix' (not a field of this section) (did you mean 'tile_px'?)" in err
