"""The APD and clustering score of one feature set, one metric per call: the unit of work that
evaluate-fm's worker processes run.

Why apart from `evaluate`: a worker imports this module to run a task, and this module needs only
NumPy, SciPy and scikit-learn; the RI's torch kNN (seconds of imports per process) stays in the
main process, which computes every RI while the workers run these.
"""

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from raypath.evaluate_fm.apd import DropResult, average_performance_drop, held_out_centers
from raypath.evaluate_fm.clustering import ClusteringResult, clustering_score
from raypath.evaluate_fm.config import EvaluateFMConfig
from raypath.evaluate_fm.data import FeatureSet

log = logging.getLogger(__name__)
T = TypeVar("T")
POOLED = ("clustering score", "APD")  # the slow metrics, in the order a row's log line names them


def apd_design(data: FeatureSet, config: EvaluateFMConfig) -> tuple[FeatureSet, tuple[str, ...]]:
    """(samples, out-of-domain centres) of the APD. Held-out scanners are never trained on: where
    their slides make up whole centres (the confounder is the scanner) those centres are the
    out-of-domain test, beside PathoROB's; otherwise their slides are left out of the APD."""
    apd, held = config.apd, np.isin(data.scanners, config.apd.held_out_scanners)
    if not held.any():
        return data, held_out_centers(data.centers, apd.held_out_centers)
    centres = sorted(set(data.centers[held]))
    if not np.isin(data.centers[~held], centres).any():
        return data, tuple(dict.fromkeys([*held_out_centers(data.centers, apd.held_out_centers), *centres]))
    log.info("APD: %d samples of held-out scanners %s left out (they share centres with others)",
             int(held.sum()), apd.held_out_scanners)
    kept = data.take(np.flatnonzero(~held))
    return kept, held_out_centers(kept.centers, apd.held_out_centers)


def performance_drop(data: FeatureSet, config: EvaluateFMConfig) -> DropResult | None:
    """The APD of `config.apd`'s design; None (NaN in the table) for a cohort too small for it."""
    apd = config.apd
    try:
        data, held_out = apd_design(data, config)
        return average_performance_drop(
            data.features, classes=data.classes, centers=data.centers, slides=data.slide_ids,
            specimens=data.specimen_ids, held_out=held_out,
            iterations=apd.iterations, min_test_slides=apd.min_test_slides,
            max_balanced_slides=apd.max_balanced_slides, seed=apd.seed)
    except ValueError as exc:  # a cohort too small for the design: report NaN, go on
        log.warning("APD not computed: %s", exc)
        return None


def timed(compute: Callable[[], T]) -> tuple[T, float, float]:
    """(`compute()`, wall s, CPU s): CPU time, unlike wall time, does not grow when other work
    shares the cores."""
    started = time.perf_counter(), time.process_time()
    result = compute()
    return result, time.perf_counter() - started[0], time.process_time() - started[1]


def measure(data: FeatureSet, metric: str, *, config: EvaluateFMConfig,
            ) -> tuple[DropResult | ClusteringResult | None, float, float]:
    """(result, wall s, CPU s) of one of the `POOLED` metrics on `data`."""
    if metric == "APD":
        return timed(lambda: performance_drop(data, config))
    if metric == "clustering score":
        return timed(lambda: clustering_score(data.features, classes=data.classes, centers=data.centers,
                                              **config.clustering.model_dump()))
    raise ValueError(f"unknown pooled metric {metric!r}; expected one of {POOLED}")
