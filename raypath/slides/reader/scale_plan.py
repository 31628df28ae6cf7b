"""Which pyramid level and which JPEG DCT scale factor to decode a tile from: the least work that
still delivers at least the tile's pixels.

libjpeg-turbo decodes a JPEG at 1/2, 1/4 or 1/8 of its size in the DCT domain: the inverse
transform, upsampling and colour conversion shrink with the output, the Huffman decoding does not.
A level therefore costs its compressed pixels times (ENTROPY_SHARE + (1 - ENTROPY_SHARE) / f^2),
plus the final resize when the decoded size is not the tile size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DCT_FACTORS = (1, 2, 4, 8)
ENTROPY_SHARE = 0.55
"""Share of a full decode that 1/8-scale decoding still costs: 256-px Q80 H&E tiles with
libjpeg-turbo 3.1 on this machine took 0.137 ms at full size, 0.103 at 1/2, 0.079 at 1/8."""
RESAMPLE_COST = 1.5
"""Cost of a Lanczos resize per output pixel, in units of a full decode per level pixel."""
EPSILON = 1e-6


@dataclass(frozen=True)
class LevelOption:
    """One level the scaled decoder could read: its downsample and JPEG tile size (None: not JPEG-tiled)."""

    downsample: float
    tile_size: tuple[int, int] | None


@dataclass(frozen=True)
class DecodePlan:
    """Decode `level` at 1/`factor`; a region of `extent_l0` level-0 px is then `decoded_px` pixels wide."""

    level: int
    factor: int
    decoded_px: float
    cost: float


def plan_cost(side_px: float, factor: int, *, tile_px: int) -> float:
    """Relative work of decoding a `side_px`-wide region at 1/`factor` and bringing it to `tile_px`."""
    decode = side_px**2 * (ENTROPY_SHARE + (1 - ENTROPY_SHARE) / factor**2)
    decoded = side_px / factor
    if abs(decoded - tile_px) <= EPSILON:
        return decode
    if abs(decoded / tile_px - round(decoded / tile_px)) <= EPSILON:  # area mean: cheap
        return decode + decoded**2 * RESAMPLE_COST / 4
    return decode + tile_px**2 * RESAMPLE_COST * max(1.0, decoded / tile_px) ** 2


def choose_plan(
    levels: Sequence[LevelOption], *, extent_l0: float, tile_px: int, slack: float = 0.0
) -> DecodePlan | None:
    """The cheapest (level, DCT factor) whose decoded region is at least `tile_px / (1 + slack)` wide.

    With slack 0 nothing is ever upsampled; a slack (the tiling's mpp tolerance) lets a slide at,
    say, 0.2527 um/px decode at 1/2 (0.505 um/px) and resize the last 1 % instead of decoding at full
    size. Only factors that divide the level's JPEG tile size are used, so scaled tiles abut exactly.
    None when no JPEG-tiled level is fine enough.
    """
    floor_px = tile_px / (1 + slack)
    best: DecodePlan | None = None
    for level, option in enumerate(levels):
        if option.tile_size is None:
            continue
        side = extent_l0 / option.downsample
        for factor in DCT_FACTORS:
            if option.tile_size[0] % factor or option.tile_size[1] % factor:
                continue
            if side / factor < floor_px - EPSILON:
                break
            plan = DecodePlan(level, factor, side / factor, plan_cost(side, factor, tile_px=tile_px))
            if best is None or plan.cost < best.cost - EPSILON:
                best = plan
    return best


def is_whole(value: float) -> bool:
    return abs(value - round(value)) <= EPSILON


def snap(value: float) -> float:
    """Whole numbers that float arithmetic nudged off (4.0000000001) back onto the grid."""
    return float(round(value)) if is_whole(value) else value


def span(start: float, length: float) -> tuple[int, int]:
    """Whole pixels [first, last) covering [start, start + length)."""
    return math.floor(snap(start)), math.ceil(snap(start + length))
