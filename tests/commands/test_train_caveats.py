"""A metric computed on part of the data says so in MLflow: `raypath train` on a cohort whose test
split has a scanner holding one class logs the worst-scanner AUC with a `raypath.caveat.` tag that
names the scanner it left out (and a small test split's AUC with a 'few specimens' caveat)."""

import numpy as np
import pytest
from mlflow import MlflowClient

from raypath.cli import main
from raypath.store import FeatureStore, provenance, tiles_table

ENCODER = "toy-4"
SPLIT = ["train"] * 6 + ["val"] * 2 + ["test"] * 4


@pytest.fixture
def cohort(tmp_path):
    """12 patients scanned on A and B; scanner C scanned only the positive test patients."""
    meta = provenance(encoder=ENCODER, card={"name": ENCODER}, weights_hash="w", tiling={}, tiling_hash="abc",
                      embed_dim=4)
    store = FeatureStore(tmp_path / "features", encoder=ENCODER, tiling_hash="abc")
    rng = np.random.default_rng(0)
    for index, split in enumerate(SPLIT):
        label = index % 2
        scanners = ["A", "B"] + (["C"] if split == "test" and label else [])
        for scanner in scanners:
            identity = {"slide_id": f"P{index}-{scanner}", "specimen_id": f"S{index}",
                        "patient_id": f"P{index}", "scanner": scanner}
            features = (rng.normal(size=(3, 4)) + label).astype(np.float32)
            store.write(identity["slide_id"], tiles_table(
                slide=identity, coords=np.zeros((3, 2)), features=features, extent_l0=224, tile_px=224,
                mpp=0.5, tissue_fraction=np.ones(3), metadata=meta))
    (tmp_path / "labels.csv").write_text("patient_id,label\n" + "".join(f"P{i},{i % 2}\n" for i in range(12)))
    (tmp_path / "splits.csv").write_text("patient_id,split\n" + "".join(f"P{i},{s}\n"
                                                                       for i, s in enumerate(SPLIT)))
    return tmp_path


def test_a_worst_scanner_auc_over_some_scanners_carries_a_tag_naming_the_excluded_one(cohort):
    uri = f"sqlite:///{cohort}/mlflow.db"
    code = main(["train", "--features", str(cohort / "features"), "--encoder", ENCODER, "--labels",
                 str(cohort / "labels.csv"), "--splits", str(cohort / "splits.csv"), "--tracking-uri", uri,
                 "--set", "epochs=1", "--set", "batch_specimens=2", "--set", "model.hidden=4",
                 "--set", "model.attention_dim=4", "--set", "model.projection_dim=4",
                 "--set", "robustness_k=1"])
    assert code == 0
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(f"raypath/train/{ENCODER}")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI's training view
    run = client.search_runs([experiment.experiment_id])[0]
    kind = "baseline" if run.data.tags["raypath.baseline"] == "true" else "robust "
    assert run.info.run_name.startswith(f"{ENCODER}/train/{kind}") and run.info.run_name.endswith(" seed 0")
    assert np.isfinite(run.data.metrics["test/worst_scanner_auc"])
    caveat = run.data.tags["raypath.caveat.test/worst_scanner_auc"]
    assert "over scanners ['A', 'B'] only; excluded ['C']" in caveat
    assert "only one class on scanner C" in caveat
    assert run.data.tags["raypath.caveat.test/auc"] == "4 specimens (fewer than 10): a rough estimate"
    assert run.data.tags["raypath.split.origin"] == f"splits file {cohort / 'splits.csv'}"
    assert run.data.tags["raypath.leakage"] == "passed"


def test_run_labels_say_baseline_or_robust_with_weights_and_seed():
    from raypath.tracking.train_run import run_label
    from raypath.train.config import TrainConfig

    robust = TrainConfig.model_validate({"losses": {"score_consistency": 1.0, "infonce": 0.25}})
    off = {name: 0.0 for name in robust.losses.weights()}
    assert run_label(TrainConfig.model_validate({"losses": off}), seed=3) == "baseline seed 3"
    label = run_label(robust.model_copy(update={"losses": robust.losses.model_copy(update={
        name: 0.0 for name in off if name not in ("score_consistency", "infonce")})}), seed=0)
    assert label == "robust infonce=0.25 score_consistency=1 seed 0"
