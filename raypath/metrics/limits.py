"""When a robustness metric is defined on the data at hand, and why not when it is not.

A metric computed where it cannot mean anything (a spread over one specimen, a kNN index whose k
reaches every eligible neighbour, an AUC on one class) still returns a number, and that number with
a confidence interval looks like a finding. Each check returns None when the metric is defined, or
the reason it is not; the metric is then NaN and the report prints the reason.
"""

from collections.abc import Sequence

import numpy as np
import pandas as pd

MIN_PAIRED_SPECIMENS = 2


def paired_specimens(specimens: Sequence) -> int:
    """Specimens with at least two scans (what cross-scanner metrics compare)."""
    counts = pd.Series(np.asarray(specimens)).value_counts()
    return int((counts >= 2).sum())


def cross_scanner_limit(specimens: Sequence) -> str | None:
    """Spread and flip rate need several specimens scanned more than once."""
    paired = paired_specimens(specimens)
    if paired < MIN_PAIRED_SPECIMENS:
        return f"{paired} specimens with >= 2 scans (needs {MIN_PAIRED_SPECIMENS})"
    return None


def classes_limit(labels: Sequence, *, where: str = "") -> str | None:
    """AUC and balanced accuracy need both (every) class present."""
    present = pd.Series(np.asarray(labels)).dropna()
    if present.nunique() < 2:
        return f"only one class{where} ({present.nunique()} present)"
    return None


def probe_limit(groups: Sequence, *, folds: int) -> str | None:
    """A cross-validated probe needs >= 2 groups (scanners, centres), each in >= 2 samples."""
    counts = pd.Series(np.asarray(groups)).value_counts()
    if len(counts) < 2:
        return f"one {'scanner' if len(counts) else 'sample group'} only"
    if counts.min() < 2:
        return f"{counts.idxmin()} has {int(counts.min())} sample (a {min(folds, 2)}-fold probe needs 2)"
    return None


def knn_limit(classes: Sequence, centers: Sequence, *, groups: Sequence, k: int) -> str | None:
    """The robustness index needs both classes, >= 2 centres, and k below every sample's number of
    eligible neighbours (other specimens); otherwise it measures the split, not the embedding."""
    if (reason := classes_limit(classes)) is not None:
        return reason
    if pd.Series(np.asarray(centers)).nunique() < 2:
        return "one scanner only"
    sizes = pd.Series(np.asarray(groups)).map(pd.Series(np.asarray(groups)).value_counts())
    eligible = int(len(sizes) - sizes.max())
    if k >= eligible:
        return f"k={k} >= {eligible} eligible neighbours (samples of other specimens)"
    return None
