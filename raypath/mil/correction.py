"""Per-scanner feature correction, the data-transform baseline the robustness losses compete with.

``center`` removes each scanner's mean tile feature (and adds back the mean of the scanner means).
``combat`` is ComBat as the field runs it (Johnson et al. 2007; neuroCombat, Fortin et al. 2018):
per-feature location/scale per scanner with empirical-Bayes shrinkage across features, a grand
mean and pooled variance weighted by each scanner's number of tiles. The estimates come from
neuroCombat itself, fitted on training tiles (or a proportional sample of them, ``max_samples``).

Either way the fitted object is one affine map per scanner (scale and shift, 2 × d floats) and
``transform`` works on any subset of rows, so training can correct chunk by chunk (float16
memory maps, cohorts larger than RAM) and the object pickles small. A scanner unseen in training
(leave-one-scanner-out) has no fitted map; it is corrected with location/scale estimated from the
rows it is given, which is what a deployment can do (pass all of its rows, or a fixed sample, to get
one consistent map).
"""

import contextlib
import io
import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

Method = Literal["none", "center", "combat"]
CHUNK = 65536  # rows per pass over a (memory-mapped) feature array


@dataclass(frozen=True)
class ScannerCorrection:
    """x ↦ x · scale + shift per scanner; ``target_mean``/``target_std`` map unseen scanners."""

    method: Method
    scales: dict[str, np.ndarray]
    shifts: dict[str, np.ndarray]
    target_mean: np.ndarray
    target_std: np.ndarray

    def transform(self, features: np.ndarray, scanners: np.ndarray) -> np.ndarray:
        """Corrected float32 copy of the given tile rows; `scanners` gives each row's scanner."""
        if self.method == "none":
            return features
        scanners = np.asarray(scanners).astype(str)
        out = np.empty(features.shape, dtype=np.float32)
        for scanner in np.unique(scanners):
            rows = np.flatnonzero(scanners == scanner)
            block = np.asarray(features[rows], dtype=np.float32)
            scale, shift = self._map(scanner, block)
            out[rows] = block * scale + shift
        return out

    def _map(self, scanner: str, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if scanner in self.scales:
            return self.scales[scanner], self.shifts[scanner]
        log.info("scanner %s unseen in training: corrected with its own statistics", scanner)
        mean, std = block.mean(axis=0, dtype=np.float64), _std(block)
        scale = np.ones_like(std) if self.method == "center" else self.target_std / std
        return scale.astype(np.float32), (self.target_mean - mean * scale).astype(np.float32)


def _std(block: np.ndarray) -> np.ndarray:
    return np.maximum(block.std(axis=0, dtype=np.float64), 1e-6)


def _scanner_moments(features: np.ndarray, codes: np.ndarray,
                     n_scanners: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-scanner mean and std (ddof 0), one chunk of rows at a time."""
    d = features.shape[1]
    sums, squares, counts = np.zeros((n_scanners, d)), np.zeros((n_scanners, d)), np.zeros(n_scanners)
    for start in range(0, len(codes), CHUNK):
        block = np.asarray(features[start:start + CHUNK], dtype=np.float64)
        chunk_codes = codes[start:start + CHUNK]
        np.add.at(sums, chunk_codes, block)
        np.add.at(squares, chunk_codes, block ** 2)
        counts += np.bincount(chunk_codes, minlength=n_scanners)
    means = sums / counts[:, None]
    return means, np.sqrt(np.maximum(squares / counts[:, None] - means ** 2, 1e-12))


def _fit_center(features: np.ndarray, names: np.ndarray, codes: np.ndarray) -> ScannerCorrection:
    means, stds = _scanner_moments(features, codes, len(names))
    grand = means.mean(axis=0)
    pooled = np.sqrt(np.mean(stds ** 2, axis=0))
    return _maps("center", names, scales=np.ones_like(means), shifts=grand - means, target_mean=grand,
                 target_std=pooled)


def _maps(method: Method, names: np.ndarray, *, scales: np.ndarray, shifts: np.ndarray,
          target_mean: np.ndarray, target_std: np.ndarray) -> ScannerCorrection:
    """Per-scanner float32 maps from (scanners, d) arrays whose rows follow ``names``."""
    def per_scanner(rows: np.ndarray) -> dict[str, np.ndarray]:
        return {str(s): r.astype(np.float32) for s, r in zip(names, rows, strict=True)}

    return ScannerCorrection(method=method, scales=per_scanner(scales), shifts=per_scanner(shifts),
                             target_mean=target_mean.astype(np.float32),
                             target_std=target_std.astype(np.float32))


def proportional_sample(codes: np.ndarray, *, max_samples: int | None, seed: int) -> np.ndarray:
    """Sorted rows, at most about ``max_samples``, each scanner in proportion to its size (so the
    sample-size weights of ComBat survive) and never fewer than two tiles of a scanner."""
    if max_samples is None or len(codes) <= max_samples:
        return np.arange(len(codes))
    rng = np.random.default_rng(seed)
    fraction = max_samples / len(codes)
    chosen = []
    for code in np.unique(codes):
        members = np.flatnonzero(codes == code)
        size = min(len(members), max(2, round(len(members) * fraction)))
        chosen.append(rng.choice(members, size=size, replace=False))
    return np.sort(np.concatenate(chosen))


def _fit_combat(features: np.ndarray, names: np.ndarray, codes: np.ndarray, *, max_samples: int | None,
                seed: int) -> ScannerCorrection:
    """neuroCombat (parametric empirical Bayes) on the (sampled) training tiles, kept as affine maps."""
    from neuroCombat import neuroCombat

    rows = proportional_sample(codes, max_samples=max_samples, seed=seed)
    if len(rows) < len(codes):
        log.info("ComBat fitted on a proportional sample of %d of %d tiles", len(rows), len(codes))
    data = np.asarray(features[rows], dtype=np.float64).T
    batch = pd.DataFrame({"scanner": codes[rows]})
    # neuroCombat reports progress by print; its convergence test divides by a zero mean with one scanner
    with contextlib.redirect_stdout(io.StringIO()) as printed, np.errstate(divide="ignore", invalid="ignore"):
        fitted = neuroCombat(dat=data, covars=batch, batch_col="scanner", eb=True, parametric=True)
    estimates = fitted["estimates"]
    log.debug("neuroCombat: %s", printed.getvalue().strip().replace("\n", "; "))
    grand = estimates["stand.mean"][:, 0]
    std = np.sqrt(estimates["var.pooled"][:, 0])
    scales = 1.0 / np.sqrt(estimates["delta.star"])  # (scanners, d), rows in code order
    shifts = grand - (grand + std * estimates["gamma.star"]) * scales
    return _maps("combat", names, scales=scales, shifts=shifts, target_mean=grand, target_std=std)


def fit_correction(features: np.ndarray, scanners: np.ndarray, *, method: Method,
                   max_samples: int | None = 50_000, seed: int = 0) -> ScannerCorrection:
    """Fit per-scanner maps on training tiles (features (n, d), any array with row indexing, e.g. a
    float16 memory map; scanners (n,)). ComBat uses at most ``max_samples`` tiles: neuroCombat holds
    a few float64 copies of the d × n data, and per-scanner estimates from tens of thousands of tiles
    are already precise."""
    names, codes = np.unique(np.asarray(scanners).astype(str), return_inverse=True)
    if method == "none" or len(names) == 0:
        d = features.shape[1]
        return ScannerCorrection(method="none", scales={}, shifts={}, target_mean=np.zeros(d, np.float32),
                                 target_std=np.ones(d, np.float32))
    if method == "center":
        return _fit_center(features, names, codes)
    return _fit_combat(features, names, codes, max_samples=max_samples, seed=seed)
