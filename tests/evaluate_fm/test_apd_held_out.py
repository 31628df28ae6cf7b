"""evaluate-fm's APD never trains its probes on a held-out scanner: where the confounder is the
scanner, the held-out scanners are out-of-domain centres beside PathoROB's fixed one; where it is a
site, their slides are left out of the APD."""

import numpy as np

from raypath.evaluate_fm.config import EvaluateFMConfig
from raypath.evaluate_fm.data import FeatureSet
from raypath.evaluate_fm.evaluate import apd_design


def _data(centers: list[str], scanners: list[str]) -> FeatureSet:
    n = len(centers)
    ids = np.array([f"s{i}" for i in range(n)])
    return FeatureSet(features=np.zeros((n, 2), np.float32), classes=np.arange(n) % 2,
                      centers=np.array(centers), slide_ids=ids, specimen_ids=ids, patient_ids=ids,
                      scanners=np.array(scanners))


def _config(held: list[str]) -> EvaluateFMConfig:
    return EvaluateFMConfig(apd={"held_out_scanners": held})


def test_held_out_scanners_that_are_centres_join_the_out_of_domain_test():
    scanners = ["A", "B", "C", "D"] * 3
    data, held_out = apd_design(_data(scanners, scanners), _config(["B"]))
    assert len(data) == 12 and held_out == ("D", "B")  # PathoROB's last centre, then the held-out one
    assert apd_design(_data(scanners, scanners), _config([]))[1] == ("D",)


def test_held_out_scanners_inside_sites_are_left_out_of_the_apd():
    sites = ["site-0", "site-1", "site-2"] * 4
    scanners = ["A"] * 6 + ["C"] * 6
    data, held_out = apd_design(_data(sites, scanners), _config(["C"]))
    assert len(data) == 6 and set(data.scanners) == {"A"} and held_out == ("site-2",)
