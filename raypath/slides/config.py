"""Tissue detection and tiling settings; their hash keys the feature store location."""

import hashlib
import json
from typing import Literal

from pydantic import Field

from raypath.config import StrictModel
from raypath.units import Microns, MicronsPerPixel, Pixels, SquareMicrons


class TissueConfig(StrictModel):
    """How tissue is found on a thumbnail (saturation + Otsu, then morphology)."""

    thumbnail_mpp: MicronsPerPixel = Field(8.0, gt=0, description="resolution of the detection thumbnail")
    min_saturation: float = Field(0.05, ge=0, le=1, description="floor under the Otsu threshold")
    closing_um: Microns = Field(32.0, ge=0, description="morphological closing radius in microns")
    min_region_um2: SquareMicrons = Field(20000.0, ge=0, description="drop tissue islands smaller than this")


class TilingConfig(StrictModel):
    """Tile geometry at a fixed physical resolution, independent of the scanner's native mpp."""

    tile_px: Pixels = Field(224, gt=0, description="tile side in pixels at target_mpp")
    target_mpp: MicronsPerPixel = Field(0.5, gt=0, description="microns per pixel of the tiles fed to the FM")
    stride_px: Pixels | None = Field(None, gt=0, description="step between tiles; default = tile_px")
    min_tissue_fraction: float = Field(0.5, ge=0, le=1)
    max_tiles_per_slide: int | None = Field(None, gt=0, description="evenly subsample above this")
    mpp_tolerance: float = Field(
        0.1, ge=0, description="relative mpp slack before resizing; also how far below the tile size the "
                               "scaled-JPEG reader may decode (then resizes the rest)")
    reader: Literal["auto", "jpeg", "cucim", "openslide"] = Field(
        "auto", description="slide library; auto = scaled JPEG decoding where every level is JPEG-tiled, "
                            "else cuCIM for TIFF/SVS, else OpenSlide")
    tissue: TissueConfig = TissueConfig()
    grid: Literal["per_scan", "reference"] = Field(
        "per_scan", description="where a scan's tiles lie: on its own grid, or (reference) on its specimen's "
                                "reference scan's grid mapped through the registration, so registered tile "
                                "pairs show the same tissue; the reference scans are tiled as per_scan")

    def cache_key(self) -> str:
        """Short stable hash of every field that changes which pixels become a tile. `grid` counts only
        when it is `reference`, so stores tiled per scan keep the hash they had before it existed."""
        fields = self.model_dump(exclude={"reader"} | ({"grid"} if self.grid == "per_scan" else set()))
        blob = json.dumps(fields, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]
