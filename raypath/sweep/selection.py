"""Read a sweep's runs back from MLflow as a table, and pick the configurations worth replicating.

MLflow is the record of truth (it survives restores and lives beside the Tune directory), so the
replicate phase and `raypath compare` both select from it rather than from in-memory Tune results.

Selection must not hinge on float noise: two values of a selection metric closer than the tie
tolerance (`tie_tolerance`, 1e-3 by default) are a tie, and a tie goes to the simpler
configuration (the lower sum of robustness-loss weights), then to the lower config key. The rule:

1. the best-tuned baseline is the baseline configuration with the highest validation accuracy
   (ties as above);
2. the accuracy floor is its accuracy minus `accuracy_tolerance`; a robust configuration keeps the
   floor when its accuracy is at least the floor minus the tie tolerance;
3. robust configurations above the floor are ranked by the robustness metric (lower is better),
   ties as above; when none keeps the floor, all are ranked the same way and marked below it.

Rows are read in a fixed order (by trial key), so the same runs give the same choice and the same
means to the last bit whatever order MLflow returns them in.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from raypath.sweep.config import ObjectiveConfig
from raypath.sweep.space import ROBUST_KEYS

log = logging.getLogger(__name__)
COMPLETED = "best_epoch"  # only logged by a member that finished training and its final evaluation
TIE_TOLERANCE = 1e-3


def robustness_metric(objectives: Sequence[ObjectiveConfig]) -> str:
    """The metric that says 'robust': the first minimised objective, else the validation spread."""
    return next((o.metric for o in objectives if o.mode == "min"), "val/score_spread")


def loss_weight_sum(params: dict[str, Any]) -> float:
    """How much robustness a configuration asks for: the sum of its loss weights (0 = a baseline)."""
    return float(sum(float(params.get(k) or 0.0) for k in ROBUST_KEYS))


def tie_ranked(rows: pd.DataFrame, *, metric: str, mode: str, tie: float) -> pd.DataFrame:
    """`rows` best first on `metric`: values within `tie` of the best remaining one are tied, and a tie
    goes to the lower loss-weight sum, then the lower config key."""
    values = (1.0 if mode == "min" else -1.0) * rows[metric].to_numpy(dtype=float)
    weights, keys = rows["params"].map(loss_weight_sum).to_numpy(), rows["config_key"].astype(str).to_numpy()
    remaining, order = np.ones(len(rows), dtype=bool), []
    while remaining.any():
        tied = np.flatnonzero(remaining & (values <= values[remaining].min() + tie))
        pick = min(tied, key=lambda i: (weights[i], keys[i]))
        order.append(pick)
        remaining[pick] = False
    return rows.iloc[order]


@dataclass(frozen=True)
class Selection:
    """The robust configurations chosen, and everything a reader needs to judge the choice.

    The accuracy floor is the best-tuned baseline's validation accuracy minus the tolerance. When no
    robust configuration reaches it, the most robust ones are still returned, flagged `below_floor`,
    so a report shows them marked instead of dropping them without a word. `ranked` and `baselines`
    hold every candidate in rank order, for the report's stability section.
    """

    rows: pd.DataFrame
    accuracy: str
    robustness: str
    floor: float
    baseline_accuracy: float
    tolerance: float
    val_specimens: float
    below_floor: bool
    tie: float = TIE_TOLERANCE
    ranked: pd.DataFrame = field(default_factory=pd.DataFrame)
    baselines: pd.DataFrame = field(default_factory=pd.DataFrame)

    def describe(self) -> str:
        """One sentence: the rule, the numbers behind it, and whether anything passed it."""
        if not np.isfinite(self.baseline_accuracy):
            return f"no finished baseline: robust configurations ranked by {self.robustness} alone"
        rule = (f"accuracy floor {self.accuracy} >= {self.floor:.3f} (best baseline "
                f"{self.baseline_accuracy:.3f} - {self.tolerance:g}, validation split, "
                f"{self.val_specimens:.0f} specimens)")
        if self.below_floor:
            return f"no robust configuration reached the {rule}; the most robust below it is shown, marked"
        return (f"robust configurations ranked by {self.robustness} among those above the {rule}; values "
                f"within {self.tie:g} are ties, going to the lower loss-weight sum")


def _finished(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    if frame.empty or COMPLETED not in frame or "status" not in frame or any(m not in frame for m in metrics):
        return frame.iloc[0:0]
    done = frame[(frame["status"] == "FINISHED") & frame[COMPLETED].notna()]
    return done[np.logical_and.reduce([np.isfinite(done[m].astype(float)) for m in metrics])]


def rank_baselines(frame: pd.DataFrame, *, accuracy: str, tie: float = TIE_TOLERANCE) -> pd.DataFrame:
    """Finished baseline rows (runs or per-config means), the best-tuned first."""
    done = _finished(frame, [accuracy])
    baselines = done[done["baseline"]] if len(done) else done
    return tie_ranked(baselines, metric=accuracy, mode="max", tie=tie) if len(baselines) else baselines


def rank_robust(
    frame: pd.DataFrame, *, objectives: Sequence[ObjectiveConfig], top_k: int, tolerance: float,
    tie: float = TIE_TOLERANCE,
) -> Selection:
    """The `top_k` most robust completed configs within `tolerance` of the best baseline's accuracy.

    Accuracy is the first objective (a maximised validation metric); robustness is
    `robustness_metric`. Rows may be single runs or per-config means (same columns). Without a
    finished baseline the accuracy floor is not applied. Ties: see the module docstring.
    """
    accuracy, robust = objectives[0].metric, robustness_metric(objectives)
    done = _finished(frame, [accuracy, robust])
    baselines = rank_baselines(frame, accuracy=accuracy, tie=tie)
    best = float(baselines[accuracy].iloc[0]) if len(baselines) else np.nan
    floor = best - tolerance if np.isfinite(best) else -np.inf
    robust_rows = done[~done["baseline"]] if len(done) else done
    ranked = tie_ranked(robust_rows, metric=robust, mode="min", tie=tie) if len(robust_rows) else robust_rows
    ranked = ranked.drop_duplicates("config_key") if len(ranked) else ranked
    passing = ranked[ranked[accuracy] >= floor - tie] if len(ranked) else ranked
    below = passing.empty and not ranked.empty
    chosen = (ranked if below else passing).head(top_k)
    ranked = pd.concat([passing, ranked.drop(index=passing.index)]) if len(passing) else ranked  # pick order
    count = done.get("val/n_specimens", pd.Series(dtype=float))
    selection = Selection(rows=chosen, accuracy=accuracy, robustness=robust, floor=floor,
                          baseline_accuracy=best, tolerance=tolerance,
                          val_specimens=float(count.max()) if len(count) else np.nan, below_floor=below,
                          tie=tie, ranked=ranked, baselines=baselines)
    (log.warning if below else log.info)("%s", selection.describe())
    return selection


def select_robust(
    frame: pd.DataFrame, *, objectives: Sequence[ObjectiveConfig], top_k: int, tolerance: float,
    tie: float = TIE_TOLERANCE,
) -> list[dict[str, Any]]:
    """Params of the configs `rank_robust` picks."""
    chosen = rank_robust(frame, objectives=objectives, top_k=top_k, tolerance=tolerance, tie=tie)
    return list(chosen.rows["params"]) if len(chosen.rows) else []


def config_means(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: metric means over its finished seed replicates (in key order, so
    the means are the same to the last bit whatever order the runs came in)."""
    done = frame[frame["status"] == "FINISHED"]
    if done.empty:
        return done
    done = done.sort_values([c for c in ("config_key", "key", "run_id") if c in done], kind="stable")
    numeric = done.select_dtypes("number").drop(columns=["seed"], errors="ignore")
    means = numeric.groupby(done["config_key"]).mean()
    first = done.groupby("config_key")[["params", "baseline", "status"]].first()
    return first.join(means).reset_index()


def best_baseline(frame: pd.DataFrame, *, accuracy: str, tie: float = TIE_TOLERANCE) -> dict[str, Any] | None:
    """Params of the best-tuned baseline (highest validation accuracy among finished baseline runs)."""
    ranked = rank_baselines(frame, accuracy=accuracy, tie=tie)
    if ranked.empty:
        rows = frame[frame["baseline"]] if not frame.empty and "baseline" in frame else frame.iloc[0:0]
        return None if rows.empty else dict(rows.iloc[0]["params"])
    return dict(ranked.iloc[0]["params"])
