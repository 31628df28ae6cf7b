"""When a robustness metric is defined on the data at hand, and why not when it is not.

A metric computed where it cannot mean anything (a spread over one specimen, a kNN index whose k
reaches every eligible neighbour, an AUC on one class) still returns a number, and that number with
a confidence interval looks like a finding. Each check returns None when the metric is defined, or
the reason it is not; the metric is then NaN and the report prints the reason.

A metric that is defined but stands on little (a few specimens) or on part of the data (a worst-
scanner AUC over the scanners that hold both classes) keeps its value with a *caveat*: the summary
says so next to the value, MLflow records it (`raypath.caveat.<metric>`) and the report shows it.
The sizes below which a caveat is given are `MetricLimits`.
"""

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import Field

from raypath.config import StrictModel

MIN_PAIRED_SPECIMENS = 2


class MetricLimits(StrictModel):
    """Sizes below which a defined metric is reported with a caveat rather than silently."""

    min_specimens: int = Field(
        10, ge=1, description="specimens of a split (or of the held-out scanners) below which its AUC, "
                              "balanced accuracy and C-index carry a 'few specimens' caveat")
    min_paired_specimens: int = Field(
        5, ge=MIN_PAIRED_SPECIMENS, description="specimens with >= 2 scans below which the cross-scanner "
                                                "spread and flip rate carry a caveat")


DEFAULT_LIMITS = MetricLimits()


def few_caveat(count: int, *, minimum: int, what: str) -> str | None:
    """'3 specimens (fewer than 10): a rough estimate' when `count` is below `minimum`."""
    if count < minimum:
        return f"{count} {what} (fewer than {minimum}): a rough estimate"
    return None


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
