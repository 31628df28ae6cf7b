"""Read one FM's features from the store, joined to the cohort: sampled tiles and slide means."""

import logging
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.fs as pafs

from raypath.config import did_you_mean
from raypath.logs import ProgressBar
from raypath.paths import is_remote, join
from raypath.store import FeatureStore, check_encoder, check_provenance

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class FeatureSet:
    """Samples (tiles or slides) with everything the metrics group and stratify by."""

    features: np.ndarray  # (n, d) float32
    classes: np.ndarray
    centers: np.ndarray
    slide_ids: np.ndarray
    specimen_ids: np.ndarray
    patient_ids: np.ndarray
    scanners: np.ndarray

    def __len__(self) -> int:
        return len(self.features)

    def take(self, rows: np.ndarray) -> "FeatureSet":
        """The given rows of every array."""
        return FeatureSet(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def with_features(self, features: np.ndarray) -> "FeatureSet":
        """Same samples, other features (e.g. after a post-hoc correction)."""
        return replace(self, features=features)


def confounder_column(manifest: pd.DataFrame, center: str) -> str:
    """The manifest column whose values are PathoROB's "centers": `center` when it names one; with
    "auto" the scanner (raypath measures scanner effects), unless every slide has the same scanner
    and a `center` column is filled in (a multi-site cohort scanned on one scanner)."""
    if center != "auto":
        return center
    single_scanner = manifest["scanner"].nunique() < 2
    has_sites = "center" in manifest.columns and manifest["center"].notna().all()
    return "center" if single_scanner and has_sites else "scanner"


def cohort_frame(manifest: pd.DataFrame, labels: pd.DataFrame, *, center: str = "auto",
                 sources: tuple[str, str] = ("manifest", "labels")) -> pd.DataFrame:
    """Per slide: patient, specimen, scanner, confounder ("center", from `confounder_column`) and
    biological class. ``sources`` (the two files) only name the culprit in error messages."""
    if "label" not in labels.columns:
        raise ValueError(f"{sources[1]}: no 'label' column; the biological class is needed")
    frame = manifest.set_index("slide_id")[["patient_id", "specimen_id", "scanner"]].copy()
    site = manifest.set_index("slide_id").get("center", pd.Series(pd.NA, index=frame.index))
    column = confounder_column(manifest, center)
    frame["center"] = frame["scanner"] if column == "scanner" else site
    if column == "center" and site.isna().any():
        raise ValueError(f"{sources[0]}: center='center' but {int(site.isna().sum())} rows have no center")
    by_patient = labels.set_index("patient_id") if "patient_id" in labels.columns else labels
    frame["label"] = frame["patient_id"].map(by_patient["label"].dropna())
    unlabeled = frame["label"].isna()
    if unlabeled.any():
        log.warning("%d slides of unlabeled patients are left out", int(unlabeled.sum()))
    return frame[~unlabeled].astype({"label": int, "center": str})


def feature_sources(root: str, *, encoders: list[str], tiling_hash: str | None) -> list[tuple[str, str]]:
    """(encoder, tiling hash) pairs present under the store root; empty ``encoders`` = all."""
    filesystem, base = (pafs.FileSystem.from_uri(root) if is_remote(root)
                        else (pafs.LocalFileSystem(), str(Path(root).resolve())))

    def subdirectories(path: str) -> list[str]:
        """Child folders, minus bookkeeping ones such as `_runs/` (extraction records)."""
        infos = filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        names = (Path(i.path).name for i in infos if i.type == pafs.FileType.Directory)
        return sorted(n for n in names if not n.startswith(("_", ".")))

    sources = [(encoder, hash_) for encoder in (encoders or subdirectories(base))
               for hash_ in subdirectories(join(base, encoder)) if tiling_hash in (None, hash_)]
    missing = sorted(set(encoders) - {encoder for encoder, _ in sources})
    if missing:
        hints = "".join(did_you_mean(name, subdirectories(base)) for name in missing)
        raise FileNotFoundError(f"no features under {root} for {missing}{hints}"
                                + (f" with tiling hash {tiling_hash}" if tiling_hash else ""))
    return sources


def check_encoders(stores: list[FeatureStore]) -> None:
    """Each store's features were written by the FM it is filed under: checked for every FM before any
    is evaluated (one footer each), so a misfiled copy fails at once, not after the others' metrics."""
    for store in stores:
        slide_ids = store.slide_ids()
        if slide_ids:
            check_encoder(store.metadata(slide_ids[0]), store=store)


def _sample_rows(count: int, *, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    if limit is None or count <= limit:
        return np.arange(count)
    return np.sort(rng.choice(count, size=limit, replace=False))


def load_features(store: FeatureStore, *, cohort: pd.DataFrame, tiles_per_slide: int | None,
                  seed: int) -> tuple[FeatureSet, FeatureSet]:
    """(sampled tiles, slide means over all tiles) of the cohort's slides present in the store.

    Slides are read one at a time and sampled at once, so memory holds the sample, not the store.
    """
    present = [s for s in store.slide_ids() if s in cohort.index]
    skipped = len(store.slide_ids()) - len(present)
    if skipped:
        log.warning("%s: %d feature files have no labeled manifest row and are left out", store.directory,
                    skipped)
    if not present:
        raise ValueError(f"{store.directory}: no feature file matches a labeled slide of the manifest")
    check_encoder(store.metadata(present[0]), store=store)  # before reading any features
    rng = np.random.default_rng(seed)
    tiles, means, owners, metadatas = [], [], [], []
    for slide_id in ProgressBar(present, desc=f"read {store.encoder}", unit="slide", leave=False):
        bag = store.read_bag(slide_id)
        if len(bag.features) == 0:
            log.warning("%s has no tiles; left out", slide_id)
            continue
        rows = _sample_rows(len(bag.features), limit=tiles_per_slide, rng=rng)
        tiles.append(bag.features[rows])
        means.append(bag.features.mean(axis=0, dtype=np.float64).astype(np.float32))
        owners.append(np.full(len(rows), slide_id, dtype=object))
        metadatas.append(bag.metadata)
    check_provenance(metadatas, where=store.directory)  # every file agrees with the first one checked
    tile_slides = np.concatenate(owners)
    slide_ids = np.array([o[0] for o in owners], dtype=object)
    return (_feature_set(np.concatenate(tiles), tile_slides, cohort),
            _feature_set(np.stack(means), slide_ids, cohort))


def _feature_set(features: np.ndarray, slide_ids: np.ndarray, cohort: pd.DataFrame) -> FeatureSet:
    rows = cohort.loc[slide_ids]
    return FeatureSet(features=features, classes=rows["label"].to_numpy(), centers=rows["center"].to_numpy(),
                      slide_ids=slide_ids.astype(str), specimen_ids=rows["specimen_id"].to_numpy(str),
                      patient_ids=rows["patient_id"].to_numpy(str), scanners=rows["scanner"].to_numpy(str))
