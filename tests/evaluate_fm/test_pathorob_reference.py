"""raypath's PathoROB metrics against the numbers PathoROB's own code gives on the same embeddings.

`pathorob_fixture.py` regenerates the embeddings (3 classes × 3 centres, no / medium / strong
centre effect); `pathorob_reference.json` holds what PathoROB's entry points returned on them
(commit, library versions and settings recorded there). RI and clustering score are PathoROB's
defaults; APD is PathoROB's protocol with 5 iterations (its ``--iterations``; the 20-iteration
values are recorded too) and centre-3 held out. Tolerance: 1e-3 absolute on every value; the
implementations agree to ~1e-15 where the libraries do, the margin is for BLAS and thread-count
differences in k-means and the probe's solver.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from pathorob_fixture import EFFECTS, HELD_OUT, make_fixture

from raypath.evaluate_fm import average_performance_drop, clustering_score, robustness_curve

REFERENCE = json.loads((Path(__file__).parent / "pathorob_reference.json").read_text())
TOLERANCE = 1e-3


@pytest.fixture(scope="module", params=list(EFFECTS))
def case(request):
    fixture = make_fixture(request.param)
    expected = REFERENCE["effects"][request.param]
    assert fixture.checksum() == expected["checksum"], "fixture changed: rerun PathoROB and rerecord"
    return fixture, expected


def test_robustness_index_matches_pathorob(case):
    fixture, expected = case
    curve = robustness_curve(fixture.features, classes=fixture.classes, centers=fixture.centers,
                             groups=fixture.slides)
    ri, accuracy = curve.at_best
    reference = expected["robustness_index"]
    assert curve.ks.tolist() == reference["k_grid"]
    assert curve.best_k == reference["k_opt"]
    assert ri == pytest.approx(reference["ri"], abs=TOLERANCE)
    assert accuracy == pytest.approx(reference["balanced_accuracy"], abs=TOLERANCE)


def test_apd_matches_pathorob(case):
    fixture, expected = case
    reference = expected["apd"]["5"]
    drop = average_performance_drop(fixture.features, classes=fixture.classes, centers=fixture.centers,
                                    slides=fixture.slides, held_out=HELD_OUT, iterations=5)
    assert drop.apd_id == pytest.approx(reference["apd_id"], abs=TOLERANCE)
    assert drop.apd_ood == pytest.approx(reference["apd_ood"], abs=TOLERANCE)
    np.testing.assert_allclose(drop.accuracy_id.mean(axis=1), reference["accuracy_id"], atol=TOLERANCE)
    np.testing.assert_allclose(drop.accuracy_ood.mean(axis=1), reference["accuracy_ood"], atol=TOLERANCE)


def test_clustering_score_matches_pathorob(case):
    fixture, expected = case
    result = clustering_score(fixture.features, classes=fixture.classes, centers=fixture.centers)
    reference = expected["clustering_score"]
    assert len(result.subsets) == 9  # 3 class pairs × 3 centre pairs
    assert result.score == pytest.approx(reference["cs"], abs=TOLERANCE)
    assert result.ari_class == pytest.approx(reference["ari_class"], abs=TOLERANCE)
    assert result.ari_center == pytest.approx(reference["ari_center"], abs=TOLERANCE)
    assert result.k == reference["k_median"]
