"""Manifest -> the slides this run must read, and for each the encoders it still lacks (resume).

A slide is finished for an encoder once its final feature file exists (temporary files never
count), so a rerun after a crash or a partial failure reads only what is missing, and a run that
adds an encoder encodes only that encoder's column.
"""

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raypath.extract import rows
from raypath.paths import ensure_inside, is_remote
from raypath.store import FeatureStore

log = logging.getLogger(__name__)

IDENTITY = ("slide_id", "path", "specimen_id", "patient_id", "scanner")


@dataclass(frozen=True)
class Plan:
    """`tasks` feed the Ray Data pipeline; `slides` keeps every slide's identity for the writer."""

    tasks: list[dict[str, Any]]
    slides: dict[str, dict[str, str]]
    finished: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.slides)


def check_slide_ids(manifest: pd.DataFrame, *, stores: Mapping[str, FeatureStore], source: str) -> None:
    """Refuse hostile or colliding ids before any work: each output path must stay in the root."""
    lowered: dict[str, str] = {}
    for row, slide_id in enumerate(manifest["slide_id"].astype(str), start=2):
        for store in stores.values():
            try:
                target = store.slide_path(slide_id)
            except ValueError as exc:
                raise ValueError(f"{source} line {row}, column 'slide_id': {exc}") from None
            if not is_remote(store.root):
                ensure_inside(store.root, target)
        other = lowered.get(slide_id.lower())
        if other is not None:
            raise ValueError(f"{source} line {row}, column 'slide_id': {slide_id!r} collides with "
                             f"{other!r} (ids must be unique, also ignoring case)")
        lowered[slide_id.lower()] = slide_id


def plan_slides(manifest: pd.DataFrame, *, stores: Mapping[str, FeatureStore]) -> Plan:
    """One task per slide with at least one missing feature file; finished slides are listed."""
    finished_by = {name: set(store.slide_ids()) for name, store in stores.items()}
    tasks, finished, slides = [], [], {}
    for record in manifest.to_dict("records"):
        slide_id = str(record["slide_id"])
        slides[slide_id] = {key: _text(record.get(key)) for key in IDENTITY}
        need = {name: slide_id not in done for name, done in finished_by.items()}
        if not any(need.values()):
            finished.append(slide_id)
            continue
        task = {"slide_id": slide_id, "path": str(Path(record["path"])), "mpp": _mpp(record.get("mpp"))}
        task.update({rows.need_column(name): flag for name, flag in need.items()})
        tasks.append(task)
    log.info("%d slides: %d to read, %d already have every requested encoder's features",
             len(slides), len(tasks), len(finished))
    return Plan(tasks=tasks, slides=slides, finished=finished)


def restrict(plan: Plan, *, encoders: Iterable[str], keep: Callable[[str, str], bool]) -> Plan:
    """`plan` with each task's need flags limited to the (slide id, encoder) pairs `keep` accepts;
    tasks left needing nothing are dropped."""
    tasks = []
    for task in plan.tasks:
        updated = dict(task)
        for name in encoders:
            column = rows.need_column(name)
            updated[column] = bool(task[column]) and keep(task["slide_id"], name)
        if any(updated[rows.need_column(name)] for name in encoders):
            tasks.append(updated)
    return Plan(tasks=tasks, slides=plan.slides, finished=plan.finished)


def _mpp(value: Any) -> float:
    """Manifest mpp override as a float, NaN when absent (Arrow-friendly, unlike None)."""
    return float("nan") if value is None or pd.isna(value) else float(value)


def _text(value: Any) -> str:
    return "" if value is None or (np.isscalar(value) and pd.isna(value)) else str(value)
