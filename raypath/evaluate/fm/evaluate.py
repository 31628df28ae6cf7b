"""All three PathoROB metrics for one feature set at one level (tiles or slides)."""

import logging
from dataclasses import dataclass

import numpy as np

from raypath.evaluate.fm.apd import DropResult, average_performance_drop
from raypath.evaluate.fm.clustering import ClusteringResult, clustering_score
from raypath.evaluate.fm.config import EvaluateFMConfig
from raypath.evaluate.fm.data import FeatureSet
from raypath.evaluate.fm.ri import RobustnessCurve, robustness_curve
from raypath.evaluate.fm.sampling import cell_labels, stratified_sample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LevelResult:
    """Metrics of one (FM, correction, level): RI both ways, APD, clustering score."""

    n_samples: int
    n_knn: int  # samples in the kNN search (after the stratified cap)
    curve: RobustnessCurve  # same-specimen neighbours excluded
    curve_all: RobustnessCurve  # only the sample itself excluded
    drop: DropResult
    clusters: ClusteringResult

    def summary(self) -> dict[str, float]:
        """Flat scalar metrics for the table and MLflow."""
        ri, knn = self.curve.at_best
        ri_all, knn_all = self.curve_all.at_best
        return {"n": self.n_samples, "n_knn": self.n_knn, "ri": ri, "knn_bacc": knn,
                "best_k": self.curve.best_k, "ri_all": ri_all, "knn_bacc_all": knn_all,
                "best_k_all": self.curve_all.best_k,
                "apd_id": self.drop.apd_id, "apd_ood": self.drop.apd_ood,
                "acc0_id": float(self.drop.accuracy_id[0]), "acc0_ood": float(self.drop.accuracy_ood[0]),
                "cs": self.clusters.score, "ari_class": self.clusters.ari_class,
                "ari_center": self.clusters.ari_center, "k_clusters": self.clusters.k}


def _robustness(data: FeatureSet, config: EvaluateFMConfig) -> tuple[RobustnessCurve, RobustnessCurve, int]:
    keep = stratified_sample(cell_labels(data.classes, data.centers), max_samples=config.knn.max_samples,
                             seed=config.seed)
    sample = data.take(keep)
    if len(keep) < len(data):
        log.info("robustness index on a stratified sample of %d of %d samples", len(keep), len(data))
    options = {"grid": tuple(config.knn.k_grid), "query_block": config.knn.query_block,
               "key_block": config.knn.key_block}
    curve = robustness_curve(sample.features, classes=sample.classes, centers=sample.centers,
                             groups=sample.specimen_ids, **options)
    curve_all = robustness_curve(sample.features, classes=sample.classes, centers=sample.centers, **options)
    return curve, curve_all, len(keep)


def _slide_sample(data: FeatureSet, *, max_samples: int | None, seed: int) -> FeatureSet:
    """Cap rows for the probe by drawing whole slides, so the slide-level split stays intact."""
    if max_samples is None or len(data) <= max_samples:
        return data
    slides, first = np.unique(data.slide_ids, return_index=True)
    per_slide = len(data) / len(slides)
    chosen = stratified_sample(cell_labels(data.classes[first], data.centers[first]),
                               max_samples=max(1, int(max_samples / per_slide)), seed=seed)
    return data.take(np.flatnonzero(np.isin(data.slide_ids, slides[chosen])))


def evaluate_level(data: FeatureSet, *, config: EvaluateFMConfig) -> LevelResult:
    """RI (with and without same-specimen exclusion), APD and clustering score of one feature set."""
    curve, curve_all, n_knn = _robustness(data, config)
    probe = _slide_sample(data, max_samples=config.apd.max_samples, seed=config.seed)
    drop = average_performance_drop(
        probe.features, classes=probe.classes, centers=probe.centers, units=probe.slide_ids,
        patients=probe.patient_ids, n_splits=config.apd.n_splits, max_strength=config.apd.max_strength,
        test_fraction=config.apd.test_fraction, repeats=config.apd.repeats, c=config.apd.regularisation,
        seed=config.seed)
    clusters = clustering_score(data.features, classes=data.classes, centers=data.centers,
                                seed=config.seed, **config.clustering.model_dump())
    return LevelResult(n_samples=len(data), n_knn=n_knn, curve=curve, curve_all=curve_all, drop=drop,
                       clusters=clusters)
