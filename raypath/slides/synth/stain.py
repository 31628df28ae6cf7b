"""RGB <-> HED colour deconvolution (Ruifrok & Johnston 2001) in plain numpy.

Scanners differ mostly in how stain colours come out, and that difference is a shift of stain
concentrations, not of RGB values; so the synthetic scanners perturb tissue in HED space.
Optical density is base 10 with the white point at 255: OD = -log10(I / 255).
"""

import numpy as np

RGB_FROM_HED = np.array(
    [
        [0.65, 0.70, 0.29],  # haematoxylin
        [0.07, 0.99, 0.11],  # eosin
        [0.27, 0.57, 0.78],  # DAB
    ]
)
"""Rows: optical density in R, G, B of one unit of each stain (Ruifrok & Johnston)."""

HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
_MIN_INTENSITY = 1.0 / 255.0


def rgb_to_hed(rgb: np.ndarray) -> np.ndarray:
    """Stain concentrations (..., 3) of a uint8 or [0, 255] float RGB image."""
    intensity = np.maximum(np.asarray(rgb, dtype=np.float64) / 255.0, _MIN_INTENSITY)
    return -np.log10(intensity) @ HED_FROM_RGB


def hed_to_rgb(hed: np.ndarray, *, stain_matrix: np.ndarray = RGB_FROM_HED) -> np.ndarray:
    """Float RGB in [0, 255] of stain concentrations (..., 3); `stain_matrix` rows are stain ODs."""
    optical_density = np.maximum(np.asarray(hed, dtype=np.float64) @ stain_matrix, 0.0)
    return 255.0 * np.power(10.0, -optical_density)


_MACENKO_REFERENCE = np.array([[0.5626, 0.7201, 0.4062], [0.2159, 0.8012, 0.5581], [0.27, 0.57, 0.78]])
TISSUE_STAINS = _MACENKO_REFERENCE / np.linalg.norm(_MACENKO_REFERENCE, axis=1, keepdims=True)
"""Stain vectors the synthetic tissue is *drawn* with (typical H&E reference vectors, Macenko 2009).

They differ from Ruifrok's on purpose: Ruifrok's eosin renders stroma magenta, real H&E is pink.
"""
