"""Sweep plumbing: search space, packing searcher, replicate grid; then a real sweep end to end."""

import pickle

import optuna
import pytest
from ray.tune.search import Searcher

from raypath.config import ConfigError, load_config
from raypath.sweep.config import SweepConfig
from raypath.sweep.packing import PackedOptunaSearcher
from raypath.sweep.replicates import replicate_packs, replicate_units
from raypath.sweep.space import ROBUST_KEYS, baseline_params, pack_keys, to_optuna

SPACE = {
    "optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
    "losses.infonce": {"type": "uniform", "low": 0.0, "high": 1.0},
    "losses.tau": {"type": "uniform", "low": 0.05, "high": 0.5},
    "model.hidden": {"type": "choice", "values": [16, 32]},
    "model.dropout": {"type": "choice", "values": [0.0, 0.1]},
}


def _config(**changes) -> SweepConfig:
    data = {
        "sweep_id": "unit",
        "features": {"root": "/nowhere", "fms": ["fm"], "labels": "/nowhere.csv"},
        "space": SPACE,
        "train": {"model": {"hidden": 16, "dropout": 0.0}},
        "num_samples": 10,
        "pack_size": 4,
    }
    return SweepConfig.model_validate({**data, **changes})


def _searcher(config: SweepConfig) -> PackedOptunaSearcher:
    return PackedOptunaSearcher(
        space=to_optuna(config.space),
        metrics=["val/auc", "val/score_spread"],
        modes=["max", "min"],
        sampler=optuna.samplers.RandomSampler(seed=0),
        num_configs=config.num_samples,
        pack_size=config.pack_size,
        pack_keys=pack_keys(config.space),
        baseline=baseline_params(config.space, config.train),
        sweep_id="unit",
        fm="fm",
        seed=0,
        robust_keys=ROBUST_KEYS,
    )


def test_space_splits_per_member_parameters_from_pack_keys():
    config = _config()
    assert pack_keys(config.space) == ["model.dropout", "model.hidden"]
    assert baseline_params(config.space, config.train) == {
        "optimizer.lr": 1e-3,
        "losses.infonce": 0.0,
        "losses.tau": 0.1,
        "model.hidden": 16,
        "model.dropout": 0.0,
    }


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"losses.infonce": {"type": "loguniform", "low": 1e-3, "high": 1.0}},
            "baseline value 0.0 is outside",
        ),
        ({"model.widht": {"type": "choice", "values": [1]}}, "'widht' is not a field"),
        ({"model.hidden": {"type": "uniform", "low": 2.0, "high": 1.0}}, "low < high"),
    ],
)
def test_bad_spaces_are_rejected_naming_the_key(tmp_path, space, message):
    path = tmp_path / "sweep.yaml"
    path.write_text("sweep_id: x\nfeatures: {root: /r, fms: [f], labels: /l.csv}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(SweepConfig, path, overrides=[f"space={space}"])


def test_fixed_nonzero_weight_would_lose_the_baseline():
    with pytest.raises(ValueError, match="all-zero baseline"):
        _config(train={"losses": {"adversarial": 0.5}})


def test_searcher_packs_exactly_num_samples_baseline_first_and_shares_pack_keys():
    searcher = _searcher(_config())
    packs = []
    while (pack := searcher.suggest(f"t{len(packs)}")) is not Searcher.FINISHED:
        packs.append(pack["pack"])
    assert [len(p) for p in packs] == [4, 4, 2]
    assert packs[0][0]["baseline"] and packs[0][0]["params"]["losses.infonce"] == 0.0
    assert sum(m["baseline"] for p in packs for m in p) == 1
    for pack in packs:
        for key in ("model.hidden", "model.dropout"):
            assert len({m["params"][key] for m in pack}) == 1
    assert len({m["key"] for p in packs for m in p}) == 10


def test_searcher_state_survives_a_save_and_restore(tmp_path):
    searcher = _searcher(_config())
    first = searcher.suggest("t0")
    searcher.on_trial_complete(
        "t0",
        {
            "members": [
                {"key": m["key"], "metrics": {"val/auc": 0.7, "val/score_spread": 0.1}} for m in first["pack"]
            ]
        },
    )
    searcher.suggest("t1")
    searcher.save(str(tmp_path / "state.pkl"))
    restored = _searcher(_config())
    restored.restore(str(tmp_path / "state.pkl"))
    assert restored.issued == 8 and set(restored.pending) == {"t1"}
    assert len(restored.study.get_trials(states=[optuna.trial.TrialState.COMPLETE])) == 4
    assert restored.suggest("t2")["pack"][0]["index"] == 8
    assert restored.suggest("t3") is Searcher.FINISHED
    assert pickle.loads(pickle.dumps(restored.study)).trials


def test_failed_or_silent_members_are_told_as_failed():
    searcher = _searcher(_config())
    pack = searcher.suggest("t0")["pack"]
    reported = {"members": [{"key": pack[0]["key"], "metrics": {"val/auc": 0.6, "val/score_spread": 0.2}}]}
    searcher.on_trial_complete("t0", reported)
    states = [t.state for t in searcher.study.trials[:4]]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 1
    assert states.count(optuna.trial.TrialState.FAIL) == 3


def test_replicate_grid_covers_each_config_and_seed_once_paired_by_seed():
    configs = [
        {"model.hidden": 16, "losses.infonce": 0.0},
        {"model.hidden": 16, "losses.infonce": 0.4},
        {"model.hidden": 32, "losses.infonce": 0.2},
    ]
    packs = replicate_packs(
        configs=configs,
        units=replicate_units(mode="seeds", count=2, base_seed=0),
        pack_keys=["model.hidden"],
        pack_size=8,
        sweep_id="s",
        fm="f",
        robust_keys=ROBUST_KEYS,
    )
    members = [m for p in packs for m in p["pack"]]
    assert len(members) == 6 and len({m["key"] for m in members}) == 6
    assert {(m["seed"], m["params"]["losses.infonce"]) for m in members} == {
        (s, w) for s in (1, 2) for w in (0.0, 0.4, 0.2)
    }
    for pack in packs:
        assert len({m["seed"] for m in pack["pack"]}) == 1
        assert len({m["params"]["model.hidden"] for m in pack["pack"]}) == 1
    assert sum(m["baseline"] for m in members) == 2


def test_fold_replicates_share_a_config_key_and_differ_in_their_split():
    packs = replicate_packs(configs=[{"losses.infonce": 0.0}, {"losses.infonce": 0.5}],
                            units=replicate_units(mode="folds", count=3, base_seed=0), pack_keys=[],
                            pack_size=8, sweep_id="s", fm="f", robust_keys=ROBUST_KEYS)
    members = [m for p in packs for m in p["pack"]]
    assert len(packs) == 3 and len({m["key"] for m in members}) == 6
    assert len({m["config_key"] for m in members}) == 2
    assert sorted({m["overrides"]["split.fold"] for m in members}) == [0, 1, 2]
    assert all(m["overrides"]["split.source"] == "folds" for m in members)
    for pack in packs:
        assert len({m["overrides"]["split.fold"] for m in pack["pack"]}) == 1


def test_folds_mode_refuses_a_predefined_split(tmp_path):
    features = {"root": str(tmp_path), "fms": ["x"], "labels": str(tmp_path / "l.csv"),
                "splits": str(tmp_path / "s.csv")}
    data = {"sweep_id": "f", "features": features, "replicates": {"mode": "folds", "seeds": 5}}
    with pytest.raises(ValueError, match="folds"):
        SweepConfig.model_validate(data)


def test_features_root_may_be_an_object_store_uri(tmp_path):
    config = SweepConfig.model_validate({"sweep_id": "s3", "features": {
        "root": "s3://bucket/features", "fms": ["uni"], "labels": str(tmp_path / "labels.csv")}})
    assert config.features.root == "s3://bucket/features"


def test_the_tuned_control_searches_shared_hyperparameters_with_losses_off():
    config = _config(num_samples=16)
    searcher = PackedOptunaSearcher(
        space=to_optuna(config.space), metrics=["val/auc"], modes=["max"],
        sampler=optuna.samplers.RandomSampler(seed=0), num_configs=16, pack_size=4,
        pack_keys=pack_keys(config.space), baseline=baseline_params(config.space, config.train),
        sweep_id="unit", fm="fm", seed=0, robust_keys=ROBUST_KEYS, baseline_share=0.25,
        baseline_sampler=optuna.samplers.RandomSampler(seed=1))
    packs = []
    while (pack := searcher.suggest(f"t{len(packs)}")) is not Searcher.FINISHED:
        packs.append(pack["pack"])
    members = [m for p in packs for m in p]
    baselines = [m for m in members if m["baseline"]]
    assert len(members) == 16 and len(baselines) == 4 and packs[0][0]["baseline"]
    assert baselines[0]["params"] == baseline_params(config.space, config.train)  # the untuned control first
    assert all(m["params"][k] == 0.0 for m in baselines for k in ROBUST_KEYS if k in m["params"])
    assert len({m["params"]["optimizer.lr"] for m in baselines}) == 4  # shared hyperparameters are tuned
    assert all(all(m["baseline"] for m in p) or not any(m["baseline"] for m in p) for p in packs)
    searcher.on_trial_complete("t0", {"members": [{"key": m["key"], "metrics": {"val/auc": 0.7}}
                                                  for m in packs[0]]})
    assert len(searcher.baseline_study.get_trials(states=[optuna.trial.TrialState.COMPLETE])) == 4


def test_the_pack_plan_covers_every_configuration_and_keeps_the_control_share():
    from raypath.sweep.packing import pack_plan

    for configs, size, control in ((12, 2, 3), (1024, 8, 256), (10, 4, 2), (7, 8, 0)):
        plan = pack_plan(num_configs=configs, pack_size=size, n_baseline=control)
        assert sum(s for _, s in plan) == configs and sum(s for arm, s in plan if arm) == control
        assert all(0 < s <= size for _, s in plan)
        if control:
            assert plan[0][0], "the control comes first"
