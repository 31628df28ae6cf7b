"""Which runs a comparison is about: the sweep's experiments per FM, and its model groups.

Groups come from the replicate phase when it ran (seed replicates give confidence intervals),
else from single search runs. Failed or unfinished runs never enter a group (issue 8, case 11).
"""

from dataclasses import dataclass

import pandas as pd

from raypath.compare.config import CompareConfig
from raypath.sweep.selection import COMPLETED, Selection, config_means, rank_baselines, rank_robust
from raypath.tracking.queries import TrackingClient, sweep_experiments


def compared_experiments(client: TrackingClient, config: CompareConfig) -> dict[str, str]:
    """{fm: experiment_id} of the FMs to compare; an FM the sweep did not run is an error."""
    found = sweep_experiments(client, sweep_id=config.sweep_id)
    wanted = config.fms or sorted(found)
    missing = [fm for fm in wanted if fm not in found]
    if missing or not found:
        raise ValueError(
            f"sweep '{config.sweep_id}' has no MLflow experiment for {missing or 'any FM'} at "
            f"{config.tracking_uri()}; found {sorted(found)}"
        )
    return {fm: found[fm] for fm in wanted}


@dataclass(frozen=True)
class ModelGroups:
    """The compared models' runs ('baseline', 'robust 1', ...), how they were chosen, and from where."""

    groups: dict[str, pd.DataFrame]
    selection: Selection
    phase: str  # "replicates" (intervals over seeds or folds) or "search" (single runs)


def model_groups(runs: pd.DataFrame, config: CompareConfig) -> ModelGroups:
    """The best-tuned baseline and the chosen robust configurations, from finished, completed runs.

    Chosen on validation metrics (means over replicates where they ran); never on test metrics.
    """
    if runs.empty or COMPLETED not in runs:
        selection = rank_robust(runs, objectives=config.objectives, top_k=config.top_k,
                                tolerance=config.accuracy_tolerance, tie=config.tie_tolerance)
        return ModelGroups(groups={}, selection=selection, phase="search")
    done = runs[(runs["status"] == "FINISHED") & runs[COMPLETED].notna()]
    replicates = done[done["phase"] == "replicates"]
    source = replicates if len(replicates) else done[done["phase"] == "search"]
    means = config_means(source)
    groups = {}
    baselines = rank_baselines(means, accuracy=config.objectives[0].metric, tie=config.tie_tolerance)
    if len(baselines):
        groups["baseline"] = source[source["config_key"] == baselines["config_key"].iloc[0]]
    selection = rank_robust(means, objectives=config.objectives, top_k=config.top_k,
                            tolerance=config.accuracy_tolerance, tie=config.tie_tolerance)
    for rank, key in enumerate(selection.rows.get("config_key", []), start=1):
        groups[f"robust {rank}"] = source[source["config_key"] == key]
    phase = "replicates" if len(replicates) else "search"
    return ModelGroups(groups=groups, selection=selection, phase=phase)
