"""Issue 23: a splits file that does not match the cohort is bad input. Unknown patients (a typo such
as P9999) and patients with features left without a split end `train`, `sweep` and `finetune` with
exit status 2 and one line naming the first ids and the count, before Ray, a trial or any training
starts. `raypath train` is run as the real console script in its own process."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import ray
import yaml

from raypath.cli import main
from raypath.store import FeatureStore, provenance, tiles_table

ENCODER = "tiny-uni"
PATIENTS = [f"P{i:03d}" for i in range(10)]
UNKNOWN = "1 patients have no features, e.g. ['P9999']"
MISSING = "3 patients with features have no split, e.g. ['P007', 'P008', 'P009']"


@pytest.fixture
def cohort(tmp_path) -> Path:
    """Ten patients, one slide each on two scanners: a feature store, a manifest and labels."""
    meta = provenance(encoder=ENCODER, card={"name": ENCODER}, weights_hash="w", tiling={}, tiling_hash="abc",
                      embed_dim=4)
    store = FeatureStore(tmp_path / "features", encoder=ENCODER, tiling_hash="abc")
    rows = []
    for index, patient in enumerate(PATIENTS):
        identity = {"slide_id": f"slide-{index}", "specimen_id": f"S{index}", "patient_id": patient,
                    "scanner": ("scanner-a", "scanner-b")[index % 2]}
        store.write(identity["slide_id"], tiles_table(
            slide=identity, coords=np.zeros((3, 2)), features=np.ones((3, 4), np.float32), extent_l0=224,
            tile_px=224, mpp=0.5, tissue_fraction=np.ones(3), metadata=meta))
        rows.append({**identity, "path": str(tmp_path / "slides" / f"{identity['slide_id']}.svs")})
    (tmp_path / "labels.csv").write_text("patient_id,label\n" + "".join(f"{p},{i % 2}\n"
                                                                       for i, p in enumerate(PATIENTS)))
    columns = ["slide_id", "path", "patient_id", "specimen_id", "scanner"]
    (tmp_path / "manifest.csv").write_text(",".join(columns) + "\n" + "".join(
        ",".join(str(row[c]) for c in columns) + "\n" for row in rows))
    return tmp_path


def splits_file(directory: Path, patients: list[str]) -> Path:
    path = directory / "splits.csv"
    path.write_text("patient_id,split\n" + "".join(f"{p},{('train', 'val', 'test')[i % 3]}\n"
                                                   for i, p in enumerate(patients)))
    return path


CASES = {"unknown": ([*PATIENTS, "P9999"], UNKNOWN), "missing": (PATIENTS[:7], MISSING)}


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1, err
    return errors[0]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_train_refuses_a_splits_file_that_does_not_match_the_features(cohort, case):
    """The console script, data-parallel (so it would start Ray after its checks), in a process."""
    patients, message = CASES[case]
    splits = splits_file(cohort, patients)
    env = {**os.environ, "RAY_ADDRESS": ""}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "raypath"), "train", "--features", str(cohort / "features"),
         "--encoder", ENCODER, "--labels", str(cohort / "labels.csv"), "--splits", str(splits),
         "--out", str(cohort / "model"), "--workers", "2"],
        capture_output=True, text=True, timeout=300, env=env, cwd=cohort)
    line = one_error_line(done.stderr)
    assert done.returncode == 2 and f"splits file {splits}: {message}" in line
    assert "raypath.cluster" not in done.stderr  # Ray never started
    assert not (cohort / "model").exists()


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if a command starts Ray, a sweep phase or a finetune run, or plans tiles."""
    import raypath.finetune.run as finetune_run
    from raypath.sweep import driver

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray, training or tile planning started despite a bad splits file")

    for owner, name in ((ray, "init"), (driver, "run_phase"), (finetune_run, "connect"),
                        (finetune_run, "ensure_plan")):
        monkeypatch.setattr(owner, name, forbidden)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)


@pytest.mark.parametrize("case", CASES)
def test_sweep_refuses_a_splits_file_that_does_not_match_the_features(cohort, no_ray, capsys, case):
    patients, message = CASES[case]
    splits = splits_file(cohort, patients)
    config = cohort / "sweep.yaml"
    config.write_text(yaml.safe_dump({"sweep_id": "splits", "output_dir": str(cohort / "sweep"), "features": {
        "root": str(cohort / "features"), "fms": [ENCODER], "labels": str(cohort / "labels.csv"),
        "splits": str(splits)}}))
    code = main(["sweep", "--config", str(config)])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and f"splits file {splits}: {message}" in line


@pytest.mark.parametrize("case", CASES)
def test_finetune_refuses_a_splits_file_that_does_not_match_the_manifest(cohort, no_ray, capsys, case):
    patients, message = CASES[case]
    splits = splits_file(cohort, patients)
    code = main(["finetune", "--manifest", str(cohort / "manifest.csv"),
                 "--labels", str(cohort / "labels.csv"), "--splits", str(splits),
                 "--out", str(cohort / "finetune"),
                 "--set", "losses.tile_consistency=0", "--set", "fm_tile_consistency=0",
                 "--set", "tiling.grid=per_scan"])  # no registration: scans on their own grids
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and f"splits file {splits}: {message}" in line


def test_a_malformed_splits_row_is_named_by_file_and_line(cohort, no_ray, capsys):
    splits = cohort / "splits.csv"
    splits.write_text("patient_id,split\nP000,train\nP001,tset\n")
    code = main(["train", "--features", str(cohort / "features"), "--encoder", ENCODER,
                 "--labels", str(cohort / "labels.csv"), "--splits", str(splits)])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "splits.csv line 3, column 'split': 'tset' is not one of" in line
