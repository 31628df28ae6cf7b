"""Sweep plumbing: search space, config checks and the replicate grid (the searcher: test_packing.py)."""

import pytest

from raypath.config import ConfigError, load_config
from raypath.sweep.config import SweepConfig
from raypath.sweep.replicates import replicate_packs, replicate_units
from raypath.sweep.space import ROBUST_KEYS, baseline_params, pack_keys

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


def test_the_pack_plan_covers_every_configuration_and_keeps_the_control_share():
    from raypath.sweep.packing import pack_plan

    for configs, size, control in ((12, 2, 3), (1024, 8, 256), (10, 4, 2), (7, 8, 0)):
        plan = pack_plan(num_configs=configs, pack_size=size, n_baseline=control)
        assert sum(s for _, s in plan) == configs and sum(s for arm, s in plan if arm) == control
        assert all(0 < s <= size for _, s in plan)
        if control:
            assert plan[0][0], "the control comes first"


def test_a_tapered_plan_ends_on_packs_that_leave_work_for_the_other_slots():
    from raypath.sweep.packing import pack_plan

    for configs, size, control, width in ((1024, 8, 256, 2), (1024, 8, 0, 2), (100, 8, 25, 4), (10, 4, 0, 2)):
        plan = pack_plan(num_configs=configs, pack_size=size, n_baseline=control, width=width)
        assert sum(s for _, s in plan) == configs and sum(s for arm, s in plan if arm) == control
        left = configs
        for _, s in plan:
            assert s <= max(1, -(-left // (2 * width)))  # at most a share of what is left, rounded up
            left -= s
        assert plan[-1][1] == 1 and len(plan) < configs / size + 4 * width * size ** 0.5
    flat = pack_plan(num_configs=1024, pack_size=8, n_baseline=256)
    assert pack_plan(num_configs=1024, pack_size=8, n_baseline=256, width=1) == flat
    assert [s for _, s in pack_plan(num_configs=1024, pack_size=8, n_baseline=0, width=2)[-10:]] == [
        8, 6, 5, 4, 3, 2, 1, 1, 1, 1]
