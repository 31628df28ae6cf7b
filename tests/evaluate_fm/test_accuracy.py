"""raypath's balanced accuracy is scikit-learn's, to the last bit (it only skips the validation)."""

import warnings

import numpy as np
from sklearn.metrics import balanced_accuracy_score

from raypath.evaluate_fm.accuracy import balanced_accuracy


def test_equals_scikit_learn_bit_for_bit():
    rng = np.random.default_rng(0)
    cases = [(rng.integers(0, 3, 97), rng.integers(0, 3, 97)),
             (rng.integers(0, 2, 50), rng.integers(0, 4, 50)),  # predictions of a class never true
             (np.array(["b", "a", "c", "a", "b"]), np.array(["a", "a", "c", "b", "b"])),
             (np.zeros(7, int), np.array([0, 0, 1, 0, 1, 0, 0]))]
    for truth, predicted in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns about classes absent from y_true
            expected = balanced_accuracy_score(truth, predicted)
        assert balanced_accuracy(truth, predicted) == expected
