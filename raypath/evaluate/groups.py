"""Which runs a comparison is about: the sweep's experiments per FM, and its model groups.

Groups come from the replicate phase when it ran (seed replicates give confidence intervals),
else from single search runs. Failed or unfinished runs never enter a group (issue 8, case 11).
"""

import pandas as pd
from mlflow import MlflowClient

from raypath.evaluate.config import CompareConfig
from raypath.sweep.selection import COMPLETED, config_means, rank_robust


def sweep_experiments(client: MlflowClient, config: CompareConfig) -> dict[str, str]:
    """{fm: experiment_id} of the sweep, from the experiment names the sweep created."""
    prefix = f"raypath/{config.sweep_id}/"
    found = {
        e.name.removeprefix(prefix): e.experiment_id
        for e in client.search_experiments()
        if e.name.startswith(prefix)
    }
    wanted = config.fms or sorted(found)
    missing = [fm for fm in wanted if fm not in found]
    if missing or not found:
        raise ValueError(
            f"sweep '{config.sweep_id}' has no MLflow experiment for {missing or 'any FM'} at "
            f"{config.tracking_uri()}; found {sorted(found)}"
        )
    return {fm: found[fm] for fm in wanted}


def model_groups(runs: pd.DataFrame, config: CompareConfig) -> dict[str, pd.DataFrame]:
    """{'baseline': runs, 'robust 1': runs, ...}: finished, completed runs of each chosen config."""
    done = runs[(runs["status"] == "FINISHED") & runs.get(COMPLETED, pd.Series(dtype=float)).notna()]
    replicates = done[done["phase"] == "replicates"]
    source = replicates if len(replicates) else done[done["phase"] == "search"]
    means = config_means(source)
    groups = {}
    if len(means) and means["baseline"].any():
        groups["baseline"] = source[
            source["config_key"] == means.loc[means["baseline"], "config_key"].iloc[0]
        ]
    chosen = rank_robust(
        means, objectives=config.objectives, top_k=config.top_k, tolerance=config.accuracy_tolerance
    )
    for rank, key in enumerate(chosen.get("config_key", []), start=1):
        groups[f"robust {rank}"] = source[source["config_key"] == key]
    return groups
