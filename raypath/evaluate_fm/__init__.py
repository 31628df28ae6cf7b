"""PathoROB's robustness benchmark of foundation-model features (Kömen et al. 2025), as its code runs it.

`ri` (robustness index over PathoROB's k grid), `apd` (average performance drop of a linear
probe), `clustering` (clustering score over two-class × two-centre subsets), `pipeline` (store →
metrics → report → MLflow). raypath's extensions are reported beside PathoROB's values.
"""

from raypath.evaluate_fm.apd import DropResult, average_performance_drop
from raypath.evaluate_fm.clustering import ClusteringResult, clustering_score
from raypath.evaluate_fm.ri import RobustnessCurve, robustness_curve

__all__ = ["ClusteringResult", "DropResult", "RobustnessCurve", "average_performance_drop",
           "clustering_score", "robustness_curve"]
