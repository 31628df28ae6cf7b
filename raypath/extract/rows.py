"""The columns that flow between pipeline stages, and builders for the two kinds of rows.

Tile rows carry one decoded tile each. A slide that cannot be (fully) read emits a single status
row instead (status "failed" or "skipped") with the same columns, so every block has one schema
and per-slide errors travel with the data rather than failing a Ray Data block.
"""

from typing import Any

import numpy as np

TILE = "tile"
FAILED = "failed"
SKIPPED = "skipped"

IMAGE = "image"
STAGES = ("open", "tissue", "tiling", "read", "encode", "write")


def feature_column(encoder: str) -> str:
    """Column holding one encoder's (n, dim) float32 features."""
    return f"features::{encoder}"


def need_column(encoder: str) -> str:
    """Boolean column: this slide still lacks a file for `encoder` (resume runs only those)."""
    return f"need::{encoder}"


def encoded_column(encoder: str) -> str:
    """Boolean column set by the inference actor for rows it actually ran through the model."""
    return f"encoded::{encoder}"


def tile_batch(
    *, task: dict[str, Any], images: np.ndarray, start: int, coords: np.ndarray,
    tissue_fraction: np.ndarray, geometry: dict[str, Any], n_tiles: int, attempts: int,
    node: dict[str, str], read_s: float,
) -> dict[str, np.ndarray]:
    """A chunk of consecutive tiles of one slide, ready to become a Ray Data block."""
    count = len(images)
    columns = _constant_columns(task, count=count, status=TILE, stage="", reason="",
                                attempts=attempts, node=node, read_s=read_s)
    columns.update(
        tile_index=np.arange(start, start + count, dtype=np.int32),
        n_tiles=np.full(count, n_tiles, dtype=np.int32),
        x=np.asarray(coords[:, 0], dtype=np.int64),
        y=np.asarray(coords[:, 1], dtype=np.int64),
        tissue_fraction=np.asarray(tissue_fraction, dtype=np.float32),
        extent_l0=np.full(count, geometry["extent_l0"], dtype=np.int32),
        mpp=np.full(count, geometry["mpp"], dtype=np.float32),
    )
    columns[IMAGE] = images
    return columns


def status_batch(
    *, task: dict[str, Any], status: str, stage: str, reason: str, attempts: int,
    node: dict[str, str], read_s: float, tile_px: int,
) -> dict[str, np.ndarray]:
    """One row saying a slide failed or was skipped; its blank image is never encoded."""
    columns = _constant_columns(task, count=1, status=status, stage=stage, reason=reason,
                                attempts=attempts, node=node, read_s=read_s)
    columns.update(
        tile_index=np.full(1, -1, dtype=np.int32), n_tiles=np.zeros(1, dtype=np.int32),
        x=np.zeros(1, dtype=np.int64), y=np.zeros(1, dtype=np.int64),
        tissue_fraction=np.zeros(1, dtype=np.float32), extent_l0=np.zeros(1, dtype=np.int32),
        mpp=np.zeros(1, dtype=np.float32),
    )
    columns[IMAGE] = np.zeros((1, tile_px, tile_px, 3), dtype=np.uint8)
    return columns


def _constant_columns(
    task: dict[str, Any], *, count: int, status: str, stage: str, reason: str, attempts: int,
    node: dict[str, str], read_s: float,
) -> dict[str, np.ndarray]:
    columns = {
        "slide_id": np.full(count, task["slide_id"], dtype=object),
        "status": np.full(count, status, dtype=object),
        "stage": np.full(count, stage, dtype=object),
        "reason": np.full(count, reason, dtype=object),
        "attempts": np.full(count, attempts, dtype=np.int32),
        "node_id": np.full(count, node["node_id"], dtype=object),
        "node_ip": np.full(count, node["node_ip"], dtype=object),
        "read_s": np.full(count, read_s, dtype=np.float32),
    }
    for key, value in task.items():
        if key.startswith("need::"):
            columns[key] = np.full(count, bool(value), dtype=bool)
    return columns
