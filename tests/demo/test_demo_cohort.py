"""The demo's cohort is the controlled test it claims to be (issue 15): biology shared by every scan
of a specimen, label and scanner confounded in train and val, test specimens on every scanner
including one never seen in training, and the knobs that make the scanner as visible as the tumour."""

from pathlib import Path

import pandas as pd
import pytest

from raypath.config import load_config
from raypath.demo.config import DemoConfig
from raypath.slides.synth import plan_cohort

DEMO = Path(__file__).resolve().parents[2] / "jobs" / "configs" / "demo.yaml"


@pytest.fixture(scope="module")
def scans() -> pd.DataFrame:
    synth = load_config(DemoConfig, DEMO).synth
    return pd.DataFrame([{"slide": s.slide_id, "specimen": s.specimen.specimen_id, "label": s.specimen.label,
                          "split": s.specimen.split, "scanner": s.scanner.name,
                          "tissue": s.specimen.tissue} for s in plan_cohort(synth)])


def test_every_test_specimen_is_scanned_on_every_scanner_and_the_held_out_one_only_in_test(scans):
    test = scans[scans["split"] == "test"]
    assert (test.groupby("specimen")["scanner"].nunique() == 3).all()
    assert set(scans.loc[scans["split"] != "test", "scanner"]) == {"aperio-gt450", "hamamatsu-s360"}


def test_train_and_val_are_confounded_with_some_paired_specimens_left(scans):
    for split in ("train", "val"):
        rows = scans[scans["split"] == split]
        per_specimen = rows.groupby("specimen").agg(label=("label", "first"), scanner=("scanner", "first"),
                                                    scans=("scanner", "nunique"))
        single = per_specimen[per_specimen["scans"] == 1]
        tied = single["scanner"] == single["label"].map({0: "aperio-gt450", 1: "hamamatsu-s360"})
        assert tied.all(), f"{split}: a single-scanner specimen is not on its label's scanner"
        assert 0.6 <= len(single) / len(per_specimen) <= 0.95 and (per_specimen["scans"] == 2).sum() >= 2


def test_scans_of_a_specimen_share_one_biology_and_classes_are_balanced(scans):
    assert (scans.groupby("specimen")["tissue"].nunique() == 1).all()
    labels = scans.groupby("specimen")["label"].first()
    assert abs(labels.mean() - 0.5) <= 0.05


def test_the_scanner_effect_is_strengthened_and_the_tumour_made_subtle():
    synth = load_config(DemoConfig, DEMO).synth
    assert synth.scanner_strength > 1 and synth.tumour_contrast < 1 and synth.tumour_burden[1] <= 0.3
