"""Read a sweep's runs back from MLflow as a table, and pick the configurations worth replicating.

MLflow is the record of truth (it survives restores and lives beside the Tune directory), so the
replicate phase and `raypath compare` both select from it rather than from in-memory Tune results.
"""

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import ViewType

from raypath.sweep.config import ObjectiveConfig
from raypath.sweep.tracking import (
    TAG_BASELINE,
    TAG_CAVEAT,
    TAG_CONFIG,
    TAG_KEY,
    TAG_KIND,
    TAG_PARAMS,
    TAG_PHASE,
    TAG_SEED,
    TAG_UNDEFINED,
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
            "fold": int(r.data.tags.get("raypath.fold", -1)),
            "params": json.loads(r.data.tags.get(TAG_PARAMS, "{}")),
            "undefined": {k.removeprefix(TAG_UNDEFINED): v for k, v in r.data.tags.items()
                          if k.startswith(TAG_UNDEFINED)},
            "caveats": {k.removeprefix(TAG_CAVEAT): v for k, v in r.data.tags.items()
                        if k.startswith(TAG_CAVEAT)},
            **r.data.metrics,
        }
        for r in runs
    ]
    return pd.DataFrame(rows)


def robustness_metric(objectives: Sequence[ObjectiveConfig]) -> str:
    """The metric that says 'robust': the first minimised objective, else the validation spread."""
    return next((o.metric for o in objectives if o.mode == "min"), "val/score_spread")


@dataclass(frozen=True)
class Selection:
    """The robust configurations chosen, and everything a reader needs to judge the choice.

    The accuracy floor is the best-tuned baseline's validation accuracy minus the tolerance. When no
    robust configuration reaches it, the most robust ones are still returned, flagged `below_floor`,
    so a report shows them marked instead of dropping them without a word.
    """

    rows: pd.DataFrame
    accuracy: str
    robustness: str
    floor: float
    baseline_accuracy: float
    tolerance: float
    val_specimens: float
    below_floor: bool

    def describe(self) -> str:
        """One sentence: the rule, the numbers behind it, and whether anything passed it."""
        if not np.isfinite(self.baseline_accuracy):
            return f"no finished baseline: robust configurations ranked by {self.robustness} alone"
        rule = (f"accuracy floor {self.accuracy} >= {self.floor:.3f} (best baseline "
                f"{self.baseline_accuracy:.3f} - {self.tolerance:g}, validation split, "
                f"{self.val_specimens:.0f} specimens)")
        if self.below_floor:
            return f"no robust configuration reached the {rule}; the most robust below it is shown, marked"
        return f"robust configurations ranked by {self.robustness} among those above the {rule}"


def _finished(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    if frame.empty or COMPLETED not in frame or any(m not in frame for m in metrics):
        return frame.iloc[0:0]
    done = frame[(frame["status"] == "FINISHED") & frame[COMPLETED].notna()]
    return done[np.logical_and.reduce([np.isfinite(done[m].astype(float)) for m in metrics])]


def rank_robust(
    frame: pd.DataFrame, *, objectives: Sequence[ObjectiveConfig], top_k: int, tolerance: float
) -> Selection:
    """The `top_k` most robust completed configs within `tolerance` of the best baseline's accuracy.

    Accuracy is the first objective (a maximised validation metric); robustness is
    `robustness_metric`. Rows may be single runs or per-config means (same columns). Without a
    finished baseline the accuracy floor is not applied.
    """
    accuracy, robust = objectives[0].metric, robustness_metric(objectives)
    done = _finished(frame, [accuracy, robust])
    best = done.loc[done["baseline"], accuracy].max() if len(done) and done["baseline"].any() else np.nan
    floor = best - tolerance if np.isfinite(best) else -np.inf
    robust_rows = done[~done["baseline"]].sort_values([robust, accuracy], ascending=[True, False])
    passing = robust_rows[robust_rows[accuracy] >= floor]
    below = passing.empty and not robust_rows.empty
    chosen = (robust_rows if below else passing).drop_duplicates("config_key").head(top_k)
    count = done.get("val/n_specimens", pd.Series(dtype=float))
    selection = Selection(rows=chosen, accuracy=accuracy, robustness=robust, floor=floor,
                          baseline_accuracy=best, tolerance=tolerance,
                          val_specimens=float(count.max()) if len(count) else np.nan, below_floor=below)
    (log.warning if below else log.info)("%s", selection.describe())
    return selection


def select_robust(
    frame: pd.DataFrame, *, objectives: Sequence[ObjectiveConfig], top_k: int, tolerance: float
) -> list[dict[str, Any]]:
    """Params of the configs `rank_robust` picks."""
    chosen = rank_robust(frame, objectives=objectives, top_k=top_k, tolerance=tolerance)
    return list(chosen.rows["params"])


def config_means(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: metric means over its finished seed replicates."""
    done = frame[frame["status"] == "FINISHED"]
    if done.empty:
        return done
    numeric = done.select_dtypes("number").drop(columns=["seed"], errors="ignore")
    means = numeric.groupby(done["config_key"]).mean()
    first = done.groupby("config_key")[["params", "baseline", "status"]].first()
    return first.join(means).reset_index()


def best_baseline(frame: pd.DataFrame, *, accuracy: str) -> dict[str, Any] | None:
    """Params of the best-tuned baseline (highest validation accuracy among finished baseline runs)."""
    done = _finished(frame, [accuracy])
    rows = done[done["baseline"]] if len(done) else done
    if rows.empty:
        rows = frame[frame["baseline"]] if not frame.empty else frame
        return None if rows.empty else dict(rows.iloc[0]["params"])
    return dict(rows.sort_values(accuracy, ascending=False).iloc[0]["params"])
