"""Square tissue patches read at a chosen resolution around a level-0 point, and a moving scan's
patch warped into the reference patch's pixel grid through a transform.

A patch knows where its pixels lie on level 0 (`origin`, `step`), so shifts measured between
patches convert back to level-0 pixels exactly, whichever pyramid level and resize produced them.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from raypath.slides.reader import SlideReader
from raypath.slides.reader.resize import resize_tile
from raypath.slides.registration.estimate import optical_density
from raypath.slides.registration.transform import Transform


@dataclass(frozen=True)
class Patch:
    """Optical density of a square patch; pixel (row i, col j) is centred on level-0 point
    origin + ((j + 0.5) * step, (i + 0.5) * step)."""

    density: np.ndarray
    origin: np.ndarray
    step: float

    @property
    def centre(self) -> np.ndarray:
        return self.origin + self.step * np.array(self.density.shape[::-1], dtype=np.float64) / 2.0

    def pixel_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Level-0 x and y of every pixel centre, each (side, side)."""
        rows, cols = np.indices(self.density.shape, dtype=np.float64)
        return self.origin[0] + (cols + 0.5) * self.step, self.origin[1] + (rows + 0.5) * self.step


def whole_factor(reader: SlideReader, mpp: float) -> int:
    """Level-0 pixels per patch pixel: the largest whole number whose pixel is not coarser than `mpp`."""
    return max(1, int(mpp / reader.mpp + 1e-9))


def read_patch(reader: SlideReader, *, centre: np.ndarray, side: int, mpp: float) -> Patch:
    """`side` x `side` pixels at the finest whole multiple k of the scan's pixel not exceeding `mpp`
    (a k x k area mean of level 0), centred on a level-0 point.

    Level 0 and a whole factor keep the patch exactly where it is asked for: a lower level's
    downsample is a rounded ratio of level sizes, so a region placed through it drifts with its
    distance from the origin (~1 level-0 px per 10,000 px on a 40x scan), and the scaled-JPEG
    reader takes lower levels whenever they are cheaper. The decode costs ~3 Mpx per 256 px patch
    of a 40x scan at 2 um/px.
    """
    factor = whole_factor(reader, mpp)
    read_size = side * factor
    origin = np.round(np.asarray(centre, dtype=np.float64) - read_size / 2.0)
    location = (int(origin[0]), int(origin[1]))
    image = reader.read_region(location=location, level=0, size=(read_size, read_size))
    return Patch(density=optical_density(resize_tile(image, side)), origin=origin, step=float(factor))


def warp_into(moving: Patch, *, onto: Patch, transform: Transform) -> np.ndarray:
    """The moving patch resampled at the reference patch's pixel centres: pixel q shows the moving
    scan at transform^-1(q) (`transform` maps moving level-0 points onto the reference); zero outside."""
    xs, ys = onto.pixel_centres()
    points = transform.inverse().apply(np.stack([xs.ravel(), ys.ravel()], axis=1))
    cols = (points[:, 0] - moving.origin[0]) / moving.step - 0.5
    rows = (points[:, 1] - moving.origin[1]) / moving.step - 0.5
    warped = ndimage.map_coordinates(moving.density, [rows, cols], order=1, cval=0.0)
    return warped.reshape(onto.density.shape).astype(np.float32)
