"""`raypath train` without split flags on a cohort whose labels carry a `split` column and whose
`cohort.yaml` declares a held-out scanner (the demo cohort's layout): it trains on the labels'
split, never draws a slide of the held-out scanner into a training batch (a spy on the batches the
engine collates), and writes a passing leakage audit."""

import json

import pandas as pd
import pytest

from raypath.cli import main
from raypath.cohort.declaration import CohortDeclaration, write_declaration
from raypath.mil.sampling import Collator

HELD_OUT = "C"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, write_simulated):
    """A simulated cohort whose held-out scanner also scanned training patients (so a policy that
    forgot it would train on it); labels.csv carries the split, cohort.yaml declares the scanner."""
    root = write_simulated(tmp_path_factory.mktemp("split-cohort"), n_specimens=24, tiles=8, dim=8)
    labels = pd.read_csv(root / "labels.csv", dtype={"patient_id": str}).merge(
        pd.read_csv(root / "splits.csv", dtype={"patient_id": str}), on="patient_id")
    labels.to_csv(root / "labels.csv", index=False)
    (root / "splits.csv").unlink()
    write_declaration(CohortDeclaration(held_out_scanners=[HELD_OUT]), root)
    return root


@pytest.fixture(scope="module")
def trained(cohort, tmp_path_factory):
    """One `raypath train` run, every training batch's scanners recorded."""
    batches: list[list[str]] = []
    original = Collator.__call__

    def spy(self, slides, *, max_tiles=None, generator=None):
        if generator is not None:  # a training batch (evaluation and prediction draw no random tiles)
            batches.append(list(self.scanner_names[slides]))
        return original(self, slides, max_tiles=max_tiles, generator=generator)

    out = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Collator, "__call__", spy)
        code = main(["train", "--features", str(cohort / "features"), "--encoder", "sim-8",
                     "--labels", str(cohort / "labels.csv"), "--out", str(out), "--set", "epochs=2",
                     "--set", "batch_specimens=4", "--set", "model.hidden=8",
                     "--set", "model.attention_dim=4", "--set", "model.projection_dim=4"])
    assert code == 0
    return out, batches


def test_train_uses_the_labels_split_column(cohort, trained):
    out, _ = trained
    predictions = pd.read_csv(out / "predictions.csv", dtype={"patient_id": str})
    given = pd.read_csv(cohort / "labels.csv", dtype={"patient_id": str}).set_index("patient_id")["split"]
    expected = predictions["patient_id"].map(given)
    held = (predictions["scanner"] == HELD_OUT) & expected.isin(["train", "val"])
    assert held.any()  # the held-out scanner scanned training patients: the check below can fail
    assert predictions["split"].tolist() == expected.mask(held, "unused").tolist()
    config = json.loads((out / "config.json").read_text())["split"]
    assert config["source"] == "column" and config["held_out_scanners"] == [HELD_OUT]


def test_the_held_out_scanner_never_appears_in_a_training_batch(trained):
    _, batches = trained
    drawn = {scanner for batch in batches for scanner in batch}
    assert batches and drawn == {"A", "B"}


def test_train_writes_a_passing_leakage_audit(trained):
    out, _ = trained
    audit = json.loads((out / "leakage.json").read_text())
    assert audit["passed"] and audit["held_out_scanners"] == [HELD_OUT]
    assert set(audit["splits"]["train"]["scanners"]) == {"A", "B"}
    assert set(audit["splits"]["val"]["scanners"]) == {"A", "B"}
    assert audit["splits"]["test"]["scanners"][HELD_OUT] > 0
    assert all(check["count"] == 0 for check in audit["checks"].values())
