"""How much a label (the scanner, the centre) can be read from slide embeddings, in bits.

A variational lower bound on the mutual information: I(Z; Y) >= H(Y) - CE, where CE is the
cross-validated cross-entropy of a probe predicting Y from Z (Barber & Agakov 2003). The scanner
probe's balanced accuracy says whether the scanner is predictable; this says how much of it is
there, on the same scale for any number of scanners (0 = none, log2(#scanners) = all of it).
"""

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def entropy_bits(labels: Sequence) -> float:
    """Plug-in entropy of the label distribution, in bits."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def mutual_information_bits(embeddings: np.ndarray, labels: Sequence, *, folds: int = 5,
                            seed: int = 0) -> float:
    """Lower bound on I(embedding; label) in bits, floored at 0 (a probe worse than the prior
    shows no information, not negative information). Callers check `probe_limit` first."""
    labels = np.asarray(labels)
    _, counts = np.unique(labels, return_counts=True)
    cv = StratifiedKFold(n_splits=int(min(folds, counts.min())), shuffle=True, random_state=seed)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    proba = cross_val_predict(probe, np.asarray(embeddings, float), labels, cv=cv, method="predict_proba")
    classes = np.unique(labels)
    true = proba[np.arange(len(labels)), np.searchsorted(classes, labels)]
    cross_entropy = float(-np.mean(np.log2(np.clip(true, 1e-12, 1.0))))
    return max(0.0, entropy_bits(labels) - cross_entropy)
