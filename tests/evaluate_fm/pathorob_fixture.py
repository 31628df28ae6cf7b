"""The PathoROB reference fixture: tile embeddings of 3 classes x 3 centres at three centre-effect strengths.

Regenerated from a fixed seed (nothing large is committed). PathoROB's own code was run once on
exactly these arrays and its values are stored beside this file in ``pathorob_reference.json``
together with the PathoROB commit and a checksum of the arrays, so a change here is caught.

Layout (the one PathoROB's metadata has): each (centre, class) cell holds ``SLIDES`` slides of
``TILES`` tiles, rows ordered by centre, class, slide, tile, so the tiles of a slide are contiguous.
Features = a shared offset + class direction + strength x centre direction + slide and tile noise.

Run ``python tests/evaluate_fm/pathorob_fixture.py`` to print the checksums.
"""

import hashlib
from dataclasses import dataclass

import numpy as np

CLASSES = ("class-a", "class-b", "class-c")
CENTERS = ("center-1", "center-2", "center-3")
HELD_OUT = ("center-3",)  # the out-of-domain centre of the APD
SLIDES, TILES, DIM = 10, 8, 24
EFFECTS = {"none": 0.0, "medium": 0.9, "strong": 1.8}
SEED = 17
OFFSET, CLASS, CENTER, SLIDE_NOISE, TILE_NOISE = 1.0, 0.55, 0.5, 0.6, 1.1


@dataclass(frozen=True)
class Fixture:
    """Tile features with their class, centre and slide."""

    features: np.ndarray  # (n, DIM) float32
    classes: np.ndarray
    centers: np.ndarray
    slides: np.ndarray

    def checksum(self) -> str:
        """sha256 of the float32 bytes: the reference values belong to exactly these arrays."""
        return hashlib.sha256(np.ascontiguousarray(self.features, dtype=np.float32).tobytes()).hexdigest()


def make_fixture(effect: str) -> Fixture:
    """The fixture at one centre-effect strength; every strength shares the class and noise draws."""
    rng = np.random.default_rng(SEED)
    offset = OFFSET * rng.normal(size=DIM)
    class_dirs = rng.normal(size=(len(CLASSES), DIM))
    center_dirs = rng.normal(size=(len(CENTERS), DIM))
    n_slides = len(CENTERS) * len(CLASSES) * SLIDES
    slide_noise = SLIDE_NOISE * rng.normal(size=(n_slides, DIM))
    tile_noise = TILE_NOISE * rng.normal(size=(n_slides * TILES, DIM))
    center = np.repeat(np.arange(len(CENTERS)), len(CLASSES) * SLIDES * TILES)
    label = np.tile(np.repeat(np.arange(len(CLASSES)), SLIDES * TILES), len(CENTERS))
    slide = np.repeat(np.arange(n_slides), TILES)
    features = (offset + CLASS * class_dirs[label] + EFFECTS[effect] * CENTER * center_dirs[center]
                + slide_noise[slide] + tile_noise)
    return Fixture(features=features.astype(np.float32), classes=np.asarray(CLASSES)[label],
                   centers=np.asarray(CENTERS)[center],
                   slides=np.array([f"slide-{s:03d}" for s in slide]))


if __name__ == "__main__":
    for name in EFFECTS:
        fixture = make_fixture(name)
        print(name, fixture.features.shape, fixture.checksum())
