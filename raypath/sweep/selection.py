"""Read a sweep's runs back from MLflow as a table, and pick the configurations worth replicating.

MLflow is the record of truth (it survives restores and lives beside the Tune directory), so the
replicate phase and `raypath compare` both select from it rather than from in-memory Tune results.
"""

import json
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import ViewType

from raypath.sweep.config import ObjectiveConfig
from raypath.sweep.tracking import (
    TAG_BASELINE,
    TAG_CONFIG,
    TAG_KEY,
    TAG_KIND,
    TAG_PARAMS,
    TAG_PHASE,
    TAG_SEED,
)

log = logging.getLogger(__name__)
COMPLETED = "best_epoch"  # only logged by a member that finished training and its final evaluation


def runs_frame(client: MlflowClient, experiment_id: str, *, phase: str | None = None) -> pd.DataFrame:
    """One row per active run: run_id, status, key, config_key, baseline, seed, params, metrics..."""
    query = f"tags.`{TAG_KIND}` = 'trial'" + (f" and tags.`{TAG_PHASE}` = '{phase}'" if phase else "")
    runs = client.search_runs(
        [experiment_id], filter_string=query, run_view_type=ViewType.ACTIVE_ONLY, max_results=50000
    )
    rows = [
        {
            "run_id": r.info.run_id,
            "status": r.info.status,
            "key": r.data.tags.get(TAG_KEY),
            "config_key": r.data.tags.get(TAG_CONFIG),
            "phase": r.data.tags.get(TAG_PHASE),
            "baseline": r.data.tags.get(TAG_BASELINE) == "true",
            "seed": int(r.data.tags.get(TAG_SEED, -1)),
            "params": json.loads(r.data.tags.get(TAG_PARAMS, "{}")),
            **r.data.metrics,
        }
        for r in runs
    ]
    return pd.DataFrame(rows)


def robustness_metric(objectives: Sequence[ObjectiveConfig]) -> str:
    """The metric that says 'robust': the first minimised objective, else the validation spread."""
    return next((o.metric for o in objectives if o.mode == "min"), "val/score_spread")


def rank_robust(
    frame: pd.DataFrame, *, objectives: Sequence[ObjectiveConfig], top_k: int, tolerance: float
) -> pd.DataFrame:
    """Rows of the `top_k` most robust completed configs within `tolerance` of the baseline accuracy.

    Accuracy is the first objective (a maximised validation metric); robustness is
    `robustness_metric`. Rows may be single runs or per-config means (same columns). Without a
    finished baseline the accuracy floor is not applied.
    """
    accuracy, robust = objectives[0].metric, robustness_metric(objectives)
    if frame.empty or COMPLETED not in frame or accuracy not in frame or robust not in frame:
        return frame.iloc[0:0]
    done = frame[(frame["status"] == "FINISHED") & frame[COMPLETED].notna()]
    done = done[np.isfinite(done[accuracy].astype(float)) & np.isfinite(done[robust].astype(float))]
    floor = done.loc[done["baseline"], accuracy].max() - tolerance if done["baseline"].any() else -np.inf
    candidates = done[~done["baseline"] & (done[accuracy] >= floor)]
    ranked = candidates.sort_values([robust, accuracy], ascending=[True, False])
    chosen = ranked.drop_duplicates("config_key").head(top_k)
    log.info("%d robust configs chosen (accuracy floor %.4g on %s)", len(chosen), floor, accuracy)
    return chosen


def select_robust(
    frame: pd.DataFrame, *, objectives: Sequence[ObjectiveConfig], top_k: int, tolerance: float
) -> list[dict[str, Any]]:
    """Params of the configs `rank_robust` picks."""
    return list(rank_robust(frame, objectives=objectives, top_k=top_k, tolerance=tolerance)["params"])


def config_means(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: metric means over its finished seed replicates."""
    done = frame[frame["status"] == "FINISHED"]
    if done.empty:
        return done
    numeric = done.select_dtypes("number").drop(columns=["seed"], errors="ignore")
    means = numeric.groupby(done["config_key"]).mean()
    first = done.groupby("config_key")[["params", "baseline", "status"]].first()
    return first.join(means).reset_index()


def baseline_params_from(frame: pd.DataFrame) -> dict[str, Any] | None:
    """The searched baseline's params (the control enqueued first), if it was logged."""
    rows = frame[frame["baseline"]] if not frame.empty else frame
    return None if rows.empty else dict(rows.iloc[0]["params"])
