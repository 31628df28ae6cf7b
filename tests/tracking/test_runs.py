"""The MLflow ledger: stable trial keys, no duplicate runs on retries or resumes, no runs left RUNNING."""

import pickle

import pytest
from mlflow.entities import ViewType

from raypath.tracking.runs import RunLedger, config_key, experiment_name, trial_key


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    """One SQLite store for the module (creating its schema is the slow part); one experiment per test."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def ledger(tracking_uri, request, tmp_path):
    return RunLedger(
        tracking_uri=tracking_uri,
        experiment=experiment_name(sweep_id=request.node.name, fm="fm"),
        artifact_location=str(tmp_path / "artifacts"),
    )


def _key(**changes):
    args = {
        "sweep_id": "s",
        "fm": "fm",
        "params": {"a": 0.1, "b": 2},
        "seed": 0,
        "phase": "search",
        "index": 0,
    }
    return trial_key(**{**args, **changes})


def test_trial_key_is_stable_and_sensitive_to_what_defines_a_trial():
    assert _key() == _key(params={"b": 2, "a": 0.1})
    for change in (
        {"seed": 1},
        {"params": {"a": 0.2, "b": 2}},
        {"fm": "other"},
        {"sweep_id": "t"},
        {"phase": "replicates"},
        {"index": 1},
    ):
        assert _key(**change) != _key(), change
    same = config_key(sweep_id="s", fm="fm", params={"a": 0.1})
    assert same == config_key(sweep_id="s", fm="fm", params={"a": 0.1})


def test_a_key_tune_starts_again_keeps_only_the_new_attempt(ledger):
    """Issue 16, case 7: a finished run whose trial Tune retrains (restored from an older state)
    is replaced: MLflow then holds exactly the results Tune and Optuna used."""
    run_id = ledger.start(key="k1", name="n", params={"lr": 0.1}, tags={"t": "1"})
    ledger.log_metrics(run_id, {"val/auc": 0.7, "val/probe": float("nan")}, step=1)
    ledger.end(run_id, status="FINISHED")
    assert ledger.client.get_run(run_id).data.metrics == {"val/auc": 0.7}  # NaN is never logged
    again = ledger.start(key="k1", name="n", params={"lr": 0.1}, tags={})
    active = ledger.client.search_runs([ledger.experiment_id], run_view_type=ViewType.ACTIVE_ONLY)
    assert [r.info.run_id for r in active] == [again] and again != run_id
    assert ledger.client.get_run(again).data.tags["raypath.attempt"] == "2"


def test_a_parent_run_is_reopened_not_duplicated_and_children_nest_under_it(ledger):
    parent = ledger.open_parent(key="phase", name="fm/search", tags={})
    ledger.end(parent, status="KILLED")
    assert ledger.open_parent(key="phase", name="fm/search", tags={}) == parent
    assert ledger.client.get_run(parent).info.status == "RUNNING"
    child = ledger.start(key="c", name="fm/search/0000", params={f"p{i}": i for i in range(150)}, tags={},
                         parent=parent)
    run = ledger.client.get_run(child)
    assert run.data.tags["mlflow.parentRunId"] == parent and len(run.data.params) == 150


def test_an_unfinished_key_is_replaced_not_duplicated(ledger):
    first = ledger.start(key="k2", name="n", params={}, tags={})
    ledger.log_metrics(first, {"val/auc": 0.5}, step=1)
    second = ledger.start(key="k2", name="n", params={}, tags={})
    assert second != first
    active = ledger.client.search_runs([ledger.experiment_id], run_view_type=ViewType.ACTIVE_ONLY)
    assert [r.info.run_id for r in active] == [second]
    assert ledger.client.get_run(second).data.tags["raypath.attempt"] == "2"
    assert ledger.client.get_run(second).data.metrics == {}


def test_close_stale_kills_only_running_runs(ledger):
    running = ledger.start(key="r", name="n", params={}, tags={})
    done = ledger.start(key="d", name="n", params={}, tags={})
    ledger.end(done, status="FINISHED")
    assert ledger.close_stale() == 1
    assert ledger.client.get_run(running).info.status == "KILLED"
    assert ledger.client.get_run(done).info.status == "FINISHED"
    assert ledger.close_stale() == 0


def test_ledger_pickles_without_its_client(ledger):
    ledger.start(key="p", name="n", params={}, tags={})
    restored = pickle.loads(pickle.dumps(ledger))
    assert restored.find("p") is not None


def test_trial_runs_are_named_by_what_they_train_seed_and_fold(ledger):
    """`raypath train`'s label (baseline or robust with its loss weights, seed, fold) and the member's
    position in its phase; the run nests under the phase's parent."""
    from types import SimpleNamespace

    from mlflow.entities import Dataset

    from raypath.sweep.callback import MlflowSweepCallback
    from raypath.sweep.packing import make_member
    from raypath.sweep.replicates import replicate_units

    robust_keys = ("losses.infonce", "losses.score_consistency")
    (seed, fold), *_ = replicate_units(mode="folds", count=3, base_seed=2)
    common = {"sweep_id": "s", "fm": "fm", "robust_keys": robust_keys, "phase": "replicates"}
    pack = [make_member(params={"losses.infonce": 0.0, "losses.score_consistency": 0.0}, seed=seed, index=0,
                        overrides=fold, **common),
            make_member(params={"losses.infonce": 0.3, "losses.score_consistency": 0.0}, seed=seed, index=7,
                        overrides=fold, **common)]
    dataset = Dataset(name="fm/tiling", digest="d", source_type="raypath-feature-store", source="{}")
    callback = MlflowSweepCallback(ledger=ledger, sweep_id="s", fm="fm", phase="replicates", train={},
                                   dataset=dataset, tags={}, data={})
    callback.setup()
    callback.on_trial_start(0, [], SimpleNamespace(trial_id="t0", config={"pack": pack}))
    names = {ledger.find(m["key"]).info.run_name for m in pack}
    assert names == {"baseline seed 3 fold 0 (replicates 0000)",
                     "robust infonce=0.3 seed 3 fold 0 (replicates 0007)"}
