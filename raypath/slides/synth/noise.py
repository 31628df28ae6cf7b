"""Coordinate-hashed value noise: any region of a procedural slide renders identically on its own.

Every random quantity of the synthetic tissue is a pure function of (seed, salt, lattice index), so
a tile rendered by one worker matches the same tile rendered by another, and a 40x slide can be
generated block by block without ever holding the whole image.
"""

import numpy as np
from scipy import sparse

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_Y = np.uint64(0xC2B2AE3D27D4EB4F)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def hash_uniform(seed: int, salt: int, ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) floats from integer lattice indices (splitmix64 finaliser of a mixed key)."""
    key = np.uint64((seed * 1_000_003 + salt * 7919) & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        ix, iy = np.broadcast_arrays(np.asarray(ix, dtype=np.int64), np.asarray(iy, dtype=np.int64))
        h = ix.view(np.uint64) * _GOLDEN
        h ^= iy.view(np.uint64) * _MIX_Y
        h ^= key * _GOLDEN + np.uint64(salt)
        h ^= h >> np.uint64(30)
        h *= _MIX_1
        h ^= h >> np.uint64(27)
        h *= _MIX_2
        h ^= h >> np.uint64(31)
    return (h >> np.uint64(11)).astype(np.float64) * (2.0**-53)


def _interpolation_matrix(coords: np.ndarray, spacing: float) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Sparse (len(coords), n_lattice) smoothstep-interpolation weights and the lattice indices."""
    scaled = np.asarray(coords, dtype=np.float64) / spacing
    index = np.floor(scaled).astype(np.int64)
    frac = scaled - index
    weight = frac * frac * (3.0 - 2.0 * frac)  # smoothstep: no creases along lattice lines
    lattice = np.arange(index.min(), index.max() + 2)
    rows = np.repeat(np.arange(len(scaled)), 2)
    cols = np.stack([index - lattice[0], index - lattice[0] + 1], axis=1).ravel()
    values = np.stack([1.0 - weight, weight], axis=1).ravel()
    return sparse.csr_matrix((values, (rows, cols)), shape=(len(scaled), len(lattice))), lattice


def value_noise(seed: int, salt: int, xs: np.ndarray, ys: np.ndarray, spacing: float) -> np.ndarray:
    """Smooth noise in [0, 1] on the grid ``ys x xs`` (microns), lattice `spacing` microns apart.

    Interpolation is separable, so the grid is ``Wy @ lattice @ Wx.T`` with sparse two-tap
    weight matrices: a hash per lattice point and a few flops per pixel.
    """
    wx, lx = _interpolation_matrix(xs, spacing)
    wy, ly = _interpolation_matrix(ys, spacing)
    lattice = hash_uniform(seed, salt, lx[None, :], ly[:, None])
    return np.asarray((wx @ (wy @ lattice).T).T, dtype=np.float32)


def fbm(
    seed: int, salt: int, xs: np.ndarray, ys: np.ndarray, *, spacing: float, octaves: int = 3
) -> np.ndarray:
    """Fractal sum of value noise (halving spacing and amplitude per octave), rescaled to [0, 1]."""
    total = np.zeros((len(ys), len(xs)), dtype=np.float32)
    norm = 0.0
    for octave in range(octaves):
        amplitude = 0.5**octave
        total += amplitude * value_noise(seed, salt * 16 + octave, xs, ys, spacing / 2**octave)
        norm += amplitude
    return total / norm


def _linear_matrix(coords: np.ndarray, lattice: np.ndarray, spacing: float) -> sparse.csr_matrix:
    position = np.clip((np.asarray(coords, dtype=np.float64) - lattice[0]) / spacing, 0, len(lattice) - 1.001)
    index = np.floor(position).astype(np.int64)
    weight = position - index
    rows = np.repeat(np.arange(len(position)), 2)
    cols = np.stack([index, index + 1], axis=1).ravel()
    values = np.stack([1.0 - weight, weight], axis=1).ravel()
    return sparse.csr_matrix((values, (rows, cols)), shape=(len(position), len(lattice)))


def smooth_field(func, xs: np.ndarray, ys: np.ndarray, *, spacing: float) -> np.ndarray:
    """Evaluate a smooth `func(xs, ys) -> grid` on a coarse lattice and interpolate bilinearly.

    Tissue outlines and tumour regions vary over tens of microns; evaluating them at every
    0.25 um pixel wastes most of the render time, so they are sampled every `spacing` microns.
    """
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    lx = np.arange(np.floor(xs.min() / spacing), np.ceil(xs.max() / spacing) + 2) * spacing
    ly = np.arange(np.floor(ys.min() / spacing), np.ceil(ys.max() / spacing) + 2) * spacing
    coarse = np.asarray(func(lx, ly), dtype=np.float64)
    wx, wy = _linear_matrix(xs, lx, spacing), _linear_matrix(ys, ly, spacing)
    return np.asarray((wx @ (wy @ coarse).T).T, dtype=np.float32)
