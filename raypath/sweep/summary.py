"""What a phase's parent run says when the phase ends: how it went, in numbers MLflow can chart.

A parent run (`<fm>/search`, `<fm>/replicates`) trains nothing itself; without a summary MLflow's
chart view of it is empty. When the phase ends (complete, stopped or with failed configurations) its
parent gets `configs_finished`, `configs_failed`, `wall_time_s` (driver time spent on the phase,
summed over the commands that ran it) and, for the best configuration by validation accuracy (means
over its replicates; ties as in `raypath.sweep.selection`), its objectives and robustness metric as
`best_<metric>` (`best_val_auc`, `best_val_score_spread`), with the config key as a tag.
"""

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from raypath.sweep.config import ObjectiveConfig
from raypath.sweep.selection import config_means, robustness_metric, tie_ranked

WALL = "wall_time_s"
TAG_BEST_CONFIG = "raypath.best_config"


def best_name(metric: str) -> str:
    """`val/auc` -> `best_val_auc`: one flat name per summary metric."""
    return "best_" + metric.replace("/", "_")


def best_configuration(frame: pd.DataFrame, *, objectives: Sequence[ObjectiveConfig],
                       tie: float) -> pd.Series | None:
    """The finished configuration with the highest validation accuracy (mean over its runs)."""
    accuracy = objectives[0].metric
    means = config_means(frame) if not frame.empty and "status" in frame else frame.iloc[0:0]
    if means.empty or accuracy not in means:
        return None
    scored = means[np.isfinite(means[accuracy].astype(float))]
    return None if scored.empty else tie_ranked(scored, metric=accuracy, mode="max", tie=tie).iloc[0]


def phase_summary(frame: pd.DataFrame, *, objectives: Sequence[ObjectiveConfig], tie: float,
                  wall_s: float) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, tags) of a phase's parent run, from the phase's trial runs (`runs_frame`)."""
    status = frame["status"] if "status" in frame else pd.Series(dtype=str)
    metrics = {"configs_finished": float((status == "FINISHED").sum()),
               "configs_failed": float((status == "FAILED").sum()), WALL: float(wall_s)}
    best = best_configuration(frame, objectives=objectives, tie=tie)
    if best is None:
        return metrics, {}
    names = dict.fromkeys([*(o.metric for o in objectives), robustness_metric(objectives)])
    metrics.update({best_name(n): float(best[n]) for n in names if n in best and _finite(best[n])})
    return metrics, {TAG_BEST_CONFIG: str(best["config_key"])}


def earlier_wall(metrics: Mapping[str, float]) -> float:
    """Wall time a parent run already holds (an earlier command ran part of the phase)."""
    return float(metrics.get(WALL, 0.0))


def _finite(value: object) -> bool:
    return isinstance(value, int | float | np.floating) and bool(np.isfinite(value))
