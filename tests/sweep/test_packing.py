"""The packing searcher: exactly num_samples configurations in packs sharing their pack keys, asked
in batches and told in pack order, so what it suggests does not depend on which trial finishes
first nor on a driver restart; its state is JSON."""

import json
import random

import pytest
from ray.tune.search import Searcher
from test_sweep import SPACE

from raypath.sweep.config import SweepConfig
from raypath.sweep.packing import PackedOptunaSearcher
from raypath.sweep.searcher_state import PackListSearcher, SearcherStateError
from raypath.sweep.space import ROBUST_KEYS, baseline_params, pack_keys, to_optuna


def _searcher(*, num_samples: int = 10, pack_size: int = 4, batch: int = 2, sampler: str = "random",
              baseline_share: float = 0.0, objectives: int = 2, tail_width: int = 1) -> PackedOptunaSearcher:
    config = SweepConfig.model_validate({
        "sweep_id": "unit", "features": {"root": "/nowhere", "fms": ["fm"], "labels": "/nowhere.csv"},
        "space": SPACE, "train": {"model": {"hidden": 16, "dropout": 0.0}}})
    return PackedOptunaSearcher(
        space=to_optuna(config.space), metrics=["val/auc", "val/score_spread"][:objectives],
        modes=["max", "min"][:objectives], sampler=sampler, num_configs=num_samples, pack_size=pack_size,
        pack_keys=pack_keys(config.space), baseline=baseline_params(config.space, config.train),
        sweep_id="unit", fm="fm", seed=0, robust_keys=ROBUST_KEYS, baseline_share=baseline_share,
        batch_packs=batch, tail_width=tail_width)


def _result(pack: dict, *, silent: int = 0) -> dict:
    """A pack's final report: metrics that depend only on the member's parameters."""
    members = pack["pack"][silent:]
    return {"members": [{"key": m["key"], "metrics": {"val/auc": 1 - m["params"]["optimizer.lr"] * 10,
                                                      "val/score_spread": m["params"]["losses.infonce"]}}
                        for m in members]}


def _drive(searcher: PackedOptunaSearcher, *, order: int = 0, slots: int = 2) -> list[dict]:
    """Tune's loop with `slots` trials at a time: ask while a slot is free, else let one of the running
    packs finish, which one chosen at random (seeded by `order`): another order of completion."""
    packs, running, pick = [], {}, random.Random(order)
    while True:
        pack = searcher.suggest(f"t{len(packs)}") if len(running) < slots else None
        if pack is not None and pack is not Searcher.FINISHED:
            packs.append(pack)
            running[f"t{len(packs) - 1}"] = pack
            continue
        if pack is Searcher.FINISHED and not running:
            return packs
        assert running, "the searcher waits while nothing runs"
        trial_id = pick.choice(sorted(running))
        searcher.on_trial_complete(trial_id, _result(running.pop(trial_id)))


def test_packs_exactly_num_samples_baseline_first_sharing_pack_keys():
    packs = _drive(_searcher())
    assert [len(p["pack"]) for p in packs] == [4, 4, 2]
    assert [p["batch"] for p in packs] == [0, 0, 1] and [p["pack_index"] for p in packs] == [0, 1, 2]
    first = packs[0]["pack"][0]
    assert first["baseline"] and first["params"]["losses.infonce"] == 0.0
    for pack in packs:
        for key in ("model.hidden", "model.dropout"):
            assert len({m["params"][key] for m in pack["pack"]}) == 1
    members = [m for p in packs for m in p["pack"]]
    assert len({m["key"] for m in members}) == 10 and [m["index"] for m in members] == list(range(10))


def test_a_batch_is_asked_once_the_batch_before_the_last_has_ended():
    searcher = _searcher(num_samples=24, batch=2)
    first, second = searcher.suggest("a"), searcher.suggest("b")
    assert [searcher.suggest(t)["batch"] for t in "cd"] == [1, 1]  # two batches in flight
    assert searcher.suggest("e") is None
    searcher.on_trial_complete("b", _result(second))
    assert searcher.suggest("e") is None  # "a" still runs: batch 0 has not ended
    searcher.on_trial_complete("a", _result(first))
    assert searcher.suggest("e")["batch"] == 2
    robust = searcher._records("robust", 2)  # what batch 2 was asked from
    assert [("values" in r) for r in robust] == [True] * 8 + [False] * 8  # batch 1 as running trials


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random"])
def test_suggestions_do_not_depend_on_the_order_trials_finish_in(sampler):
    runs = [_drive(_searcher(num_samples=24, pack_size=2, batch=3, sampler=sampler, baseline_share=0.25),
                   order=o, slots=s) for o, s in ((0, 1), (3, 2), (5, 3), (7, 6))]
    params = [[m["params"] for p in packs for m in p["pack"]] for packs in runs]
    assert params[0] == params[1] == params[2] == params[3]
    assert len({json.dumps(p, sort_keys=True) for p in params[0]}) > 12  # the search moved


def test_a_tapered_tail_ends_on_small_packs_and_still_ignores_the_order_trials_finish_in():
    runs = [_drive(_searcher(num_samples=40, pack_size=4, batch=2, sampler="tpe", baseline_share=0.25,
                             tail_width=2), order=o, slots=2) for o in (0, 3, 5)]
    sizes = [len(p["pack"]) for p in runs[0]]
    assert sizes[:4] == [4, 4, 4, 4] and sizes[-3:] == [1, 1, 1] and sum(sizes) == 40
    params = [[m["params"] for p in packs for m in p["pack"]] for packs in runs]
    assert params[0] == params[1] == params[2]
    members = [m for p in runs[0] for m in p["pack"]]
    assert [m["index"] for m in members] == list(range(40))


def test_a_restored_searcher_continues_exactly_as_an_uninterrupted_one(tmp_path):
    reference = _drive(_searcher(num_samples=16, pack_size=2, sampler="tpe"))
    searcher = _searcher(num_samples=16, pack_size=2, sampler="tpe")
    packs = [searcher.suggest("t0"), searcher.suggest("t1")]
    searcher.on_trial_complete("t0", _result(packs[0]))
    searcher.on_trial_complete("t1", _result(packs[1]))
    packs.append(searcher.suggest("t2"))  # mid-batch: t2 runs, t3 is asked but not handed out
    searcher.save(str(tmp_path / "searcher-state-x.pkl"))
    state = json.loads((tmp_path / "searcher-state-x.pkl").read_text())  # data, not a pickle
    assert state["handed"] == 3 and state["pending"] == {"t2": 2}

    restored = _searcher(num_samples=16, pack_size=2, sampler="tpe")
    restored.restore(str(tmp_path / "searcher-state-x.pkl"))
    packs.append(restored.suggest("t3"))
    restored.on_trial_complete("t2", _result(packs[2]))
    restored.on_trial_complete("t3", _result(packs[3]))
    while (pack := restored.suggest(f"t{len(packs)}")) is not Searcher.FINISHED:
        packs.append(pack)
        restored.on_trial_complete(f"t{len(packs) - 1}", _result(pack))
    assert [p["pack"] for p in packs] == [p["pack"] for p in reference]


def test_failed_or_silent_members_are_told_as_failed():
    searcher = _searcher(num_samples=4, batch=1)
    pack = searcher.suggest("t0")
    searcher.on_trial_complete("t0", _result(pack, silent=3))
    assert [v is None for v in searcher.outcomes[0]] == [True, True, True, False]
    second = _searcher(num_samples=8, batch=1)
    second.on_trial_complete("t0", _result(second.suggest("t0")), error=True)
    assert second.outcomes[0] == [None] * 4


def test_the_tuned_control_searches_shared_hyperparameters_with_losses_off():
    packs = _drive(_searcher(num_samples=16, pack_size=4, batch=2, baseline_share=0.25, objectives=1))
    members = [m for p in packs for m in p["pack"]]
    baselines = [m for m in members if m["baseline"]]
    assert len(members) == 16 and len(baselines) == 4 and packs[0]["pack"][0]["baseline"]
    assert baselines[0]["params"]["losses.infonce"] == 0.0 and baselines[0]["params"]["optimizer.lr"] == 1e-3
    assert all(m["params"][k] == 0.0 for m in baselines for k in ROBUST_KEYS if k in m["params"])
    assert len({m["params"]["optimizer.lr"] for m in baselines}) == 4  # shared hyperparameters are tuned
    arms = [{m["baseline"] for m in p["pack"]} for p in packs]
    assert all(len(arm) == 1 for arm in arms)


def test_a_state_file_that_is_not_json_is_refused_unread(tmp_path):
    import pickle

    path = tmp_path / "searcher-state-x.pkl"
    path.write_bytes(pickle.dumps({"issued": 3}))
    with pytest.raises(SearcherStateError, match="not a raypath searcher state"):
        _searcher().restore(str(path))
    replicates = PackListSearcher([{"pack": [1]}, {"pack": [2]}])
    assert replicates.suggest("a") == {"pack": [1]}
    replicates.save(str(tmp_path / "r.pkl"))
    again = PackListSearcher([{"pack": [1]}, {"pack": [2]}])
    again.restore(str(tmp_path / "r.pkl"))
    assert again.suggest("b") == {"pack": [2]} and again.suggest("c") is Searcher.FINISHED
