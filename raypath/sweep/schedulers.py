"""ASHA with one set of rungs per arm, so the tuned control is never cut by the robust packs.

Plain ASHA ranks every pack on one ladder: robust packs that fit the training scanners better cut
the control's packs at the first rung, the search ends with no finished baseline, and the
comparison loses its control. Here each arm (control packs, robust packs) has its own ASHA, so a
control pack is stopped only by a better control pack: both arms are tuned with the same budget rule.
"""

from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler


def is_control_pack(trial: Trial) -> bool:
    """A pack whose members all train with every robustness weight at zero."""
    members = trial.config.get("pack") or []
    return bool(members) and all(m.get("baseline") for m in members)


class ArmASHA(FIFOScheduler):
    """Two ASHA ladders behind one scheduler: trials go to the ladder of their arm."""

    def __init__(self, **asha: Any) -> None:
        super().__init__()
        self.arms = {True: ASHAScheduler(**asha), False: ASHAScheduler(**asha)}
        self.arm_of: dict[str, bool] = {}

    def _arm(self, trial: Trial) -> ASHAScheduler:
        return self.arms[self.arm_of.setdefault(trial.trial_id, is_control_pack(trial))]

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return all([arm.set_search_properties(metric, mode, **spec) for arm in self.arms.values()])

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self._arm(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        return self._arm(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        self._arm(trial).on_trial_complete(tune_controller, trial, result)
        self.arm_of.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._arm(trial).on_trial_remove(tune_controller, trial)
        self.arm_of.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        return "\n".join(f"{'control' if control else 'robust'}: {arm.debug_string()}"
                         for control, arm in self.arms.items())

