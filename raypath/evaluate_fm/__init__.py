"""PathoROB's robustness benchmark of foundation-model features (Kömen et al. 2025), as its code runs it.

`ri` (robustness index over PathoROB's k grid), `apd` (average performance drop of a linear
probe), `clustering` (clustering score over two-class × two-centre subsets), `pipeline` (store →
metrics → report → MLflow). raypath's extensions are reported beside PathoROB's values.

The names below load their module on first use: importing one submodule (as evaluate-fm's worker
processes do for the APD and clustering score) must not load the RI's torch kNN (seconds per process).
"""

import importlib

_HOMES = {"DropResult": "apd", "average_performance_drop": "apd", "ClusteringResult": "clustering",
          "clustering_score": "clustering", "RobustnessCurve": "ri", "robustness_curve": "ri"}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
