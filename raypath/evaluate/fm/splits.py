"""Patient-grouped partitions and class–center-correlated training subsets for the APD probe."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Partition:
    """Training cells (train center × class → shuffled slide units) and the two test sets."""

    cell_units: list[list[np.ndarray]]  # [train center][class] -> unit ids, in draw order
    unit_rows: dict[object, np.ndarray]
    test_id: np.ndarray  # rows of test patients on training centers
    test_ood: np.ndarray  # rows on the held-out center of patients never trained on
    preferred_center: np.ndarray  # (n_classes,) train-center index each class is pushed toward

    @property
    def cell_sizes(self) -> np.ndarray:
        """(n_train_centers, n_classes) available units per cell."""
        return np.array([[len(units) for units in row] for row in self.cell_units])


def _test_patients(classes: np.ndarray, patients: np.ndarray, *, test_fraction: float,
                   rng: np.random.Generator) -> np.ndarray:
    """A class-stratified random share of patients, at least one per class."""
    chosen = []
    for label in np.unique(classes):
        members = np.unique(patients[classes == label])
        count = max(1, round(test_fraction * len(members)))
        chosen.append(rng.permutation(members)[:count])
    return np.concatenate(chosen)


def partition(*, classes: np.ndarray, centers: np.ndarray, units: np.ndarray, patients: np.ndarray,
              test_fraction: float, held_out_index: int, rng: np.random.Generator) -> Partition:
    """Split patients into train pool / test; hold out one center when there are at least three."""
    center_names = np.unique(centers)
    held = center_names[held_out_index % len(center_names)] if len(center_names) >= 3 else None
    train_centers = [c for c in center_names if c != held]
    is_test = np.isin(patients, _test_patients(classes, patients, test_fraction=test_fraction, rng=rng))
    on_train_center = centers != held
    train_rows = ~is_test & on_train_center
    class_names = np.unique(classes)
    cell_units = [[rng.permutation(np.unique(units[train_rows & (centers == center) & (classes == label)]))
                   for label in class_names] for center in train_centers]
    trained_patients = np.unique(patients[train_rows])
    test_ood = np.flatnonzero(~on_train_center & ~np.isin(patients, trained_patients))
    order = np.argsort(units, kind="stable")
    names, starts = np.unique(units[order], return_index=True)
    unit_rows = dict(zip(names, np.split(order, starts[1:]), strict=True))
    preferred = rng.permutation(len(train_centers))[np.arange(len(class_names)) % len(train_centers)]
    return Partition(cell_units=cell_units, unit_rows=unit_rows,
                     test_id=np.flatnonzero(is_test & on_train_center), test_ood=test_ood,
                     preferred_center=preferred)


def correlated_cell_counts(cell_sizes: np.ndarray, *, preferred_center: np.ndarray, n_splits: int,
                           max_strength: float) -> np.ndarray:
    """(S + 1, centers, classes) units to draw; split 0 balanced, then the shortcut grows.

    At strength t a class keeps n·(1 + t·(M − 1)) units on its preferred center and n·(1 − t) on
    each other one, so its total M·n (and the training size) stays fixed while only the
    class–center correlation changes.
    """
    n_centers, n_classes = cell_sizes.shape
    preferred = np.zeros_like(cell_sizes, dtype=bool)
    preferred[preferred_center, np.arange(n_classes)] = True
    peak = 1.0 + max_strength * (n_centers - 1)
    per_cell = np.where(preferred, cell_sizes / peak, cell_sizes).min()
    n = int(np.floor(per_cell))
    if n < 1:
        raise ValueError(f"too few training slides per (center, class) cell {cell_sizes.tolist()} "
                         f"for correlated splits; lower max_strength or test_fraction")
    strengths = max_strength * np.arange(n_splits + 1) / max(n_splits, 1)
    counts = [np.where(preferred, n * (1.0 + t * (n_centers - 1)), n * (1.0 - t)) for t in strengths]
    return np.rint(np.stack(counts)).astype(np.int64)


def subsample_units(part: Partition, *, counts: np.ndarray) -> np.ndarray:
    """Rows of the first ``counts[center, class]`` units of each cell (nested across splits)."""
    chosen = [units[:count] for row, row_counts in zip(part.cell_units, counts, strict=True)
              for units, count in zip(row, row_counts, strict=True)]
    unit_ids = np.concatenate(chosen) if chosen else np.array([])
    if unit_ids.size == 0:
        return np.array([], dtype=np.int64)
    return np.sort(np.concatenate([part.unit_rows[u] for u in unit_ids]))
