"""Complete phases only: how a stopped phase is reported, and `raypath compare` refusing a sweep whose
phases did not all complete (MLflow records written by hand, no Ray)."""

import signal

import pytest
from mlflow import MlflowClient

from raypath.compare.config import CompareConfig
from raypath.compare.run import compare_sweep
from raypath.sweep.phases import (
    TAG_COMPLETE,
    TAG_DONE,
    TAG_PHASES,
    TAG_TOTAL,
    IncompleteSweepError,
    StopRequest,
    incomplete_phases,
)
from raypath.tracking.runs import RunLedger, phase_key


def _sweep(tmp_path, *, phases: str | None, search: bool | None, replicates: bool | None) -> MlflowClient:
    """One FM's experiment with its phase runs (None: the phase never started)."""
    ledger = RunLedger(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="raypath/s/fm")
    if phases is not None:
        ledger.tag_experiment({TAG_PHASES: phases})
    for phase, complete in (("search", search), ("replicates", replicates)):
        if complete is None:
            continue
        key = phase_key(sweep_id="s", fm="fm", phase=phase)
        ledger.open_parent(key=key, name=f"fm/{phase}", tags={"raypath.phase": phase})
        ledger.close_phase(key, complete=complete,
                           tags={TAG_COMPLETE: str(complete).lower(), TAG_DONE: "3" if not complete else "8",
                                 TAG_TOTAL: "8"})
    return ledger.client


def test_a_stopped_phase_says_where_and_exits_128_plus_the_signal():
    error = StopRequest(signal=signal.SIGINT).stopped("uni search", done=4, total=16)
    assert error.exit_code == 130
    assert str(error).startswith("uni search stopped by SIGINT after 4 of 16 configurations;")
    assert StopRequest(signal=signal.SIGTERM).stopped("uni replicates").exit_code == 143


@pytest.mark.parametrize(("search", "replicates", "named"), [
    (False, None, ["fm search (3 of 8 configurations)", "fm replicates (not started)"]),
    (True, False, ["fm replicates (3 of 8 configurations)"]),
    (True, True, []),
])
def test_incomplete_phases_are_named(tmp_path, search, replicates, named):
    client = _sweep(tmp_path, phases="search,replicates", search=search, replicates=replicates)
    experiment = client.get_experiment_by_name("raypath/s/fm").experiment_id
    assert incomplete_phases(client, experiment, fm="fm") == named


def test_compare_refuses_an_incomplete_sweep_before_writing_or_registering_anything(tmp_path):
    client = _sweep(tmp_path, phases="search,replicates", search=True, replicates=False)
    config = CompareConfig(sweep_id="s", output_dir=tmp_path)
    named = r"did not complete: fm replicates \(3 of 8 configurations\)"
    with pytest.raises(IncompleteSweepError, match=named):
        compare_sweep(config)
    assert not config.report_dir().exists() and not client.search_registered_models()


def test_replicates_of_another_selection_are_deleted_not_reused(tmp_path):
    """An earlier, shorter search replicated other configurations: its replicate runs and Tune
    directory go before the complete search's replicates run."""
    from raypath.sweep.config import SweepConfig
    from raypath.sweep.driver import _discard_stale_replicates
    from raypath.sweep.tuner import phase_seal

    config = SweepConfig.model_validate({"sweep_id": "s", "output_dir": str(tmp_path), "features": {
        "root": str(tmp_path), "fms": ["fm"], "labels": str(tmp_path / "labels.csv")}})
    ledger = RunLedger(tracking_uri=config.tracking_uri(), experiment="raypath/s/fm")
    for key in ("old-1", "old-2"):
        ledger.start(key=key, name="fm/replicates/0000", params={},
                     tags={"raypath.kind": "trial", "raypath.phase": "replicates"})
    kept = ledger.start(key="search-1", name="fm/search/0000", params={},
                        tags={"raypath.kind": "trial", "raypath.phase": "search"})
    seal = phase_seal(config, fm="fm", phase="replicates")
    (tmp_path / "tune" / seal.experiment).mkdir(parents=True)
    (tmp_path / "tune" / seal.experiment / "tuner.pkl").write_bytes(b"earlier plan")
    seal.start("the earlier search's plan")

    packs = [{"pack": [{"key": "new-1"}, {"key": "new-2"}]}]
    _discard_stale_replicates(config, fm="fm", ledger=ledger, packs=packs, plan="the complete search's plan")
    assert ledger.find("old-1") is None and ledger.find("old-2") is None
    assert ledger.find("search-1").info.run_id == kept  # the search is untouched
    assert not (tmp_path / "tune" / seal.experiment).exists() and seal.plan() is None


def _trial(ledger, key, *, config, baseline, status, metrics):
    run_id = ledger.start(key=key, name=key, params={}, tags={
        "raypath.kind": "trial", "raypath.phase": "search", "raypath.config_key": config,
        "raypath.baseline": str(baseline).lower(), "raypath.params": "{}"})
    ledger.log_metrics(run_id, metrics, step=3)
    ledger.end(run_id, status=status)


@pytest.mark.parametrize("complete", [True, False])
def test_a_parent_run_carries_the_phase_summary_also_when_the_phase_ends_early(tmp_path, complete):
    """Best validation metrics of the phase (the best configuration's objectives), configurations
    finished and failed, and the driver's wall time summed over the commands that ran the phase."""
    from raypath.sweep.config import SweepConfig
    from raypath.sweep.driver import _close_phase
    from raypath.sweep.phases import SweepStoppedError
    from raypath.sweep.summary import TAG_BEST_CONFIG

    config = SweepConfig.model_validate({"sweep_id": "s", "output_dir": str(tmp_path), "features": {
        "root": str(tmp_path), "fms": ["fm"], "labels": str(tmp_path / "labels.csv")},
        "objectives": [{"metric": "val/auc", "mode": "max"}, {"metric": "val/score_spread", "mode": "min"}]})
    ledger = RunLedger(tracking_uri=config.tracking_uri(), experiment="raypath/s/fm")
    key = phase_key(sweep_id="s", fm="fm", phase="search")
    ledger.open_parent(key=key, name="fm/search", tags={"raypath.phase": "search"})
    ledger.log_metrics(ledger.find(key).info.run_id, {"wall_time_s": 100.0}, step=0)  # an earlier command
    done = {"best_epoch": 2.0}
    _trial(ledger, "a", config="ca", baseline=True, status="FINISHED",
           metrics={**done, "val/auc": 0.71, "val/score_spread": 0.20, "val/loss": 0.5})
    _trial(ledger, "b", config="cb", baseline=False, status="FINISHED",
           metrics={**done, "val/auc": 0.80, "val/score_spread": 0.05, "val/loss": 0.4})
    _trial(ledger, "c", config="cc", baseline=False, status="FAILED", metrics={"val/auc": 0.99})
    stop = StopRequest(signal=signal.SIGTERM if not complete else None)
    if complete:
        _close_phase(config, fm="fm", phase="search", ledger=ledger, stop=stop, complete=True, total=3,
                     wall_s=20.5)
    else:
        with pytest.raises(SweepStoppedError, match="after 3 of 4 configurations"):
            _close_phase(config, fm="fm", phase="search", ledger=ledger, stop=stop, complete=False, total=4,
                         wall_s=20.5)
    parent = ledger.client.get_run(ledger.find(key).info.run_id)
    assert parent.info.status == ("FINISHED" if complete else "KILLED")
    assert parent.data.metrics == {"best_val_auc": 0.80, "best_val_score_spread": 0.05,
                                   "configs_finished": 2.0, "configs_failed": 1.0, "wall_time_s": 120.5}
    assert parent.data.tags[TAG_BEST_CONFIG] == "cb"
