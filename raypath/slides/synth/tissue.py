"""Procedural H&E-like tissue as stain concentrations on any grid of tissue coordinates (microns).

A specimen is a few irregular tissue blobs on glass, pink stroma with a fibrous texture, and
nuclei on a jittered lattice. Positive specimens carry tumour-like regions: nuclei denser,
larger, darker and more variable ("atypical"), more so the higher the grade. Everything is a pure
function of the specimen's seed and the coordinates, so any block renders on its own.
"""

from dataclasses import dataclass

import numpy as np

from raypath.slides.synth.noise import fbm, hash_uniform, smooth_field

CELL_UM = 8.0
"""Nucleus lattice spacing: at most one nucleus per cell, centre jittered <= 0.35 cells."""
_JITTER = 0.35
_MAX_AXIS_UM = 0.75 * CELL_UM
_EDGE_UM = 0.6
_TISSUE_LEVEL = 0.18
_SMOOTH_UM = 2.0


@dataclass(frozen=True)
class Blob:
    """One elliptical tissue fragment: centre and semi-axes in microns, orientation in radians."""

    cx: float
    cy: float
    rx: float
    ry: float
    angle: float


@dataclass(frozen=True)
class SpecimenTissue:
    """Everything that fixes one specimen's biology; scanners only see it through a transform."""

    seed: int
    blobs: tuple[Blob, ...]
    tumour_threshold: float
    """Tumour where the tumour field exceeds this (inside tissue); +inf for a negative specimen."""
    grade: int
    """0 for no tumour; higher grades have larger, darker, more variable tumour nuclei."""
    feature_um: float
    """Scale of the tissue-edge and tumour-region noise (a fraction of the field size)."""
    contrast: float = 1.0
    """How different tumour looks from normal tissue: scales every tumour effect (0 = invisible)."""


def tissue_field(tissue: SpecimenTissue, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Soft tissue-versus-glass level in [0, 1] on the grid ``ys x xs`` (microns)."""
    envelope = np.zeros((len(ys), len(xs)))
    for blob in tissue.blobs:
        dx = xs[None, :] - blob.cx
        dy = ys[:, None] - blob.cy
        cos, sin = np.cos(blob.angle), np.sin(blob.angle)
        u, v = (dx * cos + dy * sin) / blob.rx, (-dx * sin + dy * cos) / blob.ry
        envelope = np.maximum(envelope, 1.0 - np.sqrt(u * u + v * v))
    wobble = fbm(tissue.seed, 1, xs, ys, spacing=tissue.feature_um, octaves=3) - 0.5
    return np.clip((envelope + 0.6 * wobble - _TISSUE_LEVEL) / 0.04, 0.0, 1.0)


def tumour_field(tissue: SpecimenTissue, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Raw tumour propensity in [0, 1]; thresholded by `SpecimenTissue.tumour_threshold`."""
    return fbm(tissue.seed, 2, xs, ys, spacing=tissue.feature_um * 1.5, octaves=2)


def render_stains(tissue: SpecimenTissue, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Haematoxylin and eosin concentrations (len(ys), len(xs), 2) on a uniform grid (microns)."""
    present = smooth_field(lambda x, y: tissue_field(tissue, x, y), xs, ys, spacing=_SMOOTH_UM)
    if not present.any():  # bare glass (most of a full-size slide): every stain is exactly zero
        return np.zeros((len(ys), len(xs), 2), dtype=np.float32)
    level = smooth_field(lambda x, y: tumour_field(tissue, x, y), xs, ys, spacing=_SMOOTH_UM)
    tumour = np.clip((level - tissue.tumour_threshold) / 0.02, 0.0, 1.0) * tissue.contrast
    fibres = smooth_field(
        lambda x, y: fbm(tissue.seed, 3, x, y, spacing=40.0, octaves=3), xs, ys, spacing=_SMOOTH_UM
    )
    eosin = (0.22 + 0.22 * fibres) * (1.0 - 0.3 * tumour)
    nuclei = _nuclei(tissue, xs, ys)
    chromatin = 0.75 + 0.5 * fbm(tissue.seed, 4, xs, ys, spacing=1.5, octaves=1)
    haem = 0.06 + 0.08 * tumour + nuclei * chromatin
    return np.stack([haem * present, eosin * present], axis=-1).astype(np.float32)


def _cell_params(tissue: SpecimenTissue, lx: np.ndarray, ly: np.ndarray) -> dict[str, np.ndarray]:
    """Nucleus of each lattice cell (flattened ly x lx): presence, centre, semi-axes, angle, darkness.

    Tumour and tissue membership are read at the cell centre, so a nucleus is drawn whole.
    """
    cx, cy = np.meshgrid(lx, ly)
    u = [hash_uniform(tissue.seed, 100 + k, cx, cy).ravel() for k in range(7)]
    centres_x, centres_y = (lx + 0.5) * CELL_UM, (ly + 0.5) * CELL_UM
    level = tumour_field(tissue, centres_x, centres_y).ravel()
    tumour = np.clip((level - tissue.tumour_threshold) / 0.02, 0, 1) * tissue.contrast
    inside = tissue_field(tissue, centres_x, centres_y).ravel()
    atypia = tumour * (1.0 + 0.4 * max(tissue.grade - 1, 0))
    radius = 2.4 + 1.2 * u[2] + atypia * (1.0 + 1.5 * u[3])
    aspect = 1.0 + (1.4 * u[4] ** 3) * (1.0 - tumour) + 0.3 * u[4] * tumour
    return {
        "present": u[5] < (0.3 + 0.55 * tumour) * inside,
        "x": (cx.ravel() + 0.5 + _JITTER * (2 * u[0] - 1)) * CELL_UM,
        "y": (cy.ravel() + 0.5 + _JITTER * (2 * u[1] - 1)) * CELL_UM,
        "a": np.minimum(radius * np.sqrt(aspect), _MAX_AXIS_UM),
        "b": np.minimum(radius / np.sqrt(aspect), _MAX_AXIS_UM),
        "angle": np.pi * u[6],
        "dark": 0.7 + 0.25 * u[3] + 0.25 * atypia,
    }


def _nuclei(tissue: SpecimenTissue, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Haematoxylin of nuclei on a uniform grid: each nucleus is stamped into its own small window.

    Nuclei cover a minority of pixels, so stamping (cost ~ nuclei x window) beats evaluating every
    neighbouring nucleus at every pixel; overlaps keep the darker value.
    """
    step = float(xs[1] - xs[0]) if len(xs) > 1 else float(ys[1] - ys[0])
    reach = _MAX_AXIS_UM + step
    lx = np.arange(np.floor((xs[0] - reach) / CELL_UM), np.floor((xs[-1] + reach) / CELL_UM) + 1)
    ly = np.arange(np.floor((ys[0] - reach) / CELL_UM), np.floor((ys[-1] + reach) / CELL_UM) + 1)
    params = _cell_params(tissue, lx.astype(np.int64), ly.astype(np.int64))
    p = {key: value[params["present"]] for key, value in params.items()}
    out = np.zeros((len(ys), len(xs)), dtype=np.float32)
    if len(p["x"]) == 0:
        return out
    offsets = np.arange(-int(np.ceil(reach / step)), int(np.ceil(reach / step)) + 1)
    cols = np.rint((p["x"] - xs[0]) / step).astype(np.int64)[:, None] + offsets  # (n, k)
    rows = np.rint((p["y"] - ys[0]) / step).astype(np.int64)[:, None] + offsets
    dx = (xs[0] + cols * step - p["x"][:, None])[:, None, :]
    dy = (ys[0] + rows * step - p["y"][:, None])[:, :, None]
    cos, sin = np.cos(p["angle"])[:, None, None], np.sin(p["angle"])[:, None, None]
    a, b = p["a"][:, None, None], p["b"][:, None, None]
    u, v = (dx * cos + dy * sin) / a, (-dx * sin + dy * cos) / b
    edge = np.clip((1.0 - np.sqrt(u * u + v * v)) * np.minimum(a, b) / _EDGE_UM + 0.5, 0.0, 1.0)
    values = edge * p["dark"][:, None, None]
    rr = np.broadcast_to(rows[:, :, None], values.shape)
    cc = np.broadcast_to(cols[:, None, :], values.shape)
    keep = (values > 0) & (rr >= 0) & (rr < len(ys)) & (cc >= 0) & (cc < len(xs))
    np.maximum.at(out, (rr[keep], cc[keep]), values[keep].astype(np.float32))
    return out
