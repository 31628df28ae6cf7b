"""A sweep submitted to a real two-node Ray cluster on this host: trials run on both nodes, each node
builds its own feature cache from the shared store on first use, and every trained configuration
equals the same sweep run on one node."""

import pytest
import yaml
from mlflow import MlflowClient

from raypath.sweep.config import SweepConfig
from raypath.sweep.driver import run_sweep
from raypath.tracking.queries import runs_frame
from raypath.tracking.runs import experiment_name

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
COMPARED = ("val/auc", "val/loss", "val/score_spread", "best_epoch")  # a search logs no test metrics


def _sweep_data(tiny_sweep_data, cohort, out, cache: str) -> dict:
    data = tiny_sweep_data(
        cohort, out, sweep_id="nodes", train={"epochs": 3, "early_stopping": {"enabled": False}},
        space={"optimizer.lr": {"type": "loguniform", "low": 3e-4, "high": 3e-3},
               "losses.score_consistency": {"type": "uniform", "low": 0.0, "high": 2.0}},
        sampler="random", num_samples=8, pack_size=2, asha={"enabled": False}, replicates={"seeds": 0},
        resources={"cpus_per_trial": 1, "max_concurrent_trials": 2})
    data["features"]["cache"] = {"dir": cache, "storage": "float16"}
    return data


def _metrics(config: SweepConfig) -> dict[str, dict[str, float]]:
    client = MlflowClient(config.tracking_uri())
    experiment = client.get_experiment_by_name(experiment_name(sweep_id=config.sweep_id, fm="sim-16"))
    frame = runs_frame(client, experiment.experiment_id)
    return {row["key"]: {m: row[m] for m in COMPARED} for _, row in frame.iterrows()}


def test_two_node_sweep_uses_both_nodes_and_equals_one_node(two_node_cluster, tmp_path, write_simulated,
                                                            tiny_sweep_data, request):
    cohort = write_simulated(tmp_path / "cohort", n_specimens=30, label_strength=3.0)
    two = _sweep_data(tiny_sweep_data, cohort, tmp_path / "two-nodes", str(tmp_path / "cache" / "{node}"))
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(two))
    entrypoint = ["python", "jobs/sweep.py", "--debug", "--config", str(tmp_path / "sweep.yaml")]
    done = two_node_cluster["submit"](entrypoint, timeout=360)
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-4000:]
    node_caches = sorted(p for p in (tmp_path / "cache").iterdir() if p.is_dir())
    assert len(node_caches) == 2, ("each node builds its own cache on first use", node_caches,
                                   done.stdout[-6000:])
    for node_cache in node_caches:
        assert len(list(node_cache.rglob("features.npy"))) == 1

    request.getfixturevalue("local_ray")
    one = SweepConfig.model_validate(_sweep_data(tiny_sweep_data, cohort, tmp_path / "one-node",
                                                 str(tmp_path / "local-cache")))
    run_sweep(one)
    on_two, on_one = _metrics(SweepConfig.model_validate(two)), _metrics(one)
    assert len(on_two) == 8 and on_two.keys() == on_one.keys()
    for key, metrics in on_one.items():
        for name, value in metrics.items():
            assert on_two[key][name] == pytest.approx(value, abs=1e-6), (key, name)
