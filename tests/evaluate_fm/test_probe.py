"""raypath's logistic probe is scikit-learn's `LogisticRegression(C=c)` to the last bit: the same
objective, loss code and L-BFGS-B call, without the estimator's per-call overhead."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from raypath.evaluate_fm.apd import C_GRID
from raypath.evaluate_fm.probe import fit_logistic


@pytest.mark.parametrize("n_classes", [2, 3])
def test_coefficients_and_predictions_equal_scikit_learn_bit_for_bit(n_classes):
    rng = np.random.default_rng(n_classes)
    codes = rng.integers(0, n_classes, 120)
    features = rng.normal(size=(120, 8)) + 0.6 * codes[:, None] * rng.normal(size=8)
    labels = np.array(["tumour", "normal", "stroma"])[codes]  # strings: classes sorted as sklearn does
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # large C stops unconverged at 100 iterations
        for c in C_GRID[::2]:
            expected = LogisticRegression(C=c).fit(features, labels)
            probe = fit_logistic(features, labels, c=c)
            assert np.array_equal(probe.coef, expected.coef_), c
            assert np.array_equal(probe.intercept, expected.intercept_), c
            assert np.array_equal(probe.predict(features), expected.predict(features)), c


def test_one_class_is_refused():
    with pytest.raises(ValueError, match="needs two classes"):
        fit_logistic(np.zeros((4, 2)), np.array([1, 1, 1, 1]), c=1.0)
