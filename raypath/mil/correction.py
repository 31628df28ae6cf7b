"""Per-scanner feature correction, the data-transform baseline the robustness losses compete with.

``center`` removes each scanner's mean tile feature; ``combat`` also rescales each feature to the
pooled standard deviation (location/scale ComBat without the empirical-Bayes shrinkage, which
matters for few samples per batch; here each scanner has thousands of tiles). Statistics are fit
on training slides only. A scanner unseen in training (leave-one-scanner-out) has no fitted
statistics; it is corrected with its own label-free statistics, which is what a deployment can do.
"""

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

log = logging.getLogger(__name__)

Method = Literal["none", "center", "combat"]


@dataclass(frozen=True)
class ScannerCorrection:
    """Per-scanner location (and scale) fitted on training tiles."""

    method: Method
    grand_mean: np.ndarray
    pooled_std: np.ndarray
    means: dict[str, np.ndarray]
    stds: dict[str, np.ndarray]

    def transform(self, features: np.ndarray, scanners: np.ndarray) -> np.ndarray:
        """Corrected float32 copy of tile features; `scanners` gives each tile's scanner."""
        if self.method == "none":
            return features
        out = np.empty(features.shape, dtype=np.float32)
        for scanner in np.unique(scanners):
            rows = scanners == scanner
            mean, std = self._stats(str(scanner), features[rows])
            block = features[rows].astype(np.float32) - mean
            if self.method == "combat":
                block = block / std * self.pooled_std
            out[rows] = block + self.grand_mean
        return out

    def _stats(self, scanner: str, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if scanner in self.means:
            return self.means[scanner], self.stds[scanner]
        log.info("scanner %s unseen in training: corrected with its own statistics", scanner)
        return block.mean(axis=0, dtype=np.float64).astype(np.float32), _std(block)


def _std(block: np.ndarray) -> np.ndarray:
    return np.maximum(block.std(axis=0, dtype=np.float64), 1e-6).astype(np.float32)


def fit_correction(features: np.ndarray, scanners: np.ndarray, *, method: Method) -> ScannerCorrection:
    """Fit per-scanner statistics on training tiles (features (n, d), scanners (n,))."""
    means, stds = {}, {}
    for scanner in np.unique(scanners):
        block = features[scanners == scanner]
        means[str(scanner)] = block.mean(axis=0, dtype=np.float64).astype(np.float32)
        stds[str(scanner)] = _std(block)
    grand = np.mean(list(means.values()), axis=0).astype(np.float32) if means else np.zeros(features.shape[1])
    pooled = (np.sqrt(np.mean([s ** 2 for s in stds.values()], axis=0)).astype(np.float32) if stds
              else np.ones(features.shape[1], np.float32))
    return ScannerCorrection(method=method, grand_mean=grand, pooled_std=pooled, means=means, stds=stds)
