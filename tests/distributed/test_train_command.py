"""`raypath train` end to end: one process or `--workers 2`, the same output files, the run in
MLflow in the sweeps' layout (params, per-epoch metrics with step = epoch, final metrics, artifacts),
and the trained model usable by `raypath predict` (from the run, or from the output directory)."""

import json

import pandas as pd
import pytest
from mlflow import MlflowClient

import raypath.cli
from raypath.tracking.runs import TAG_FM, TAG_KIND, TAG_SWEEP

EPOCHS = 3
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, write_simulated):
    return write_simulated(tmp_path_factory.mktemp("cohort"), n_specimens=24, label_strength=3.0)


def _train(cohort, out, *extra: str, tracked: bool = True) -> int:
    tracking = ("--tracking-uri", f"sqlite:///{out}/mlflow.db") if tracked else ()
    return raypath.cli.main([
        "train", "--features", str(cohort / "features"), "--encoder", "sim-16",
        "--labels", str(cohort / "labels.csv"), "--splits", str(cohort / "splits.csv"), "--out", str(out),
        "--set", f"epochs={EPOCHS}", "--set", "batch_specimens=4", "--set", "early_stopping.enabled=false",
        "--set", "model.hidden=16", *tracking, *extra])


def _predict_matches_training(cohort, out, model: str, *extra: str) -> None:
    """`raypath predict` with the trained model reproduces the scores training wrote."""
    code = raypath.cli.main(["predict", "--model", model, "--manifest", str(cohort / "manifest.csv"),
                             "--features", str(cohort / "features"), "--out", str(out / "predicted"), *extra])
    assert code == 0
    predicted = pd.read_parquet(out / "predicted" / "predictions.parquet").set_index("slide_id")
    trained = pd.read_csv(out / "predictions.csv").set_index("slide_id")
    assert len(predicted) == len(trained) > 0
    pd.testing.assert_series_equal(predicted["score"], trained.loc[predicted.index, "score"], atol=1e-5,
                                   check_names=False, check_dtype=False)


def _run(out):
    client = MlflowClient(f"sqlite:///{out}/mlflow.db")
    experiment = client.get_experiment_by_name("raypath/train/sim-16")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


@pytest.mark.parametrize("workers", [None, 2], ids=["one-process", "two-workers"])
def test_train_writes_outputs_and_logs_the_run_like_a_sweep_trial(local_ray, cohort, tmp_path, workers):
    extra = ("--workers", str(workers)) if workers else ()
    assert _train(cohort, tmp_path, *extra) == 0
    assert {"metrics.json", "predictions.csv", "model.safetensors", "model.json", "config.json",
            "model"} <= {p.name for p in tmp_path.iterdir()}
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    client, run = _run(tmp_path)
    assert run.info.status == "FINISHED"
    assert run.data.tags[TAG_KIND] == "trial" and run.data.tags[TAG_FM] == "sim-16"
    assert run.data.tags[TAG_SWEEP] == "train"
    assert run.data.params["batch_specimens"] == "4" and run.data.params["workers"] == str(workers or 0)
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in history] == list(range(EPOCHS))
    assert run.data.metrics["test/auc"] == pytest.approx(metrics["test/auc"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "outputs")}
    assert artifacts == {f"outputs/{name}" for name in ("metrics.json", "predictions.csv",
                                                         "model.safetensors", "model.json", "config.json")}
    if workers:
        assert list((tmp_path / "checkpoints").glob("train-sim-16-*/checkpoint_*"))
    _predict_matches_training(cohort, tmp_path, f"runs:/{run.info.run_id}/model",
                              "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db")


def test_an_untracked_run_leaves_a_model_directory_predict_reads(local_ray, cohort, tmp_path):
    assert _train(cohort, tmp_path, tracked=False) == 0
    assert (tmp_path / "model" / "MLmodel").is_file()
    assert not list(tmp_path.glob(".*")), "no staging files left behind"
    _predict_matches_training(cohort, tmp_path, str(tmp_path / "model"))


def test_the_same_command_again_resumes_into_the_same_run(local_ray, cohort, tmp_path):
    _train(cohort, tmp_path, "--workers", "2", "--set", "epochs=1")
    _, run = _run(tmp_path)
    # the run's name derives from config, features and seed: the rerun restores its last checkpoint
    # (nothing left to train), rewrites the outputs and MLflow keeps one run
    (tmp_path / "metrics.json").unlink()
    assert _train(cohort, tmp_path, "--workers", "2", "--set", "epochs=1") == 0
    _, again = _run(tmp_path)
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert (tmp_path / "metrics.json").exists()
    assert len(list((tmp_path / "checkpoints").glob("train-sim-16-*"))) == 1
