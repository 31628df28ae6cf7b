"""The per-arm ASHA: a control pack is stopped only by control packs, robust packs only by robust ones."""

import pickle
from types import SimpleNamespace

from ray.tune.schedulers import TrialScheduler

from raypath.sweep.schedulers import ArmASHA, is_control_pack


def _trial(trial_id: str, *, control: bool) -> SimpleNamespace:
    pack = [{"baseline": control}, {"baseline": control}]
    return SimpleNamespace(trial_id=trial_id, config={"phase": "search", "pack": pack})


def _scheduler() -> ArmASHA:
    return ArmASHA(time_attr="epoch", metric="objective", mode="max", max_t=9, grace_period=1,
                   reduction_factor=2)


def _report(scheduler: ArmASHA, trial, value: float) -> str:
    return scheduler.on_trial_result(None, trial, {"epoch": 1, "objective": value})


def test_a_weak_control_pack_survives_strong_robust_packs():
    scheduler = _scheduler()
    robust = [_trial(f"r{i}", control=False) for i in range(4)]
    control = _trial("c0", control=True)
    for trial in [*robust, control]:
        scheduler.on_trial_add(None, trial)
    for i, trial in enumerate(robust):
        _report(scheduler, trial, 0.9 + i * 0.01)
    assert _report(scheduler, control, 0.5) == TrialScheduler.CONTINUE


def test_a_weak_pack_is_still_stopped_within_its_own_arm():
    scheduler = _scheduler()
    trials = [_trial(f"c{i}", control=True) for i in range(4)] + [_trial("weak", control=True)]
    for trial in trials:
        scheduler.on_trial_add(None, trial)
    for i, trial in enumerate(trials[:4]):
        _report(scheduler, trial, 0.9 + i * 0.01)
    assert _report(scheduler, trials[-1], 0.1) == TrialScheduler.STOP


def test_mixed_packs_count_as_robust_and_the_scheduler_pickles():
    assert not is_control_pack(SimpleNamespace(config={"pack": [{"baseline": True}, {"baseline": False}]}))
    assert not is_control_pack(SimpleNamespace(config={"phase": "replicate"}))
    scheduler = _scheduler()
    scheduler.on_trial_add(None, _trial("c0", control=True))
    assert pickle.loads(pickle.dumps(scheduler)).arm_of == {"c0": True}
