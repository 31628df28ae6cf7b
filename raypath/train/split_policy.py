"""The one split policy of `train`, `sweep`, `finetune`, `evaluate-fm` and the report.

Which patients train, validate and test is decided here, before any expensive work, in this order:
a splits file when one is given, else the labels' `split` column, else (or when asked for with
`split.source: random` or `folds`) a random patient-grouped split, which is then said in the log,
recorded in MLflow (`SplitPlan.tags`) and shown in the report. A given split must cover exactly the
patients with features: unknown patients and patients left without a split are bad input. Held-out
scanners are the ones the cohort declares (`cohort.yaml` beside the labels) plus the config's; their
slides are never trained or validated on (`raypath.train.splits.leave_scanner_out`).
"""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from raypath.cohort import CohortError
from raypath.cohort.declaration import read_declaration
from raypath.cohort.splits import check_split_values
from raypath.train.config import SplitConfig

log = logging.getLogger(__name__)
SHOWN = 5  # ids named in an error
TAG_PREFIX = "raypath.split."


@dataclass(frozen=True)
class SplitPlan:
    """The decided split: `config` with a concrete source and every held-out scanner, the given
    assignment (patient_id, split) when it is used, and where the split comes from, in words."""

    config: SplitConfig
    assignment: pd.DataFrame | None
    origin: str

    def tags(self) -> dict[str, str]:
        """What MLflow records about the split (params and tags of every run)."""
        return {f"{TAG_PREFIX}source": self.config.source, f"{TAG_PREFIX}origin": self.origin,
                f"{TAG_PREFIX}held_out_scanners": ",".join(self.config.held_out_scanners) or "none"}


def resolve_source(source: str, *, given: bool) -> str:
    """'auto' becomes 'column' when a split is given, else 'random'; 'column' needs a given split."""
    if source == "auto":
        return "column" if given else "random"
    if source == "column" and not given:
        raise CohortError("split.source is 'column' but no split is given: pass a splits file or a "
                          "'split' column in the labels, or use split.source 'random'")
    return source


def held_out_scanners(configured: Sequence[str], *, labels: str | Path) -> list[str]:
    """The cohort's declared held-out scanners, then any more the config names."""
    declared = read_declaration(labels).held_out_scanners
    return list(dict.fromkeys([*declared, *configured]))


def given_split(*, labels: pd.DataFrame, labels_path: str | Path, splits: pd.DataFrame | None,
                splits_path: str | Path | None) -> tuple[pd.DataFrame | None, str]:
    """(assignment, origin) of the split the user gave: the splits file first, then the labels' column."""
    if splits is not None:
        return splits[["patient_id", "split"]], f"splits file {splits_path}"
    if "split" in labels.columns:
        return labels[["patient_id", "split"]].astype(str), f"the 'split' column of {labels_path}"
    return None, ""


def split_config(config: SplitConfig, *, labels: pd.DataFrame, labels_path: str | Path,
                 splits_given: bool) -> SplitConfig:
    """`config` with its source decided and the declared held-out scanners added (no data needed:
    the same for every FM of a sweep)."""
    given = splits_given or "split" in labels.columns
    return config.model_copy(update={"source": resolve_source(config.source, given=given),
                                     "held_out_scanners": held_out_scanners(config.held_out_scanners,
                                                                           labels=labels_path)})


def _describe_random(config: SplitConfig, *, asked: bool) -> str:
    if config.source == "folds":
        return f"patient-grouped {config.folds}-fold split (seed {config.seed}), test fold {config.fold}"
    text = f"random patient-grouped split (seed {config.seed}, train {config.train}, val {config.val})"
    return text if asked else text + ": no split was given"


def check_assignment(assignment: pd.DataFrame, *, origin: str, patients: Iterable[str],
                     file: bool) -> None:
    """A given split covers exactly the patients with features (a file naming others is wrong)."""
    have = set(map(str, patients))
    if not file:  # a label table may knowingly hold more patients than the features (unmatched_labels)
        assignment = assignment[assignment["patient_id"].astype(str).isin(have)]
    check_split_values(assignment, origin=origin, shown=SHOWN)
    named = set(assignment["patient_id"].astype(str))
    unknown = sorted(named - have)
    if unknown and file:
        raise CohortError(f"{origin}: {len(unknown)} patients have no features, e.g. {unknown[:SHOWN]}")
    missing = sorted(have - named)
    if missing:
        raise CohortError(f"{origin}: {len(missing)} patients with features have no split, "
                          f"e.g. {missing[:SHOWN]}")


def plan_split(config: SplitConfig, *, labels: pd.DataFrame, labels_path: str | Path,
               splits: pd.DataFrame | None = None, splits_path: str | Path | None = None,
               patients: Iterable[str], scanners: Iterable[str]) -> SplitPlan:
    """Decide the split of a cohort whose features hold `patients` and `scanners`; bad input raises
    `CohortError` naming the first ids and their count."""
    assignment, origin = given_split(labels=labels, labels_path=labels_path, splits=splits,
                                     splits_path=splits_path)
    decided = split_config(config, labels=labels, labels_path=labels_path, splits_given=splits is not None)
    present = set(map(str, scanners))
    absent = [s for s in decided.held_out_scanners if s not in present]
    if absent:
        raise CohortError(f"held-out scanners {absent} have no slides; scanners: {sorted(present)}")
    if decided.source == "column":
        check_assignment(assignment, origin=origin, patients=patients, file=splits is not None)
        return SplitPlan(config=decided, assignment=assignment, origin=origin)
    description = _describe_random(decided, asked=config.source != "auto")
    if config.source == "auto":
        log.warning("split: %s (pass --splits or a 'split' column in the labels to fix it)", description)
    return SplitPlan(config=decided, assignment=None, origin=description)
