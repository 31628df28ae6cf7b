"""Successive halving by batch: a pack is compared only with packs of its own arm from batches that
ended before its batch was asked, so its stop decisions do not depend on the order results arrive in."""

import itertools
import json
from types import SimpleNamespace

from ray.tune.schedulers import TrialScheduler

from raypath.sweep.schedulers import BatchHalving, RungBook, is_control_pack, milestones


def _trial(index: int, *, batch: int, control: bool = False) -> SimpleNamespace:
    pack = [{"baseline": control}, {"baseline": control}]
    return SimpleNamespace(trial_id=f"t{index}", config={"phase": "search", "pack": pack, "pack_index": index,
                                                          "batch": batch})


def _scheduler(book: RungBook | None = None) -> BatchHalving:
    return BatchHalving(book=book or RungBook(), metric="objective", mode="max", rungs=[1, 3],
                        reduction_factor=2)


def _report(scheduler: BatchHalving, trial, value: float, epoch: int = 1) -> str:
    return scheduler.on_trial_result(None, trial, {"epoch": epoch, "objective": value})


def test_the_rungs_are_ashas():
    assert milestones(grace_period=8, reduction_factor=3, max_t=41) == [8, 24]
    assert milestones(grace_period=1, reduction_factor=2, max_t=9) == [1, 2, 4, 8]


def test_a_pack_is_compared_only_with_batches_that_ended_before_its_own_was_asked():
    scheduler = _scheduler()
    first = [_trial(0, batch=0), _trial(1, batch=0)]
    assert [_report(scheduler, t, v) for t, v in zip(first, (0.9, 0.1), strict=True)] == [
        TrialScheduler.CONTINUE] * 2  # the first two batches have no reference: nothing is stopped
    assert _report(scheduler, _trial(2, batch=1), 0.0) == TrialScheduler.CONTINUE
    assert _report(scheduler, _trial(3, batch=2, control=True), 0.05) == TrialScheduler.CONTINUE  # own arm
    assert _report(scheduler, _trial(4, batch=2), 0.2) == TrialScheduler.STOP  # below the median of 0.9, 0.1
    assert _report(scheduler, _trial(5, batch=2), 0.8) == TrialScheduler.CONTINUE  # batch 1 is not used
    assert _report(scheduler, _trial(5, batch=2), 0.0, epoch=2) == TrialScheduler.CONTINUE  # rung 1 decided


def test_decisions_do_not_depend_on_the_order_results_arrive_in():
    values = {0: 0.5, 1: 0.7, 2: 0.1, 3: 0.9, 4: 0.65, 5: 0.3}
    trials = {i: _trial(i, batch=i // 2) for i in values}
    outcomes = set()
    for order in itertools.permutations([2, 3, 4, 5]):  # batch 0 ended before batch 2 was asked
        scheduler = _scheduler()
        decisions = {i: _report(scheduler, trials[i], values[i]) for i in (1, 0, *order)}
        outcomes.add(json.dumps(decisions, sort_keys=True))
    assert len(outcomes) == 1
    assert json.loads(outcomes.pop()) == {"0": "CONTINUE", "1": "CONTINUE", "2": "CONTINUE", "3": "CONTINUE",
                                          "4": "CONTINUE", "5": "STOP"}


def test_the_book_is_data_and_a_rerun_pack_is_not_decided_twice():
    book = RungBook()
    scheduler = _scheduler(book)
    _report(scheduler, _trial(0, batch=0), 0.9)
    restored = RungBook()
    restored.load(json.loads(json.dumps(book.to_json())))
    assert restored.entries == book.entries
    again = _scheduler(restored)
    assert _report(again, _trial(1, batch=2), 0.1) == TrialScheduler.STOP
    assert _report(again, _trial(2, batch=2), 0.95) == TrialScheduler.CONTINUE
    assert _report(again, _trial(2, batch=2), 0.0) == TrialScheduler.CONTINUE  # restarted: decided already
    assert restored.entries[("robust", 1.0, 2)] == (2, 0.95)


def test_mixed_packs_count_as_robust():
    assert not is_control_pack(SimpleNamespace(config={"pack": [{"baseline": True}, {"baseline": False}]}))
    assert not is_control_pack(SimpleNamespace(config={"phase": "replicate"}))
