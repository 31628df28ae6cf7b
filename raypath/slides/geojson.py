"""Slide overlays as GeoJSON that QuPath imports: tissue outlines, tile grids, per-tile values.

Pathologists review slides in QuPath (and TRIDENT writes its tissue contours as GeoJSON), so every
overlay raypath draws into a picture is also written as a FeatureCollection a viewer can place on the
slide itself. QuPath's reading rules (`PathObjectTypeAdapters`, v0.4+): coordinates are level-0
pixels with the origin at the top-left and y down; `properties.objectType` picks the object kind
("annotation", "tile", "detection"; absent = annotation); `classification` is `{name, color: [r,g,b]}`;
`measurements` is a flat `{name: number}` map, which QuPath shows in its tables and measurement maps.
Tissue is traced from the thumbnail mask exactly (the union of its pixels, holes as interior rings),
so a tile's overlap with the tissue polygons is the tissue fraction tiling computed.
"""

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import shapely
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

TISSUE = {"name": "Tissue", "color": [0, 160, 60]}  # the QC picture's green contour
TILE = {"name": "Tile", "color": [30, 60, 220]}  # the QC picture's blue grid
SQUARE = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]])  # a unit square's closed ring
DECIMALS = 2  # level-0 px: a hundredth of a pixel is far below any viewer's precision


def mask_geometry(mask: np.ndarray, *, downsample: float, dimensions: tuple[int, int]) -> BaseGeometry:
    """The mask's pixels as level-0 (Multi)Polygon: pixel (r, c) covers [c, c+1) x [r, r+1) times
    `downsample` (as the thumbnail does), clipped to the slide's `dimensions` (width, height)."""
    rows, starts, ends = _runs(np.asarray(mask, dtype=bool))
    boxes = shapely.box(starts, rows, ends, rows + 1)
    pixels = shapely.union_all(boxes) if len(boxes) else shapely.Polygon()
    level0 = shapely.transform(pixels, lambda xy: xy * downsample)
    return level0.intersection(box(0, 0, *dimensions)).simplify(0)  # simplify(0): drop collinear points


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, first and one-past-last column of every horizontal run of True pixels."""
    padded = np.pad(mask, ((0, 0), (1, 1))).astype(np.int8)
    edges = np.diff(padded, axis=1)
    start_rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    return start_rows, starts, ends


def polygons(geometry: BaseGeometry) -> list[shapely.Polygon]:
    """The separate pieces of a geometry, largest first, each with its exterior counter-clockwise
    (RFC 7946's winding in the coordinates as written)."""
    parts = [part for part in getattr(geometry, "geoms", [geometry]) if isinstance(part, shapely.Polygon)]
    return [orient(part, sign=1.0) for part in sorted(parts, key=lambda p: -p.area) if not part.is_empty]


def geometry_json(geometry: BaseGeometry) -> dict[str, Any]:
    """GeoJSON geometry with coordinates rounded to `DECIMALS`."""
    def rounded(value: Any) -> Any:
        return round(value, DECIMALS) if isinstance(value, float) else [rounded(v) for v in value]

    shape = mapping(geometry)
    return {"type": shape["type"], "coordinates": rounded(shape["coordinates"])}


def squares_json(coords: np.ndarray, side: int) -> list[dict[str, Any]]:
    """Each tile's square as a GeoJSON Polygon (counter-clockwise, closed), integer level-0 corners."""
    corners = np.asarray(coords, dtype=np.int64).reshape(-1, 1, 2) + SQUARE * side
    return [{"type": "Polygon", "coordinates": [ring]} for ring in corners.tolist()]


def feature(geometry: dict[str, Any], *, object_type: str, classification: Mapping[str, Any] | None = None,
            name: str | None = None, measurements: Mapping[str, float] | None = None) -> dict[str, Any]:
    """One GeoJSON Feature in QuPath's property layout; non-finite measurements are left out (QuPath
    reads a missing measurement as NaN, and JSON has no NaN)."""
    properties: dict[str, Any] = {"objectType": object_type}
    if name is not None:
        properties["name"] = name
    if classification is not None:
        properties["classification"] = dict(classification)
    values = {key: float(value) for key, value in (measurements or {}).items() if np.isfinite(value)}
    if values:
        properties["measurements"] = values
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def tissue_features(mask: np.ndarray, *, downsample: float, dimensions: tuple[int, int]
                    ) -> list[dict[str, Any]]:
    """One "Tissue" annotation per connected piece of tissue, largest first."""
    pieces = polygons(mask_geometry(mask, downsample=downsample, dimensions=dimensions))
    return [feature(geometry_json(piece), object_type="annotation", classification=TISSUE, name=f"tissue {i}")
            for i, piece in enumerate(pieces, start=1)]


def tile_features(coords: np.ndarray, *, extent_l0: int, measurements: Mapping[str, np.ndarray] | None = None,
                  classification: Mapping[str, Any] = TILE) -> list[dict[str, Any]]:
    """One QuPath tile object per level-0 top-left corner, square of side `extent_l0`, each carrying
    its row of every measurement array."""
    columns = {name: np.asarray(values, dtype=float) for name, values in (measurements or {}).items()}
    return [feature(square, object_type="tile", classification=classification,
                    measurements={name: values[i] for name, values in columns.items()})
            for i, square in enumerate(squares_json(coords, extent_l0))]


def tiles_outline(coords: np.ndarray, *, extent_l0: int) -> BaseGeometry:
    """The area a set of tiles covers, as one MultiPolygon (its pieces wound as `polygons` winds them)."""
    squares = shapely.box(coords[:, 0], coords[:, 1], coords[:, 0] + extent_l0, coords[:, 1] + extent_l0)
    return shapely.MultiPolygon(polygons(shapely.union_all(squares).simplify(0)) if len(squares) else [])


def feature_collection(features: Sequence[Mapping[str, Any]]) -> bytes:
    """The FeatureCollection as compact UTF-8 JSON (strict: a NaN raises instead of writing bad JSON)."""
    collection = {"type": "FeatureCollection", "features": list(features)}
    return json.dumps(collection, allow_nan=False, separators=(",", ":")).encode()
