"""The Tune callback that mirrors packed trials into MLflow from the driver process.

A Tune trial trains a *pack* of configurations (see `raypath.train.engine`); each member becomes its
own MLflow run, because a "trial" in every report and count is one trained configuration. Trials
report `{"epoch": e, "members": [{"key": ..., "metrics": {...}}, ...]}`; checkpoints hold one
sub-directory per member key with its weights and predictions.
"""

import json
import logging
from pathlib import Path
from typing import Any

from ray.tune import Callback

from raypath.sweep.tracking import (
    TAG_BASELINE,
    TAG_CONFIG,
    TAG_FM,
    TAG_PARAMS,
    TAG_PHASE,
    TAG_SEED,
    TAG_SWEEP,
    RunLedger,
)

log = logging.getLogger(__name__)


class MlflowSweepCallback(Callback):
    """Open, fill and close one MLflow run per pack member; idempotent across restores."""

    def __init__(self, *, ledger: RunLedger, sweep_id: str, fm: str, max_epochs: int) -> None:
        self.ledger = ledger
        self.sweep_id = sweep_id
        self.fm = fm
        self.max_epochs = max_epochs
        self._runs: dict[str, dict[str, str | None]] = {}
        self._last_epoch: dict[str, int] = {}

    def setup(self, **info: Any) -> None:
        """No trial of this sweep is alive before the driver starts: anything RUNNING was killed."""
        self.ledger.close_stale()

    def _tags(self, member: dict[str, Any], trial: Any) -> dict[str, str]:
        return {
            TAG_SWEEP: self.sweep_id,
            TAG_FM: self.fm,
            TAG_CONFIG: member["config_key"],
            TAG_BASELINE: str(bool(member["baseline"])).lower(),
            TAG_PHASE: trial.config["phase"],
            TAG_SEED: str(member["seed"]),
            TAG_PARAMS: json.dumps(member["params"], sort_keys=True),
            "raypath.tune_trial": trial.trial_id,
        }

    def _open(self, trial: Any) -> dict[str, str | None]:
        if trial.trial_id not in self._runs:
            self._runs[trial.trial_id] = {
                m["key"]: self.ledger.start(
                    key=m["key"],
                    name=f"{trial.trial_id}-{m['index']}",
                    params=m["params"],
                    tags=self._tags(m, trial),
                )
                for m in trial.config["pack"]
            }
        return self._runs[trial.trial_id]

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._runs.pop(trial.trial_id, None)
        self._open(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        runs = self._open(trial)
        epoch = int(result.get("epoch", 0))
        self._last_epoch[trial.trial_id] = epoch
        for member in result.get("members", []):
            run_id = runs.get(member["key"])
            if run_id is not None:
                self.ledger.log_metrics(run_id, member["metrics"], step=epoch)

    def _close(self, trial: Any, status: str) -> None:
        early = self._last_epoch.get(trial.trial_id, 0) < self.max_epochs
        for run_id in self._runs.pop(trial.trial_id, {}).values():
            if run_id is not None:
                if status == "FINISHED":
                    self.ledger.set_tags(run_id, {"raypath.stopped_early": str(early).lower()})
                self.ledger.end(run_id, status=status)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial, "FAILED")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A retried trial's runs end FAILED; the retry replaces them under the same keys."""
        self._close(trial, "FAILED")

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        """Log each member's weights and predictions into its own run."""
        runs = self._open(trial)
        with checkpoint.as_directory() as directory:
            for key, run_id in runs.items():
                member_dir = Path(directory) / key
                if run_id is not None and member_dir.is_dir():
                    self.ledger.client.log_artifacts(run_id, str(member_dir), artifact_path="model")

    def __getstate__(self) -> dict[str, Any]:
        """Open-run bookkeeping is per driver process; a restored driver rebuilds it."""
        return {**self.__dict__, "_runs": {}, "_last_epoch": {}}
