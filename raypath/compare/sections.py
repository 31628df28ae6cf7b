"""The prose of a comparison report: how models were chosen, on which split each number stands, the
loss weights of every model and where its runs are in MLflow."""

import json
from urllib.parse import urlparse

import numpy as np

from raypath.compare.champion import champion_name
from raypath.compare.config import CompareConfig
from raypath.compare.groups import ModelGroups
from raypath.tracking.experiments import UI_TRAINING_VIEW


def notes(chosen: ModelGroups, config: CompareConfig, *, fm: str, registered: str | None) -> list[str]:
    """Selection rule and outcome, split of the table, replicates, registration."""
    s = chosen.selection
    lines = [f"Selection ({chosen.phase} runs, validation split only): {s.describe()}."]
    if chosen.phase == "replicates":
        folds = any((g.get("fold", -1) >= 0).any() for g in chosen.groups.values())
        kind = ("cross-validation folds (each a different test fold)" if folds
                else "seeds (one fixed patient split)")
        lines.append(f"Table: test split, mean over replicates = {kind}.")
    else:
        lines.append("Table: test split of single search runs (no replicate phase: no intervals).")
    counts = [g["test/n_specimens"].max() for g in chosen.groups.values() if "test/n_specimens" in g]
    if counts and np.isfinite(max(counts)):
        lines.append(f"Test split: {max(counts):.0f} specimens per replicate.")
    if registered is not None:
        lines.append(f"Registered as {champion_name(config, fm=fm)} version {registered} (alias champion: "
                     f"models:/{champion_name(config, fm=fm)}@champion).")
    return lines


def split_notes(tags: dict[str, str]) -> list[str]:
    """Where the split comes from, the held-out scanners, and the leakage audit (experiment tags)."""
    if "raypath.split.source" not in tags:
        return ["Split: not recorded (a sweep from before the split policy)."]
    held = tags.get("raypath.split.held_out_scanners", "none")
    lines = [f"Split: {tags.get('raypath.split.origin', tags['raypath.split.source'])}; held-out scanners: "
             f"{held}{' (test only)' if held != 'none' else ''}."]
    if "raypath.leakage.audit" in tags:
        audit = json.loads(tags["raypath.leakage.audit"])
        sizes = ", ".join(f"{name} {n['patients']} patients / {n['specimens']} specimens / {n['slides']} "
                          "slides" for name, n in audit["splits"].items())
        verdict = "passed" if audit["passed"] else "FAILED"
        lines.append(f"Leakage audit {verdict} (no patient or specimen in two splits, no held-out scanner "
                     f"in train/val): {sizes}.")
    return lines


def _run_link(run_id: str, *, tracking_uri: str, experiment_id: str) -> str:
    if urlparse(tracking_uri).scheme in ("http", "https"):
        return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{UI_TRAINING_VIEW}"
    return f"runs:/{run_id}"


def model_lines(chosen: ModelGroups, *, tracking_uri: str, experiment_id: str) -> list[str]:
    """Per model: its searched parameters (loss weights first) and its runs."""
    lines = []
    for name, runs in chosen.groups.items():
        params = runs.iloc[0]["params"]
        ordered = sorted(params.items(), key=lambda kv: not kv[0].startswith("losses."))
        weights = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in ordered)
        links = ", ".join(_run_link(r, tracking_uri=tracking_uri, experiment_id=experiment_id)
                          for r in runs["run_id"])
        lines.append(f"{name}: {weights}; runs {links}")
    return lines
