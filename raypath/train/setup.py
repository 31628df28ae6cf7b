"""Everything derived from config + data before the first step: splits, correction, collator, model.

Kept apart from the engine so a pack prepares the data once and builds all its models against the
same ``Prepared`` (same splits, same batches).
"""

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from raypath.mil.bags import BagSet
from raypath.mil.correction import fit_correction
from raypath.mil.registry import LOSSES
from raypath.mil.robust import RobustMIL, build_robust_mil
from raypath.mil.sampling import Collator, TileTransform, specimen_groups
from raypath.train.config import TrainConfig, protected_covariates
from raypath.train.leakage import audit_split
from raypath.train.split_policy import resolve_source
from raypath.train.splits import column_split, fold_split, grouped_split, leave_scanner_out, patient_folds

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Data ready for training: corrected bags, split per slide, collator, specimen groups."""

    bagset: BagSet
    split: pd.Series
    collator: Collator
    scanner_codes: dict[str, int]
    n_outputs: int
    train_groups: list[np.ndarray]

    def indices(self, name: str) -> np.ndarray:
        """Slide indices of one split, ascending (so specimens stay contiguous)."""
        return np.flatnonzero(self.split.to_numpy() == name)


def check_targets(config: TrainConfig, bagset: BagSet) -> int:
    """Validate the task's target columns and return the number of model outputs."""
    slides = bagset.slides
    if config.task == "survival":
        missing = [c for c in ("time", "event") if c not in slides]
        if missing:
            raise ValueError(f"survival task needs columns {missing} in the labels")
        return 1
    if "label" not in slides or slides["label"].isna().all():
        raise ValueError(f"{config.task} task needs a 'label' column in the labels")
    n_classes = int(slides["label"].max()) + 1
    if config.task == "binary" and n_classes > 2:
        raise ValueError(f"binary task but labels go up to {n_classes - 1}; use task: multiclass")
    return 1 if config.task == "binary" else n_classes


def split_slides(config: TrainConfig, slides: pd.DataFrame) -> pd.Series:
    """Split per slide row (patient-grouped, by the split's own seed), held-out scanners out of
    train/val. A pure function of the slides table, so a driver that never reads features computes
    the very split its trials will (and audits it before they start)."""
    s, stratify = config.split, "event" if config.task == "survival" else "label"
    given = "split" in slides and bool(slides["split"].notna().any())
    source = resolve_source(s.source, given=given)
    if source == "column":
        split = column_split(slides)
    elif source == "folds":
        split = fold_split(patient_folds(slides, folds=s.folds, seed=s.seed, stratify=stratify),
                           fold=s.fold, folds=s.folds)
    else:
        split = grouped_split(slides, train=s.train, val=s.val, seed=s.seed, stratify=stratify)
    return leave_scanner_out(split, slides["scanner"], held_out=s.held_out_scanners)


def make_split(config: TrainConfig, bagset: BagSet) -> pd.Series:
    """The split of the bags' slides; fails if it leaks (`raypath.train.leakage`)."""
    split = split_slides(config, bagset.slides)
    audit_split(bagset.slides, split, held_out=config.split.held_out_scanners).check()
    return split


def fit_tile_correction(config: TrainConfig, bagset: BagSet, split: pd.Series) -> TileTransform | None:
    """Per-scanner correction fitted on training tiles only, applied to each batch as it is collated.

    Fitted on up to `correction_tiles` evenly spaced tiles of each training slide, so fitting reads
    a bounded sample however large the cohort; `None` for correction 'none'.
    """
    if config.correction == "none":
        return None
    rows = [_sample_rows(bagset.offsets[s], bagset.offsets[s + 1], config.correction_tiles)
            for s in np.flatnonzero(split.to_numpy() == "train")]
    if not rows:
        raise ValueError("no training slides to fit the feature correction on")
    index = np.concatenate(rows)
    features = np.asarray(bagset.features[index])
    if bagset.bfloat16:
        features = (features.astype(np.uint32) << 16).view(np.float32)
    training = bagset.slides[split.to_numpy() == "train"]
    counts = [len(r) for r in rows]
    scanners = np.repeat(training["scanner"].to_numpy(), counts)
    protected = _protected(config, training, counts) if config.correction == "combat" else {}
    names = [*protected.get("categorical", []), *protected.get("continuous", [])]
    log.info("fitting %s correction on %d training tiles (protected covariates: %s)", config.correction,
             len(index), names or "none")
    fitted = fit_correction(features.astype(np.float32), scanners, method=config.correction, **protected)
    return fitted.transform


def _protected(config: TrainConfig, training: pd.DataFrame, counts: list[int]) -> dict:
    """ComBat's covariates, one row per sampled training tile (its slide's patient's values)."""
    categorical, continuous = protected_covariates(config), config.correction_continuous
    columns = [*categorical, *continuous]
    missing = [c for c in columns if c not in training]
    if missing:
        raise ValueError(f"ComBat covariates {missing} are not columns of the labels")
    rows = training[columns].loc[training.index.repeat(counts)].reset_index(drop=True)
    return {"covariates": rows, "categorical": categorical, "continuous": continuous}


def _sample_rows(start: int, stop: int, limit: int) -> np.ndarray:
    """Evenly spaced row indices in [start, stop), at most `limit` of them."""
    count = stop - start
    if count <= limit:
        return np.arange(start, stop)
    return start + np.linspace(0, count - 1, limit).astype(np.int64)


def prepare(config: TrainConfig, data: BagSet) -> Prepared:
    """Split, correct, and index the data for `config`."""
    weights = config.losses.weights()
    pairs_needed = [name for name, spec in LOSSES.items() if spec.needs_tile_pairs and weights[name]]
    if data.locations is None and pairs_needed:
        raise ValueError("tile-level losses need registered tile pairs; load the cohort with its "
                         "registration.parquet (identical coordinates are never assumed to match)")
    n_outputs = check_targets(config, data)
    split = make_split(config, data)
    train_scanners = sorted(data.slides.loc[split.to_numpy() == "train", "scanner"].unique())
    codes = {scanner: i for i, scanner in enumerate(train_scanners)}
    transform = fit_tile_correction(config, data, split)
    collator = Collator.from_bagset(data, scanner_codes=codes, transform=transform)
    groups = specimen_groups(data, np.flatnonzero(split.to_numpy() == "train"))
    log.info("split: %s", split.value_counts().to_dict())
    return Prepared(bagset=data, split=split, collator=collator, scanner_codes=codes, n_outputs=n_outputs,
                    train_groups=groups)


def build_model(config: TrainConfig, prepared: Prepared) -> RobustMIL:
    """The RobustMIL for `config`; heads exist only for losses with non-zero weight."""
    m = config.model
    return build_robust_mil(
        task=config.task, kind=m.kind, in_dim=prepared.bagset.dim, n_outputs=prepared.n_outputs,
        hidden=m.hidden, dropout=m.dropout, weights=config.losses.weights(), projection_dim=m.projection_dim,
        n_scanners=len(prepared.scanner_codes), tau=config.losses.tau, options=config.losses.options(),
        **m.backbone_settings())
