"""The one split policy: a splits file before the labels' split column before a random split (which
is then said), given splits cover exactly the patients with features, declared held-out scanners
are added to the config's, and the leakage audit of the result."""

import logging

import pandas as pd
import pytest

from raypath.cohort import CohortError
from raypath.cohort.declaration import CohortDeclaration, write_declaration
from raypath.train.config import SplitConfig, TrainConfig
from raypath.train.leakage import LeakageError, audit_split
from raypath.train.setup import split_slides
from raypath.train.split_policy import plan_split

PATIENTS = [f"P{i}" for i in range(8)]


def _labels(tmp_path, *, split: list[str] | None = None):
    labels = pd.DataFrame({"patient_id": PATIENTS, "label": [i % 2 for i in range(8)]})
    if split is not None:
        labels["split"] = split
    path = tmp_path / "labels.csv"
    labels.to_csv(path, index=False)
    return labels, path


def _plan(tmp_path, config=None, *, labels_split=None, splits=None, patients=PATIENTS, scanners=("A", "B")):
    config = config or SplitConfig()
    labels, path = _labels(tmp_path, split=labels_split)
    return plan_split(config, labels=labels, labels_path=path, splits=splits,
                      splits_path=None if splits is None else tmp_path / "splits.csv", patients=patients,
                      scanners=scanners)


COLUMN = ["train", "train", "train", "train", "val", "val", "test", "test"]
FILE = pd.DataFrame({"patient_id": PATIENTS, "split": ["test"] * 2 + ["train"] * 6})


def test_a_splits_file_comes_before_the_labels_column_which_comes_before_random(tmp_path, caplog):
    from_file = _plan(tmp_path, labels_split=COLUMN, splits=FILE)
    assert from_file.config.source == "column" and from_file.assignment.equals(FILE)
    assert from_file.origin.startswith("splits file")
    from_column = _plan(tmp_path, labels_split=COLUMN)
    assert from_column.assignment["split"].tolist() == COLUMN and "'split' column of" in from_column.origin
    with caplog.at_level(logging.WARNING):
        random = _plan(tmp_path)
    assert random.config.source == "random" and random.assignment is None
    assert "no split was given" in random.origin and "no split was given" in caplog.text
    assert random.tags()["raypath.split.source"] == "random"
    asked = _plan(tmp_path, SplitConfig(source="random"), labels_split=COLUMN)
    assert asked.config.source == "random" and "no split was given" not in asked.origin


@pytest.mark.parametrize(("patients", "message"), [
    ([*PATIENTS, "P9999", "P9998"], "2 patients have no features, e.g. ['P9998', 'P9999']"),
    (PATIENTS[:5], "3 patients with features have no split, e.g. ['P5', 'P6', 'P7']"),
])
def test_a_splits_file_must_cover_exactly_the_patients_with_features(tmp_path, patients, message):
    splits = pd.DataFrame({"patient_id": patients, "split": "train"})
    with pytest.raises(CohortError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _plan(tmp_path, splits=splits)


def test_a_split_column_must_name_known_splits_and_column_needs_a_given_split(tmp_path):
    with pytest.raises(CohortError, match=r"1 patients have a split other than .* e.g. \[\"P3='dev'\"\]"):
        _plan(tmp_path, labels_split=["train", "train", "train", "dev", "val", "val", "test", "test"])
    with pytest.raises(CohortError, match="no split is given"):
        _plan(tmp_path, SplitConfig(source="column"))


def test_declared_held_out_scanners_are_added_and_must_exist(tmp_path):
    write_declaration(CohortDeclaration(held_out_scanners=["B"]), tmp_path)
    plan = _plan(tmp_path, SplitConfig(held_out_scanners=["C"]), scanners=("A", "B", "C"))
    assert plan.config.held_out_scanners == ["B", "C"]
    assert plan.tags()["raypath.split.held_out_scanners"] == "B,C"
    with pytest.raises(CohortError, match=r"held-out scanners \['B'\] have no slides"):
        _plan(tmp_path, scanners=("A",))


def _slides() -> pd.DataFrame:
    rows = [{"slide_id": f"{p}-{s}", "patient_id": p, "specimen_id": f"S-{p}", "scanner": s, "label": i % 2}
            for i, p in enumerate(PATIENTS) for s in ("A", "B")]
    return pd.DataFrame(rows)


def test_held_out_scanner_slides_leave_train_and_val_and_the_audit_passes():
    slides = _slides().merge(pd.DataFrame({"patient_id": PATIENTS, "split": COLUMN}))
    config = TrainConfig(split={"source": "column", "held_out_scanners": ["B"]})
    split = split_slides(config, slides)
    assert set(split[slides["scanner"] == "B"]) == {"unused", "test"}
    audit = audit_split(slides, split, held_out=["B"])
    assert audit.passed and audit.splits["train"] == {"patients": 4, "specimens": 4, "slides": 4,
                                                      "scanners": {"A": 4}}
    assert audit.splits["test"]["scanners"] == {"A": 2, "B": 2} and "no leakage" in audit.describe()


def test_the_audit_fails_on_a_specimen_or_held_out_scanner_in_two_places():
    slides = _slides()
    slides.loc[slides["patient_id"] == "P1", "specimen_id"] = "S-P0"  # one specimen, two patients
    split = pd.Series(["train", "train", "test", "test", *["train"] * 12])
    audit = audit_split(slides, split, held_out=["B"])
    assert audit.violations["specimens_in_several_splits"] == ["S-P0"]
    assert len(audit.violations["held_out_scanner_slides_in_train_or_val"]) == 7
    assert not audit.passed and audit.to_dict()["checks"]["specimens_in_several_splits"]["count"] == 1
    with pytest.raises(LeakageError, match=r"1 specimens in two splits, e.g. \['S-P0'\]"):
        audit.check()
