"""A progress bar in trained configurations (pack members), not Tune trials."""

from typing import Any

from ray.tune import Callback

from raypath.logs import ProgressBar


class ProgressCallback(Callback):
    """tqdm over finished configurations; Tune's own table is off (verbose=0) at thousands of trials."""

    def __init__(self, *, total: int, description: str) -> None:
        self.total, self.description = total, description
        self._bar: ProgressBar | None = None

    def setup(self, **info: Any) -> None:
        self._bar = ProgressBar(total=self.total, desc=self.description, unit="config", leave=False)

    def _advance(self, trial: Any) -> None:
        if self._bar is not None:
            self._bar.update(len(trial.config.get("pack", [])))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._advance(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._advance(trial)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._bar is not None:
            self._bar.close()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_bar": None}
