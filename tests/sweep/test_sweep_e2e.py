"""A real sweep (Ray Tune + Optuna + early stopping + MLflow on SQLite), rerun (restored, nothing
retrained), compared, and its champion model loaded and applied in a fresh process: the MLflow
layout a power user expects, nothing written outside the output directory, predictions that
reproduce the scores the sweep logged, the same sweep at another concurrency choosing the same
configurations and writing the same table, and a replicate trained again from its MLflow record."""

import json
import math
import subprocess
import sys

import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from raypath.sweep.config import SweepConfig
from raypath.tracking.queries import runs_frame
from raypath.tracking.runs import TAG_KIND

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
EXPERIMENT = "raypath/e2e/sim-16"


@pytest.fixture(scope="module")
def swept(tmp_path_factory, write_simulated, tiny_sweep_data, local_ray):
    """Sweep (from another working directory), rerun, compare: (config, client, runs, compare result, cwd)."""
    from raypath.compare.config import CompareConfig
    from raypath.compare.run import compare_sweep
    from raypath.sweep.driver import run_sweep

    cohort = write_simulated(tmp_path_factory.mktemp("cohort"), n_specimens=30, label_strength=3.0)
    out, elsewhere = tmp_path_factory.mktemp("sweep"), tmp_path_factory.mktemp("cwd")
    config = SweepConfig.model_validate(_sweep_data(tiny_sweep_data, cohort, out))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(elsewhere)
        first = {o.phase: o for o in run_sweep(config)}
        client = MlflowClient(config.tracking_uri())
        experiment = client.get_experiment_by_name(EXPERIMENT)
        runs = runs_frame(client, experiment.experiment_id)
        again = {o.phase: o for o in run_sweep(config)}  # everything finished: restored, nothing rerun
        result = compare_sweep(CompareConfig(sweep_id="e2e", output_dir=out, accuracy_tolerance=1.0,
                                             heatmaps={"specimens": 1}))[0]
    return {"config": config, "client": client, "experiment": experiment.experiment_id, "runs": runs,
            "first": first, "again": again, "result": result, "cwd": elsewhere, "cohort": cohort, "out": out}


def _sweep_data(tiny_sweep_data, cohort, out, **changes) -> dict:
    """Five packs of two (one control, four robust), one per batch: packs 3 and 4 reach their rung
    with earlier robust packs to compare with, so early stopping takes part."""
    return tiny_sweep_data(
        cohort, out, sweep_id="e2e", train={"epochs": 4, "early_stopping": {"patience": 3}},
        space={"optimizer.lr": {"type": "loguniform", "low": 3e-4, "high": 3e-3},
               "losses.infonce": {"type": "uniform", "low": 0.0, "high": 1.0},
               "losses.score_consistency": {"type": "uniform", "low": 0.0, "high": 2.0}},
        objectives=[{"metric": "val/auc", "mode": "max"}, {"metric": "val/score_spread", "mode": "min"}],
        num_samples=10, pack_size=2, search_batch=1, asha={"grace_period": 2},
        replicates={"seeds": 2, "top_k": 1, "accuracy_tolerance": 1.0}, **changes)


def test_counts_and_a_rerun_restores_without_duplicates(swept):
    first, again, runs = swept["first"], swept["again"], swept["runs"]
    assert first["search"].trials == 10 and first["search"].packs == 5 and first["search"].errored_packs == 0
    assert first["replicates"].trials == 4
    assert again["search"].trials == 10 and again["replicates"].trials == 4
    search, replicates = runs[runs["phase"] == "search"], runs[runs["phase"] == "replicates"]
    assert len(search) == 10 and search["key"].is_unique and set(search["status"]) == {"FINISHED"}
    assert search["baseline"].sum() == 2 and replicates["baseline"].sum() == 2  # tuned control: 25%
    rerun = runs_frame(swept["client"], swept["experiment"])
    assert set(rerun["run_id"]) == set(runs["run_id"])


def test_trials_are_named_children_of_one_parent_per_phase(swept):
    client = swept["client"]
    everything = client.search_runs([swept["experiment"]], run_view_type=ViewType.ACTIVE_ONLY,
                                    max_results=500)
    parents = {r.data.tags["raypath.phase"]: r for r in everything if r.data.tags.get(TAG_KIND) == "phase"}
    assert set(parents) == {"search", "replicates"}
    assert {p.info.run_name for p in parents.values()} == {"sim-16/search", "sim-16/replicates"}
    assert {p.info.status for p in parents.values()} == {"FINISHED"}
    for phase, parent in parents.items():  # the phase's summary: what MLflow charts for a parent
        metrics, finished = parent.data.metrics, 10 if phase == "search" else 4
        assert {"best_val_auc", "best_val_score_spread"} <= metrics.keys() and metrics["wall_time_s"] > 0
        assert metrics["configs_finished"] == finished and metrics["configs_failed"] == 0
    for run in (r for r in everything if r.data.tags.get(TAG_KIND) == "trial"):
        phase = run.data.tags["raypath.phase"]
        assert run.data.tags["mlflow.parentRunId"] == parents[phase].info.run_id
        kind = "baseline" if run.data.tags["raypath.baseline"] == "true" else "robust infonce="
        assert run.info.run_name.startswith(kind), run.info.run_name
        assert f" seed {run.data.tags['raypath.seed']} ({phase} " in run.info.run_name
        params = run.data.params
        assert {"optimizer.lr", "losses.infonce", "model.hidden", "epochs", "fm", "seed", "baseline",
                "pack"} <= params.keys()
        assert params["fm"] == "sim-16" and params["baseline"] in {"true", "false"}
        assert "raypath.code_hash" in run.data.tags and "raypath.version" in run.data.tags
        (dataset,) = run.inputs.dataset_inputs
        profile = json.loads(dataset.dataset.profile)
        assert dataset.dataset.name.startswith("sim-16/") and profile["encoder"] == "sim-16"
        assert {"weights_hash", "tiling_hash"} <= profile.keys()


def test_only_metrics_that_exist_and_no_test_metrics_where_configurations_are_selected(swept):
    client = swept["client"]
    for _, row in swept["runs"].iterrows():
        metrics = client.get_run(row["run_id"]).data.metrics
        assert all(math.isfinite(v) for v in metrics.values())
        has_test = any(name.startswith("test/") for name in metrics)
        assert has_test == (row["phase"] == "replicates"), (row["phase"], sorted(metrics))
    baseline = swept["runs"].query("phase == 'search' and baseline")["run_id"].iloc[0]
    assert len(client.get_metric_history(baseline, "val/auc")) >= 2  # per-epoch reports reached MLflow


def test_nothing_is_written_outside_the_output_directory(swept):
    assert list(swept["cwd"].iterdir()) == []
    replicate = swept["runs"].query("phase == 'replicates'")["run_id"].iloc[0]
    location = swept["client"].get_run(replicate).info.artifact_uri
    assert location.startswith((swept["out"] / "mlartifacts").resolve().as_uri())


def test_compare_reports_and_registers_a_champion(swept):
    result, client, out = swept["result"], swept["client"], swept["out"]
    table = result.table.set_index(["model", "metric"])
    assert set(result.wide.index) == {"baseline", "robust 1"}
    assert table.loc[("baseline", "test/auc"), "n"] == 2
    report = out / "e2e-report"
    assert (report / "sim-16" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list((report / "sim-16").glob("heatmap_*.png"))) == 1
    assert "| baseline |" in (report / "report.md").read_text()
    stability = pd.read_csv(report / "sim-16" / "stability.csv", index_col="choice")
    assert {"baseline chosen", "robust chosen", "robust runner-up 1"} <= set(stability.index)  # search ranks
    assert "Stability of the choice" in (report / "report.md").read_text()
    champion = client.get_model_version_by_alias("raypath-e2e-sim-16", "champion")
    assert champion.run_id in set(swept["runs"]["run_id"]) and result.registered == str(champion.version)
    assert {"fm", "weights_hash", "tiling_hash", "loss_weights", "metric.test/auc"} <= champion.tags.keys()
    # every replicate logged its model as a LoggedModel (the run's Models column); the version links to it
    logged = client.search_logged_models(experiment_ids=[swept["experiment"]])
    replicates = set(swept["runs"].query("phase == 'replicates'")["run_id"])
    assert {m.source_run_id for m in logged} == replicates and len(logged) == len(replicates)
    champion_model = champion.source.removeprefix("models:/")  # MLflow 3.18's SQL registry keeps no model_id
    assert champion_model in {m.model_id for m in logged if m.source_run_id == champion.run_id}
    assert [o.model_id for o in client.get_run(champion.run_id).outputs.model_outputs] == [champion_model]
    reports = client.search_runs([swept["experiment"]], filter_string=f"tags.`{TAG_KIND}` = 'report'")
    assert len(reports) == 1


LOAD_AND_PREDICT = """
import sys, mlflow, numpy as np, pandas as pd
from raypath.store import FeatureStore
uri, root, tiling, out = sys.argv[1:]
mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
model = mlflow.pyfunc.load_model("models:/raypath-e2e-sim-16@champion")
store = FeatureStore(root, encoder="sim-16", tiling_hash=tiling)
frames = [pd.DataFrame({"slide_id": s, "features": list(store.read_bag(s).features)})
          for s in store.slide_ids()]
predictions = model.predict(pd.concat(frames))
predictions.drop(columns="attention").to_csv(out, index=False)
"""


def test_the_champion_loads_in_a_fresh_process_and_reproduces_the_logged_scores(swept, tmp_path):
    client, config = swept["client"], swept["config"]
    champion = client.get_model_version_by_alias("raypath-e2e-sim-16", "champion")
    tags = client.get_experiment(swept["experiment"]).tags
    args = [config.tracking_uri(), tags["raypath.features_root"], tags["raypath.tiling_hash"],
            str(tmp_path / "p.csv")]
    done = subprocess.run([sys.executable, "-c", LOAD_AND_PREDICT, *args], capture_output=True, text=True,
                          timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    predicted = pd.read_csv(tmp_path / "p.csv").set_index("slide_id")
    logged = pd.read_parquet(client.download_artifacts(champion.run_id, "predictions", str(tmp_path))
                             + "/predictions.parquet").set_index("slide_id")
    assert len(predicted) == len(logged) == 90
    pd.testing.assert_series_equal(predicted["score"], logged.loc[predicted.index, "score"], atol=1e-5,
                                   check_names=False, check_dtype=False)
    assert (predicted["decision"] == logged.loc[predicted.index, "decision"]).all()


def test_raypath_predict_reproduces_the_logged_scores_and_draws_heatmaps(swept, tmp_path):
    from raypath.cli import main

    client, cohort = swept["client"], swept["cohort"]
    champion = client.get_model_version_by_alias("raypath-e2e-sim-16", "champion")
    logged = pd.read_parquet(client.download_artifacts(champion.run_id, "predictions", str(tmp_path))
                             + "/predictions.parquet").set_index("slide_id")
    slide = logged.index[0]
    code = main(["predict", "--model", "models:/raypath-e2e-sim-16@champion", "--tracking-uri",
                 swept["config"].tracking_uri(), "--manifest", str(cohort / "manifest.csv"), "--features",
                 str(cohort / "features"), "--out", str(tmp_path / "predicted"), "--heatmaps", slide])
    assert code == 0
    predicted = pd.read_parquet(tmp_path / "predicted" / "predictions.parquet").set_index("slide_id")
    assert len(predicted) == 90 and {"patient_id", "scanner", "score", "decision", "attention"} <= set(
        predicted.columns)
    pd.testing.assert_series_equal(predicted["score"], logged.loc[predicted.index, "score"], atol=1e-5,
                                   check_names=False, check_dtype=False)
    assert (tmp_path / "predicted" / "predictions.csv").exists()
    assert (tmp_path / "predicted" / "heatmaps" / f"{slide}.png").read_bytes()[:4] == b"\x89PNG"
    _check_qupath_geojson(tmp_path / "predicted" / "geojson", predicted, features=cohort / "features")


def _check_qupath_geojson(directory, predicted: pd.DataFrame, *, features) -> None:
    """One GeoJSON per predicted slide; read back with shapely, its tile squares are the store's
    level-0 coords and size and carry the attention predictions.parquet holds."""
    import numpy as np
    from shapely.geometry import shape

    from raypath.store import FeatureStore, store_encoders, tiling_hashes

    encoder = store_encoders(features)[0]
    store = FeatureStore(features, encoder=encoder, tiling_hash=tiling_hashes(features, encoder=encoder)[0])
    assert sorted(p.stem for p in directory.iterdir()) == sorted(predicted.index)
    for slide_id in predicted.index[:5]:
        collection = json.loads((directory / f"{slide_id}.geojson").read_text())["features"]
        tiles = [f for f in collection if f["properties"]["objectType"] == "tile"]
        coords, side = store.read_coords(slide_id)
        assert [shape(t["geometry"]).bounds for t in tiles] == [(x, y, x + side, y + side) for x, y in coords]
        attention = [t["properties"].get("measurements", {}).get("attention vs uniform", np.nan)
                     for t in tiles]
        np.testing.assert_allclose(attention, predicted.loc[slide_id, "attention"], rtol=1e-7)
        score = collection[0]["properties"]["measurements"]["score"]
        assert score == pytest.approx(predicted.loc[slide_id, "score"], abs=1e-12)


def test_predict_refuses_features_of_other_weights_naming_the_difference(swept, tmp_path, capsys):
    import json as json_module

    import pyarrow.parquet as pq

    from raypath.cli import main
    from raypath.store import METADATA_KEY

    tags = swept["client"].get_experiment(swept["experiment"]).tags
    source = swept["cohort"] / "features" / "sim-16" / tags["raypath.tiling_hash"]
    target = tmp_path / "features" / "sim-16" / tags["raypath.tiling_hash"]
    target.mkdir(parents=True)
    for path in sorted(source.glob("*.parquet"))[:3]:
        table = pq.read_table(path)
        meta = json_module.loads(table.schema.metadata[METADATA_KEY])
        meta["weights_hash"] = "other-weights"
        table = table.replace_schema_metadata({METADATA_KEY: json_module.dumps(meta).encode()})
        pq.write_table(table, target / path.name)
    manifest = pd.read_csv(swept["cohort"] / "manifest.csv").iloc[:3]
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    code = main(["predict", "--model", "models:/raypath-e2e-sim-16@champion", "--tracking-uri",
                 swept["config"].tracking_uri(), "--manifest", str(tmp_path / "manifest.csv"), "--features",
                 str(tmp_path / "features"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "weights_hash is 'other-weights'" in err
    assert not (tmp_path / "out" / "predictions.parquet").exists()


def test_phases_are_recorded_complete_and_every_run_carries_its_recipe(swept):
    client, experiment = swept["client"], swept["experiment"]
    assert client.get_experiment(experiment).tags["raypath.phases"] == "search,replicates"
    parents = client.search_runs([experiment], filter_string="tags.`raypath.kind` = 'phase'")
    assert {p.data.tags["raypath.complete"] for p in parents} == {"true"}
    run = client.get_run(swept["runs"]["run_id"].iloc[0])
    assert {"torch", "ray", "optuna", "python"} <= json.loads(run.data.tags["raypath.packages"]).keys()
    recipe = json.loads(run.data.tags["raypath.rerun"])
    assert recipe["features"]["fingerprint"] and set(recipe["tables"]) == {"labels", "splits"}


def test_another_concurrency_chooses_the_same_configurations_and_writes_the_same_table(
        swept, tiny_sweep_data, tmp_path_factory):
    """Same config and seed, one trial at a time instead of two: trials finish in another order, the
    search suggests, stops and selects the same, and compare writes the same table.csv."""
    from raypath.compare.config import CompareConfig
    from raypath.compare.run import compare_sweep
    from raypath.sweep.driver import run_sweep

    out = tmp_path_factory.mktemp("serial")
    config = SweepConfig.model_validate(_sweep_data(tiny_sweep_data, swept["cohort"], out,
                                                    resources={"max_concurrent_trials": 1}))
    run_sweep(config)
    client = MlflowClient(config.tracking_uri())
    runs = runs_frame(client, client.get_experiment_by_name(EXPERIMENT).experiment_id)
    columns = ["key", "config_key", "phase", "status", "val/auc", "val/score_spread"]
    pd.testing.assert_frame_equal(runs[columns].reset_index(drop=True),
                                  swept["runs"][columns].reset_index(drop=True))
    compare_sweep(CompareConfig(sweep_id="e2e", output_dir=out, accuracy_tolerance=1.0,
                                heatmaps={"specimens": 0}))
    table = "e2e-report/sim-16/table.csv"
    assert (out / table).read_bytes() == (swept["out"] / table).read_bytes()


def test_a_replicate_trains_again_from_its_mlflow_record_alone_to_the_same_metrics(swept, tmp_path):
    import torch

    from raypath.sweep.rerun import Rerun

    client = swept["client"]
    run_id = swept["runs"].query("phase == 'replicates' and not baseline")["run_id"].iloc[0]
    logged = client.get_run(run_id).data.metrics
    threads = torch.get_num_threads()
    try:
        result = Rerun.from_run(client, run_id).retrain(cache_dir=tmp_path / "cache")
    finally:
        torch.set_num_threads(threads)
    final = {k: v for k, v in logged.items() if k.startswith("test/")}  # logged by the final evaluation only
    assert len(final) >= 5
    assert {k: result.metrics[k] for k in final} == final
