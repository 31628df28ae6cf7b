"""PathoROB-style robustness benchmark of foundation-model features (de Jong / Kömen et al. 2025).

`ri` (robustness index over a k grid), `apd` (average performance drop of a linear probe),
`clustering` (clustering score), `pipeline` (store → metrics → report → MLflow).
"""

from raypath.evaluate.fm.apd import DropResult, average_performance_drop
from raypath.evaluate.fm.clustering import ClusteringResult, clustering_score
from raypath.evaluate.fm.ri import RobustnessCurve, robustness_curve

__all__ = ["ClusteringResult", "DropResult", "RobustnessCurve", "average_performance_drop",
           "clustering_score", "robustness_curve"]
