"""All three PathoROB metrics for one feature set at one level (tiles or slides), with PathoROB's
protocol, and raypath's variants computed beside them."""

import logging
from dataclasses import dataclass, field

import numpy as np

from raypath.evaluate_fm.apd import DropResult
from raypath.evaluate_fm.clustering import ClusteringResult
from raypath.evaluate_fm.config import EvaluateFMConfig
from raypath.evaluate_fm.data import FeatureSet
from raypath.evaluate_fm.measure import POOLED, apd_design, measure, timed
from raypath.evaluate_fm.ri import RobustnessCurve, Variant, pathorob_k_grid, robustness_curves
from raypath.evaluate_fm.sampling import cell_labels, stratified_sample

log = logging.getLogger(__name__)
NAN = float("nan")
Timed = tuple[object, float, float]  # (result, wall s, CPU s) of one metric
__all__ = ["LevelResult", "apd_design", "evaluate_level", "level_result", "robustness"]


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


def robustness(data: FeatureSet, config: EvaluateFMConfig) -> tuple[dict[str, RobustnessCurve], int]:
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


def level_result(data: FeatureSet, metrics: dict[str, Timed]) -> LevelResult:
    """One table row's result from its metrics: "RI" (`robustness`) and each of `POOLED` (`measure`)."""
    (curves, n_knn), clusters, drop = (metrics[name][0] for name in ("RI", *POOLED))
    return LevelResult(n_samples=len(data), n_knn=n_knn, curves=curves, drop=drop, clusters=clusters,
                       seconds={name: metrics[name][1] for name in ("RI", *POOLED)},
                       cpu_seconds={name: metrics[name][2] for name in ("RI", *POOLED)})


def evaluate_level(data: FeatureSet, *, config: EvaluateFMConfig) -> LevelResult:
    """RI (PathoROB and variants), clustering score and APD of one feature set in this process, each
    timed."""
    metrics = {"RI": timed(lambda: robustness(data, config))}
    return level_result(data, metrics | {name: measure(data, name, config=config) for name in POOLED})
