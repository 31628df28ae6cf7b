"""All three PathoROB metrics for one feature set at one level (tiles or slides), with PathoROB's
protocol, and raypath's variants computed beside them."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from raypath.evaluate_fm.apd import DropResult, average_performance_drop, held_out_centers
from raypath.evaluate_fm.clustering import ClusteringResult, clustering_score
from raypath.evaluate_fm.config import EvaluateFMConfig
from raypath.evaluate_fm.data import FeatureSet
from raypath.evaluate_fm.ri import RobustnessCurve, Variant, pathorob_k_grid, robustness_curves
from raypath.evaluate_fm.sampling import cell_labels, stratified_sample

log = logging.getLogger(__name__)
NAN = float("nan")
T = TypeVar("T")


@dataclass(frozen=True)
class LevelResult:
    """Metrics of one (FM, correction, level): RI curves by variant, APD, clustering score."""

    n_samples: int
    n_knn: int  # samples in the kNN search (after the optional stratified cap)
    curves: dict[str, RobustnessCurve]  # "pathorob" first, then the configured raypath variants
    drop: DropResult | None  # None when the cohort is too small for PathoROB's APD design
    clusters: ClusteringResult
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per metric (progress lines)
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # this process's CPU time per metric

    def summary(self) -> dict[str, float]:
        """Flat scalar metrics for the table and MLflow: PathoROB's names, variants suffixed."""
        out: dict[str, float] = {"n": self.n_samples, "n_knn": self.n_knn}
        for variant, curve in self.curves.items():
            suffix = "" if variant == "pathorob" else f"_{variant}"
            ri, accuracy = curve.at_best
            out |= {f"ri{suffix}": ri, f"best_k{suffix}": curve.best_k, f"knn_bacc{suffix}": accuracy}
        out |= _drop_summary(self.drop)
        return out | {"cs": self.clusters.score, "ari_class": self.clusters.ari_class,
                      "ari_center": self.clusters.ari_center, "k_clusters": self.clusters.k}


def _drop_summary(drop: DropResult | None) -> dict[str, float]:
    if drop is None:
        return dict.fromkeys(("apd_id", "apd_ood", "apd_id_specimen", "apd_ood_specimen", "acc0_id",
                              "acc0_ood"), NAN)
    return {"apd_id": drop.apd_id, "apd_ood": drop.apd_ood, "apd_id_specimen": drop.apd_id_specimen,
            "apd_ood_specimen": drop.apd_ood_specimen, "acc0_id": float(np.mean(drop.accuracy_id[0])),
            "acc0_ood": float(np.mean(drop.accuracy_ood[0]))}


def _curves(data: FeatureSet, config: EvaluateFMConfig) -> tuple[dict[str, RobustnessCurve], int]:
    """PathoROB's RI (same-slide neighbours excluded) and each configured raypath variant, from one
    neighbour search."""
    knn = config.knn
    keep = stratified_sample(cell_labels(data.classes, data.centers), max_samples=knn.max_samples,
                             seed=config.seed)
    sample = data.take(keep)
    if len(keep) < len(data):
        log.info("robustness index on a stratified sample of %d of %d samples", len(keep), len(data))
    variants = {"pathorob": Variant(groups=sample.slide_ids, grid=pathorob_k_grid(knn.k_cap), k=knn.k)}
    if "specimen" in knn.variants:
        variants["specimen"] = Variant(groups=sample.specimen_ids, grid=pathorob_k_grid(knn.k_cap), k=knn.k)
    if "raypath_k" in knn.variants:
        variants["raypath_k"] = Variant(groups=sample.specimen_ids, grid=tuple(knn.raypath_k_grid),
                                        tie_rule="nearest", class_cap=True)
    curves = robustness_curves(sample.features, classes=sample.classes, centers=sample.centers,
                               variants=variants, query_block=knn.query_block, key_block=knn.key_block)
    return curves, len(keep)


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


def _drop(data: FeatureSet, config: EvaluateFMConfig) -> DropResult | None:
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


def _timed(seconds: dict[str, tuple[float, float]], name: str, compute: Callable[[], T]) -> T:
    """`compute()`, its (wall, CPU) seconds recorded under `name`: the progress line of its evaluation;
    CPU time, unlike wall time, does not grow when other work shares the cores."""
    started = time.perf_counter(), time.process_time()
    result = compute()
    seconds[name] = time.perf_counter() - started[0], time.process_time() - started[1]
    return result


def evaluate_level(data: FeatureSet, *, config: EvaluateFMConfig) -> LevelResult:
    """RI (PathoROB and variants), clustering score and APD of one feature set, each timed."""
    seconds: dict[str, tuple[float, float]] = {}
    curves, n_knn = _timed(seconds, "RI", lambda: _curves(data, config))
    clusters = _timed(seconds, "clustering score", lambda: clustering_score(
        data.features, classes=data.classes, centers=data.centers, **config.clustering.model_dump()))
    drop = _timed(seconds, "APD", lambda: _drop(data, config))
    return LevelResult(n_samples=len(data), n_knn=n_knn, curves=curves, drop=drop, clusters=clusters,
                       seconds={k: wall for k, (wall, _) in seconds.items()},
                       cpu_seconds={k: cpu for k, (_, cpu) in seconds.items()})
