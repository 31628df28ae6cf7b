"""Patient-grouped, label-stratified splits: no patient (hence no specimen or scan) in two splits.

All scans of a patient share the patient's split, so a robustness metric on test specimens never
sees a scan whose twin was trained on. Leave-scanner-out removes the held-out scanners' slides from
train and val; their slides stay in test, where they are the held-out-scanner evaluation. Which of
these a run uses is decided by `raypath.train.split_policy`.
"""

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

SPLITS = ("train", "val", "test")


def grouped_split(
    slides: pd.DataFrame, *, train: float, val: float, seed: int, stratify: str | None = None,
) -> pd.Series:
    """Split name per slide row; patients are shuffled within strata and cut by the fractions.

    `stratify` names a per-patient column (e.g. 'label', or 'event' for survival); rows where it
    is missing form their own stratum.
    """
    patients = slides.groupby("patient_id", sort=True).first()
    strata = (patients[stratify].fillna(-1) if stratify and stratify in patients
              else pd.Series(0, index=patients.index))
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for _, members in strata.groupby(strata, sort=True):
        ids = members.index.to_numpy().copy()
        rng.shuffle(ids)
        n_train = round(train * len(ids))
        n_val = round(val * len(ids))
        for position, patient in enumerate(ids):
            assignment[patient] = ("train" if position < n_train
                                   else "val" if position < n_train + n_val else "test")
    return slides["patient_id"].map(assignment).rename("split")


def patient_folds(slides: pd.DataFrame, *, folds: int, seed: int, stratify: str | None = None) -> pd.Series:
    """Fold number per slide row: patients (so every specimen and scan of one) stay in one fold,
    folds stratified by `stratify` (a per-patient column; missing values are their own stratum)."""
    patients = slides.groupby("patient_id", sort=True).first()
    if len(patients) < folds:
        raise ValueError(f"{len(patients)} patients cannot fill {folds} folds")
    strata = (patients[stratify].fillna(-1).astype(str) if stratify and stratify in patients
              else pd.Series("all", index=patients.index))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_of = pd.Series(-1, index=patients.index)
    smallest = int(strata.value_counts().min())
    if smallest < folds:  # a stratum too small for every fold: fall back to plain shuffled folds
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    for number, (_, test) in enumerate(splitter.split(np.zeros(len(patients)), strata)):
        fold_of.iloc[test] = number
    return slides["patient_id"].map(fold_of).rename("fold")


def fold_split(folds_of_slides: pd.Series, *, fold: int, folds: int) -> pd.Series:
    """test = fold `fold`, val = the next fold, train = the others."""
    split = pd.Series("train", index=folds_of_slides.index, name="split")
    split[folds_of_slides == fold] = "test"
    split[folds_of_slides == (fold + 1) % folds] = "val"
    return split


def column_split(slides: pd.DataFrame) -> pd.Series:
    """The slides' own 'split' column, validated: known names, one split per patient."""
    if "split" not in slides:
        raise ValueError("split.source is 'column' but the slides have no 'split' column")
    bad = slides.loc[~slides["split"].isin(SPLITS), "slide_id"]
    if len(bad):
        raise ValueError(f"slide {bad.iloc[0]}: split must be one of {SPLITS}")
    per_patient = slides.groupby("patient_id")["split"].nunique()
    if (per_patient > 1).any():
        raise ValueError(f"patient {per_patient[per_patient > 1].index[0]} appears in several splits")
    return slides["split"].rename("split")


def leave_scanner_out(splits: pd.Series, scanners: pd.Series, *, held_out: Sequence[str]) -> pd.Series:
    """Mark the held-out scanners' train/val slides 'unused'; their test slides stay in test."""
    missing = [s for s in held_out if not (scanners == s).any()]
    if missing:
        raise ValueError(f"held-out scanners {missing} have no slides; scanners: {sorted(scanners.unique())}")
    out = splits.copy()
    out[scanners.isin(list(held_out)).to_numpy() & splits.isin(["train", "val"]).to_numpy()] = "unused"
    return out
