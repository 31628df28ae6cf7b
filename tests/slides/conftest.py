"""Small slide fixtures shared by tests/slides: the real CMU crop and tiny synthetic pyramidal TIFFs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from raypath.slides.synth import write_cohort
from raypath.slides.synth.config import SynthConfig

DATA = Path(__file__).resolve().parents[1] / "data"


def aperio_description(width: int, height: int, *, mpp: float, app_mag: int = 20) -> str:
    """Page-0 ImageDescription that makes OpenSlide (and cuCIM) treat a TIFF as Aperio SVS."""
    return (
        f"Aperio Image Library v12.0.0 \n{width}x{height} [0,0 {width}x{height}] (256x256) JPEG/RGB Q=90"
        f"|AppMag = {app_mag}|MPP = {mpp}"
    )


def write_pyramid_tiff(
    path: Path, image: np.ndarray, *, mpp: float | None, levels: int = 3, tile: int = 128
) -> Path:
    """JPEG-tiled pyramid, one page per level (halving), Aperio description when `mpp` is given."""
    height, width = image.shape[:2]
    description = aperio_description(width, height, mpp=mpp) if mpp is not None else None
    with tifffile.TiffWriter(path) as tif:
        level = image
        for index in range(levels):
            tif.write(
                level, tile=(tile, tile), compression="jpeg", compressionargs={"level": 90},
                photometric="rgb", description=description if index == 0 else None, metadata=None,
                subfiletype=0 if index == 0 else 1,
            )
            level = np.asarray(Image.fromarray(level).reduce(2))
    return path


def synthetic_tissue(width: int = 1024, height: int = 768, *, seed: int = 0) -> np.ndarray:
    """Two pink-purple ellipses with texture on near-white glass: easy tissue, realistic colours."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    image = np.full((height, width, 3), (242, 240, 244), dtype=np.float32)
    blobs = ((0.35, 0.45, 0.22, 0.3), (0.75, 0.6, 0.12, 0.18))
    for cx, cy, rx, ry in blobs:
        inside = ((xx - cx * width) / (rx * width)) ** 2 + ((yy - cy * height) / (ry * height)) ** 2 < 1
        image[inside] = (205, 130, 180)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def cmu_svs() -> Path:
    """Real Aperio H&E crop of OpenSlide's CMU-1 (CC0), single level, 0.499 mpp; see tests/data/README.md."""
    return DATA / "cmu_small_region.svs"


@pytest.fixture(scope="session")
def tiny_svs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1024x768 three-level Aperio-style SVS at 0.5 mpp."""
    path = tmp_path_factory.mktemp("slides") / "tiny.svs"
    return write_pyramid_tiff(path, synthetic_tissue(), mpp=0.5)


@pytest.fixture(scope="session")
def no_mpp_tiff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generic pyramidal TIFF with no pixel size anywhere in its metadata."""
    path = tmp_path_factory.mktemp("slides") / "no_mpp.tiff"
    return write_pyramid_tiff(path, synthetic_tissue(512, 384), mpp=None, levels=2)


@pytest.fixture(scope="session")
def synth_small() -> dict:
    """Settings of the small synthetic cohort: 2 specimens x 2 scanners at 20x, ~1200 px slides."""
    return {"seed": 7, "specimens": 2, "scanners": ["aperio-gt450", "hamamatsu-s360"],
            "field_um": (640.0, 560.0), "workers": 1, "max_rotation_deg": 8.0, "max_shift_um": 30.0}


@pytest.fixture(scope="session")
def synth_cohort(tmp_path_factory: pytest.TempPathFactory, synth_small: dict) -> Path:
    """The small synthetic cohort (0.526 and 0.46 mpp scanners), written once per session."""
    out = tmp_path_factory.mktemp("synth")
    write_cohort(SynthConfig(**synth_small), out)
    return out
