"""Per-scanner feature correction, the data-transform baseline the robustness losses compete with.

``center`` removes each scanner's mean tile feature (and adds back the mean of the scanner means).
``combat`` is ComBat as the field runs it (Johnson et al. 2007; neuroCombat, Fortin et al. 2018):
per-feature location/scale per scanner with empirical-Bayes shrinkage across features, a grand
mean and pooled variance weighted by each scanner's number of tiles. The estimates come from
neuroCombat itself, fitted on training tiles (or a proportional sample of them, ``max_samples``).

Biological covariates (the label, and any other per-tile columns) are protected as neuroCombat
protects them: they enter its design matrix beside the scanner, so the scanner effect is estimated
after the covariate effects and removing it does not remove biology that is unevenly spread over
scanners. Applied to the rows it was fitted on, with their covariates, `transform_with_covariates`
returns neuroCombat's own output; `transform` needs no covariates (a test slide's label is unknown)
and is neuroCombat's `neuroCombatFromTraining` rule, which puts back the covariate effect averaged
over the fitted rows. Training corrects every slide, training slides included, with `transform`, so
the model never sees a label-dependent shift that test slides cannot have.

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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

Method = Literal["none", "center", "combat"]
CHUNK = 65536  # rows per pass over a (memory-mapped) feature array


@dataclass(frozen=True)
class Covariates:
    """The covariates ComBat protected, encoded as neuroCombat's design matrix encodes them
    (categorical: one-hot without the first sorted level; continuous: the value as float32), their
    effects (p, d) and the mean design row of the fitted tiles."""

    levels: dict[str, list]
    continuous: list[str]
    effects: np.ndarray
    mean: np.ndarray

    def design(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, p) covariate part of the design matrix for the rows of `frame`."""
        return covariate_design(frame, levels=self.levels, continuous=self.continuous)


@dataclass(frozen=True)
class ScannerCorrection:
    """x ↦ x · scale + shift per scanner; ``target_mean``/``target_std`` map unseen scanners."""

    method: Method
    scales: dict[str, np.ndarray]
    shifts: dict[str, np.ndarray]
    target_mean: np.ndarray
    target_std: np.ndarray
    covariates: Covariates | None = None

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

    def transform_with_covariates(self, features: np.ndarray, scanners: np.ndarray,
                                  covariates: pd.DataFrame) -> np.ndarray:
        """neuroCombat's harmonised data for rows whose covariates are known (e.g. the fitted rows):
        `transform` plus each row's own covariate effect in place of the average one."""
        out = self.transform(features, scanners)
        if self.covariates is None:
            return out
        scanners = np.asarray(scanners).astype(str)
        unseen = sorted(set(scanners) - set(self.scales))
        if unseen:
            raise ValueError(f"scanners {unseen} were not fitted: their covariate effect is unknown")
        scale = np.stack([self.scales[s] for s in scanners]).astype(np.float64)
        offset = (self.covariates.design(covariates) - self.covariates.mean) @ self.covariates.effects
        return (out + (1.0 - scale) * offset).astype(np.float32)

    def _map(self, scanner: str, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if scanner in self.scales:
            return self.scales[scanner], self.shifts[scanner]
        log.info("scanner %s unseen in training: corrected with its own statistics", scanner)
        mean, std = block.mean(axis=0, dtype=np.float64), _std(block)
        scale = np.ones_like(std) if self.method == "center" else self.target_std / std
        return scale.astype(np.float32), (self.target_mean - mean * scale).astype(np.float32)


def covariate_design(frame: pd.DataFrame, *, levels: dict[str, list], continuous: list[str]) -> np.ndarray:
    """neuroCombat's covariate columns: one-hot per categorical column without its first level,
    then each continuous column (as float32, as neuroCombat reads it)."""
    parts = []
    for column, values in levels.items():
        given = frame[column].to_numpy(dtype=object)
        unknown = sorted({str(v) for v in given} - {str(v) for v in values})
        if unknown:
            raise ValueError(f"covariate {column!r}: values {unknown} were not fitted (levels {values})")
        parts += [(given == level).astype(np.float64)[:, None] for level in values[1:]]
    parts += [frame[column].to_numpy(dtype=np.float32).astype(np.float64)[:, None] for column in continuous]
    return np.hstack(parts) if parts else np.zeros((len(frame), 0))


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


def _covariate_levels(covariates: pd.DataFrame, categorical: list[str]) -> dict[str, list]:
    """Sorted levels per categorical covariate; a column with one level (nothing to protect, and a
    zero column in the design) is left out, with a warning."""
    levels = {}
    for column in categorical:
        values = np.unique(covariates[column].to_numpy(dtype=object))
        if len(values) < 2:
            log.warning("ComBat covariate %r has one value in the fitted tiles; not protected", column)
            continue
        levels[column] = values.tolist()
    return levels


def _check_design(batch: np.ndarray, covariates: np.ndarray, *, names: list[str]) -> None:
    """A covariate that the scanner determines (every scanner holding one class) leaves nothing to
    tell biology from scanner: neuroCombat would invert a singular matrix."""
    design = np.hstack([batch, covariates])
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise ValueError(f"ComBat: covariates {names} are confounded with the scanner in the training "
                         "tiles (e.g. each scanner holds one class); the scanner effect cannot be told "
                         "apart from them")


def _fit_combat(features: np.ndarray, names: np.ndarray, codes: np.ndarray, *, max_samples: int | None,
                seed: int, covariates: pd.DataFrame | None, categorical: list[str],
                continuous: list[str]) -> ScannerCorrection:
    """neuroCombat (parametric empirical Bayes, covariates protected) on the (sampled) training
    tiles, kept as affine maps plus the covariate effects."""
    from neuroCombat import neuroCombat

    rows = proportional_sample(codes, max_samples=max_samples, seed=seed)
    if len(rows) < len(codes):
        log.info("ComBat fitted on a proportional sample of %d of %d tiles", len(rows), len(codes))
    data = np.asarray(features[rows], dtype=np.float64).T
    sampled = (pd.DataFrame(index=range(len(rows))) if covariates is None
               else covariates.iloc[rows].reset_index(drop=True))
    levels = _covariate_levels(sampled, categorical)
    design = covariate_design(sampled, levels=levels, continuous=continuous)
    _check_design(np.eye(len(names))[codes[rows]], design, names=[*levels, *continuous])
    covars = pd.concat([pd.DataFrame({"scanner": codes[rows]}), sampled[[*levels, *continuous]]], axis=1)
    # neuroCombat reports progress by print; its convergence test divides by a zero mean with one scanner
    with contextlib.redirect_stdout(io.StringIO()) as printed, np.errstate(divide="ignore", invalid="ignore"):
        fitted = neuroCombat(dat=data, covars=covars, batch_col="scanner", categorical_cols=list(levels),
                             continuous_cols=list(continuous), eb=True, parametric=True)
    log.debug("neuroCombat: %s", printed.getvalue().strip().replace("\n", "; "))
    return _combat_maps(fitted["estimates"], names=names, design=design, levels=levels, continuous=continuous)


def _combat_maps(estimates: dict, *, names: np.ndarray, design: np.ndarray, levels: dict[str, list],
                 continuous: list[str]) -> ScannerCorrection:
    """neuroCombat's estimates as per-scanner affine maps. The centre is the grand mean plus the
    covariate effect averaged over the fitted rows (neuroCombatFromTraining's rule); each covariate's
    effect is recovered from neuroCombat's `mod.mean` (= design · effects) by least squares."""
    modelled = np.asarray(estimates["mod.mean"], dtype=np.float64)  # (d, n)
    centre = estimates["stand.mean"][:, 0] + modelled.mean(axis=1)
    std = np.sqrt(estimates["var.pooled"][:, 0])
    scales = 1.0 / np.sqrt(estimates["delta.star"])  # (scanners, d), rows in code order
    shifts = centre - (centre + std * estimates["gamma.star"]) * scales
    protected = None
    if design.shape[1]:
        effects = np.linalg.lstsq(design, modelled.T, rcond=None)[0]
        protected = Covariates(levels=levels, continuous=list(continuous), effects=effects,
                               mean=design.mean(axis=0))
    maps = _maps("combat", names, scales=scales, shifts=shifts, target_mean=centre, target_std=std)
    return replace(maps, covariates=protected)


def fit_correction(features: np.ndarray, scanners: np.ndarray, *, method: Method,
                   max_samples: int | None = 50_000, seed: int = 0, covariates: pd.DataFrame | None = None,
                   categorical: Sequence[str] = (), continuous: Sequence[str] = ()) -> ScannerCorrection:
    """Fit per-scanner maps on training tiles (features (n, d), any array with row indexing, e.g. a
    float16 memory map; scanners (n,)). ComBat uses at most ``max_samples`` tiles: neuroCombat holds
    a few float64 copies of the d × n data, and per-scanner estimates from tens of thousands of tiles
    are already precise. ComBat protects the ``categorical`` and ``continuous`` columns of
    ``covariates`` (one row per tile), as neuroCombat's ``categorical_cols`` / ``continuous_cols``."""
    names, codes = np.unique(np.asarray(scanners).astype(str), return_inverse=True)
    if method == "none" or len(names) == 0:
        d = features.shape[1]
        return ScannerCorrection(method="none", scales={}, shifts={}, target_mean=np.zeros(d, np.float32),
                                 target_std=np.ones(d, np.float32))
    if method == "center":
        return _fit_center(features, names, codes)
    wanted = [*categorical, *continuous]
    if wanted and (covariates is None or len(covariates) != len(codes)):
        raise ValueError(f"ComBat covariates {wanted} need one covariate row per tile")
    missing = [c for c in wanted if c not in covariates] if wanted else []
    if missing:
        raise ValueError(f"ComBat covariates {missing} are not columns of the covariate table")
    return _fit_combat(features, names, codes, max_samples=max_samples, seed=seed, covariates=covariates,
                       categorical=list(categorical), continuous=list(continuous))
