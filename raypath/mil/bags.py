"""All bags of a cohort as one contiguous feature array plus per-slide offsets.

The array is usually a read-only memory map of the node-local feature cache (`raypath.mil.cache`),
so a BagSet costs no memory per tile: batches gather the rows they need and the page cache holds
the rest once per node. Slides are sorted by specimen so each specimen's scans are a contiguous
run, which makes specimen batches a slice computation.
``locations`` gives each tile the index of the matching tile in its specimen's reference scan
(from registration); −1 means unmatched. Identical coordinates are never assumed to match.
A cached BagSet also carries its ``layout`` (`raypath.mil.layout`): each bag's rows shuffled once,
so that training samples a bag as one contiguous window of rows.
"""

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from raypath.mil.layout import RowLayout
from raypath.simulate.cohort import SimulatedCohort

IDENTITY_COLUMNS = ("slide_id", "specimen_id", "patient_id", "scanner")


@dataclass(frozen=True)
class BagSet:
    """Features (T, D) of all tiles, offsets (S+1,), and one row per slide in `slides`."""

    features: np.ndarray  # float32/float16 (n, d), or bfloat16 bits as uint16 when `bfloat16`
    offsets: np.ndarray
    slides: pd.DataFrame
    coords: np.ndarray
    locations: np.ndarray | None = None
    bfloat16: bool = False
    layout: RowLayout | None = None  # rows shuffled per bag (the cache); None = the store's order

    def __post_init__(self) -> None:
        if self.offsets.shape != (len(self.slides) + 1,) or self.offsets[-1] != len(self.features):
            raise ValueError("BagSet offsets must have one entry per slide plus one and end at T")
        missing = [c for c in IDENTITY_COLUMNS if c not in self.slides.columns]
        if missing:
            raise ValueError(f"BagSet slides table lacks columns {missing}")

    @property
    def n_slides(self) -> int:
        return len(self.slides)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def tiles(self, slide: int) -> np.ndarray:
        """One slide's features, a view into the shared array."""
        return self.features[self.offsets[slide]: self.offsets[slide + 1]]

    def with_columns(self, table: pd.DataFrame, *, on: str) -> "BagSet":
        """Attach per-patient or per-slide columns (labels, split) by a key column."""
        clash = [c for c in table.columns if c != on and c in self.slides.columns]
        slides = self.slides.drop(columns=clash).merge(table, on=on, how="left", validate="many_to_one")
        return replace(self, slides=slides.set_index(self.slides.index))

    def with_locations(self, locations: np.ndarray) -> "BagSet":
        """Same bags with per-tile tissue location ids (−1 = unmatched)."""
        if locations.shape != (len(self.features),):
            raise ValueError(f"locations shape {locations.shape} != ({len(self.features)},)")
        return replace(self, locations=np.asarray(locations, dtype=np.int64))


def locations_from_pairs(bagset: BagSet, pairs: dict[str, tuple[str, np.ndarray]]) -> np.ndarray:
    """Per-tile location ids from registered pairs: slide_id -> (reference slide_id, (m, 2) pairs).

    Pairs are (reference tile, this slide's tile). A reference scan's tile t has location t.
    Slides absent from `pairs` (and not a reference) stay unmatched (−1).
    """
    locations = np.full(len(bagset.features), -1, dtype=np.int64)
    row_of = {s: i for i, s in enumerate(bagset.slides["slide_id"])}
    references = {ref for ref, _ in pairs.values()}
    for slide_id in references & row_of.keys():
        start, stop = bagset.offsets[row_of[slide_id]], bagset.offsets[row_of[slide_id] + 1]
        locations[start:stop] = np.arange(stop - start)
    for slide_id, (reference, matched) in pairs.items():
        if slide_id == reference or slide_id not in row_of or reference not in row_of:
            continue
        start = bagset.offsets[row_of[slide_id]]
        locations[start + matched[:, 1]] = matched[:, 0]
    return locations


def simulated_bagset(cohort: SimulatedCohort) -> BagSet:
    """A simulated cohort as bags (true tissue locations as tile pairs), labels and splits attached."""
    bags = BagSet(features=cohort.features, offsets=cohort.offsets, slides=cohort.slides,
                  coords=cohort.coords, locations=cohort.locations)
    return bags.with_columns(cohort.labels, on="patient_id").with_columns(cohort.splits, on="patient_id")
