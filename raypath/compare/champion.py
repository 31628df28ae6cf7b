"""Which model becomes `raypath-<sweep>-<fm>@champion`, and what its registry version says about it."""

import json
import logging

import pandas as pd

from raypath.compare.config import CompareConfig
from raypath.compare.groups import ModelGroups
from raypath.compare.report import number
from raypath.tracking.queries import TrackingClient
from raypath.tracking.results import register_model

log = logging.getLogger(__name__)


def champion_group(chosen: ModelGroups) -> str | None:
    """The most robust configuration that kept the accuracy floor; else the best-tuned baseline (a
    robust model that lost accuracy is reported, not deployed)."""
    if "robust 1" in chosen.groups and not chosen.selection.below_floor:
        return "robust 1"
    return "baseline" if "baseline" in chosen.groups else None


def champion_name(config: CompareConfig, *, fm: str) -> str:
    """The registered model name of a sweep's champion on one FM."""
    return f"raypath-{config.sweep_id}-{fm}"


def register_champion(client: TrackingClient, chosen: ModelGroups, table: pd.DataFrame,
                      config: CompareConfig, *, fm: str, tags: dict[str, str]) -> str | None:
    """Its best replicate (validation accuracy) registered with FM, weights, tiling, loss weights and
    the table's metrics with intervals as version tags."""
    name = champion_group(chosen)
    if not config.register_model or name is None:
        return None
    replicated = chosen.groups[name][chosen.groups[name]["phase"] == "replicates"]
    if replicated.empty:
        log.warning("%s: no replicate runs (replicates.seeds: 0), so no saved model to register", fm)
        return None
    if name == "baseline":
        log.warning("%s: no robust configuration kept the accuracy floor; the champion is the best-tuned "
                    "baseline", fm)
    best = replicated.sort_values(config.objectives[0].metric, ascending=False).iloc[0]
    metrics = table[table["model"] == name]
    version_tags = {
        "fm": fm, "sweep_id": config.sweep_id, "model": name,
        "weights_hash": tags.get("raypath.weights_hash", ""),
        "tiling_hash": tags.get("raypath.tiling_hash", ""), "seed": str(best["seed"]),
        "loss_weights": json.dumps({k: v for k, v in best["params"].items() if k.startswith("losses.")}),
        **{f"metric.{row.metric}": f"{number(row.mean, decimals=4)} [{number(row.low, decimals=4)}, "
                                   f"{number(row.high, decimals=4)}] over "
                                   f"{row.n} replicates" for row in metrics.itertuples() if row.n},
    }
    return register_model(client, name=champion_name(config, fm=fm), run_id=best["run_id"],
                          description=f"champion ({name}) of sweep {config.sweep_id} on {fm}",
                          tags=version_tags)
