"""PathoROB's APD data design: slides per (centre, class) cell, a correlation schedule, and the rows
each split trains, validates and tests on.

Every in-domain (centre, class) cell is a list of slides. Split 0 trains on m slides of every
cell; each later split moves one slide per class from the other centres to the class's preferred
centre, so per-class totals stay exactly M·m while the class–centre correlation grows, until the
last split trains each class on its preferred centre only (full correlation). Validation is the
next slide of each cell, a share count/(M·m) of its tiles; testing uses the slides after position
M·m + 1 (in-domain) and every tile of the held-out centres (out-of-domain). With two in-domain
centres this is PathoROB's Camelyon/Tolkach schedule (preferred m + s, other m − s); with more,
the other centres give up slides in turn (PathoROB's TCGA table is a fixed 4×4 design of its own).
"""

import random
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Layout:
    """In-domain cells ([centre][class] → slide ids in order of appearance) and the rows they own."""

    centers: list[str]
    classes: list[object]
    cells: list[list[list[str]]]
    slide_rows: dict[str, np.ndarray]
    ood_rows: np.ndarray  # every row of the held-out centres

    @property
    def smallest_cell(self) -> int:
        return min(len(cell) for row in self.cells for cell in row)


def layout(*, classes: np.ndarray, centers: np.ndarray, slides: np.ndarray,
           held_out: tuple[str, ...]) -> Layout:
    """Group rows into slides and slides into (in-domain centre, class) cells; centres and classes
    sorted, slides and their rows in order of appearance (as PathoROB reads its metadata)."""
    centers, slides = np.asarray(centers).astype(str), np.asarray(slides).astype(str)
    frame = pd.DataFrame({"slide": slides, "center": centers, "label": np.asarray(classes)})
    first = frame.drop_duplicates("slide")
    in_domain = sorted(set(first["center"]) - set(held_out))
    labels = sorted(first["label"].unique())
    cells = [[first.loc[(first["center"] == c) & (first["label"] == y), "slide"].tolist() for y in labels]
             for c in in_domain]
    order = np.argsort(slides, kind="stable")
    names, starts = np.unique(slides[order], return_index=True)
    slide_rows = dict(zip(names, np.split(order, starts[1:]), strict=True))
    return Layout(centers=in_domain, classes=labels, cells=cells, slide_rows=slide_rows,
                  ood_rows=np.flatnonzero(np.isin(centers, list(held_out))))


def balanced_slides(smallest_cell: int, *, n_centers: int, min_test_slides: int,
                    max_balanced: int | None) -> int:
    """m, the slides per cell at split 0: as many as leave the smallest cell one validation slide
    and ``min_test_slides`` test slides after M·m (7 for Camelyon, 2 for TCGA, 3 for Tolkach)."""
    m = (smallest_cell - 1 - min_test_slides) // n_centers
    m = m if max_balanced is None else min(m, max_balanced)
    if m < 1:
        raise ValueError(f"APD needs at least {n_centers + 1 + min_test_slides} slides in every "
                         f"(centre, class) cell; the smallest has {smallest_cell}")
    return m


def preferred_centers(n_classes: int, n_centers: int) -> np.ndarray:
    """The centre each class drifts to: classes split into consecutive blocks, the first block to the
    last centre (PathoROB's Camelyon and Tolkach assignments)."""
    return n_centers - 1 - (np.arange(n_classes) * n_centers) // n_classes


def schedule(*, n_centers: int, n_classes: int, m: int) -> np.ndarray:
    """(S + 1, centres, classes) training slides per cell, S = m·(M − 1): split 0 balanced, each
    split moves one slide per class to its preferred centre; per-class totals stay M·m."""
    preferred = preferred_centers(n_classes, n_centers)
    counts = np.full((n_centers, n_classes), m, dtype=np.int64)
    steps = [counts.copy()]
    for step in range(m * (n_centers - 1)):
        offset = step % (n_centers - 1) + 1  # the other centres give up slides in turn
        for label, center in enumerate(preferred):
            counts[center, label] += 1
            counts[(center + offset) % n_centers, label] -= 1
        steps.append(counts.copy())
    return np.stack(steps)


def shuffled_orders(cells: list[list[list[str]]], *, iterations: int,
                    seed: int) -> list[list[list[list[str]]]]:
    """The slide order of every cell in each iteration, drawn as PathoROB draws it: python's
    ``random`` seeded with ``seed`` picks one seed per iteration, which reshuffles each cell (centre
    by centre, class by class) starting from the previous iteration's order."""
    seeds = random.Random(seed).sample(range(10000), iterations)
    orders, current = [], [[list(cell) for cell in row] for row in cells]
    for iteration_seed in seeds:
        shuffler = random.Random(iteration_seed)
        for row in current:
            for cell in row:
                shuffler.shuffle(cell)
        orders.append([[list(cell) for cell in row] for row in current])
    return orders


@dataclass(frozen=True)
class SplitRows:
    """Row indices of one split: training, validation (for the probe's C) and in-domain test."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def _rows(slide_rows: dict[str, np.ndarray], slides: list[str]) -> list[np.ndarray]:
    return [slide_rows[s] for s in slides]


def split_rows(order: list[list[list[str]]], counts: np.ndarray, *, slide_rows: dict[str, np.ndarray],
               m: int) -> SplitRows:
    """Train on the first ``counts`` slides of each cell; validate on the first count/(M·m) share of
    the next slide's tiles; test on the slides after position M·m + 1."""
    total = counts.shape[0] * m
    train, validation, test = [], [], []
    for row, row_counts in zip(order, counts, strict=True):
        for cell, count in zip(row, row_counts, strict=True):
            train += _rows(slide_rows, cell[:count])
            rows = slide_rows[cell[count]]
            validation.append(rows[: int(count * len(rows) / total)])
            test += _rows(slide_rows, cell[total + 1:])
    if not sum(len(v) for v in validation):  # too few tiles per slide (e.g. slide means): whole slides
        validation = [slide_rows[cell[count]] for row, row_counts in zip(order, counts, strict=True)
                      for cell, count in zip(row, row_counts, strict=True) if count]
    return SplitRows(*(np.concatenate(parts).astype(np.int64) for parts in (train, validation, test)))
