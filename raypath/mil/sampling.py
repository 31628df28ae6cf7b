"""Specimen batches and vectorised collation from a BagSet into a padded ``Batch``.

Collation is index arithmetic plus one gather from the shared feature tensor: no per-bag Python
loop. Tile subsampling gives every tile a key and keeps the ``max_tiles`` smallest per bag; keys are
shared by matched tiles of one specimen so the scans of a specimen keep the same tissue locations
(registered pairs survive subsampling). Evaluation takes evenly spaced tiles: deterministic per slide.

Keys depend on the bag's layout. In the store's order (an in-memory BagSet) they are independent
uniform draws. In the cache's shuffled layout (`raypath.mil.layout`) a tile's key is its row's
place in the bag (row / length) minus one uniform phase per specimen, modulo 1: the smallest keys
are a window of consecutive rows from a uniformly random start, one contiguous read. Every row is
still kept with probability max_tiles / length, and since the rows were shuffled at random the
window is a uniformly random subset; what changes is that, for a given cache, the subsets an epoch
can draw are the bag's `length` windows rather than every subset. A matched tile takes the key of
its location in the reference scan (location / the reference's length), so pairs survive as
before; a rescan's matched rows then follow the reference's window and are read where they lie.
Outside training-time sampling the layout is invisible: store tiles map to their rows, so
evaluation, prediction and whole bags see the store's tiles in the store's order.
"""

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from raypath.mil.bags import BagSet
from raypath.mil.batch import Batch

UNKNOWN_SCANNER = -100  # cross_entropy's ignore_index: scanners unseen in training


def specimen_groups(bagset: BagSet, slides: np.ndarray) -> list[np.ndarray]:
    """Split sorted slide indices into runs that share a specimen (slides are specimen-sorted)."""
    slides = np.sort(np.asarray(slides, dtype=np.int64))
    codes = bagset.slides["specimen_id"].to_numpy()[slides]
    cuts = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    return np.split(slides, cuts) if len(slides) else []


def specimen_batches(
    groups: list[np.ndarray], *, batch_specimens: int, generator: torch.Generator | None,
) -> list[np.ndarray]:
    """Batches of `batch_specimens` specimens with all their scans; shuffled if a generator is given."""
    order = (torch.randperm(len(groups), generator=generator).numpy() if generator is not None
             else np.arange(len(groups)))
    return [np.concatenate([groups[i] for i in order[start: start + batch_specimens]])
            for start in range(0, len(groups), batch_specimens)]


def eval_chunks(slides: np.ndarray, lengths: np.ndarray, *, max_bags: int, max_tiles: int | None,
                tile_budget: int) -> list[np.ndarray]:
    """Consecutive runs of `slides` with at most `max_bags` bags and (bags x longest bag, after
    `max_tiles`) at most `tile_budget` padded tiles: evaluation memory stays bounded whatever the
    bag sizes (a 10,000-tile bag is evaluated with few others, small bags many at a time)."""
    sizes = lengths[slides] if max_tiles is None else np.minimum(lengths[slides], max_tiles)
    chunks, start = [], 0
    while start < len(slides):
        stop, longest = start, 0
        while stop < len(slides) and stop - start < max_bags:
            longest_next = max(longest, int(sizes[stop]))
            if stop > start and longest_next * (stop - start + 1) > tile_budget:
                break
            longest, stop = longest_next, stop + 1
        chunks.append(slides[start:stop])
        start = stop
    return chunks


class Selection(NamedTuple):
    """The tiles of one batch: global tile rows (B, N) (the slide's first row on padding), the real
    tile mask, dense specimen ids and tile groups; features are gathered for it (`Collator.batch`)."""

    slides: torch.Tensor  # (B,) int64 slide indices in the BagSet
    tile: torch.Tensor  # (B, N) int64 row of each tile in the BagSet's arrays
    real: torch.Tensor  # (B, N) bool
    specimen: torch.Tensor  # (B,) int64 dense 0..K-1
    tile_group: torch.Tensor  # (B, N) int64 (specimen, location) id, -1 = unmatched or padding


# Applied to the gathered tiles of a batch: (features (n, d) float32, each tile's scanner) -> features.
TileTransform = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Collator:
    """Torch views of a BagSet's arrays, made once, and the per-slide targets as tensors."""

    features: torch.Tensor
    offsets: torch.Tensor
    locations: torch.Tensor | None
    specimen: torch.Tensor
    scanner: torch.Tensor
    label: torch.Tensor
    time: torch.Tensor
    event: torch.Tensor
    scanner_names: np.ndarray
    transform: TileTransform | None = None
    positions: torch.Tensor | None = None  # the cache's layout: store tile -> row within the bag
    prefetch: Callable[[np.ndarray], None] | None = None  # announces the rows a batch will gather

    @classmethod
    def from_bagset(cls, bagset: BagSet, *, scanner_codes: dict[str, int],
                    transform: TileTransform | None = None) -> "Collator":
        """Views of the (possibly memory-mapped, read-only: batches only read) feature array."""
        slides = bagset.slides
        specimen = slides["specimen_id"].astype("category").cat.codes.to_numpy()
        scanner = slides["scanner"].map(scanner_codes).fillna(UNKNOWN_SCANNER).to_numpy()
        label = slides["label"].fillna(-1).to_numpy() if "label" in slides else np.full(len(slides), -1)
        time = slides["time"].to_numpy(float) if "time" in slides else np.full(len(slides), np.nan)
        event = slides["event"].fillna(0).to_numpy(float) if "event" in slides else np.zeros(len(slides))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            features = torch.from_numpy(bagset.features)
            locations = None if bagset.locations is None else torch.from_numpy(bagset.locations)
            layout = bagset.layout
            positions = None if layout is None else torch.from_numpy(np.asarray(layout.positions))
        return cls(
            features=features.view(torch.bfloat16) if bagset.bfloat16 else features,
            offsets=torch.from_numpy(np.asarray(bagset.offsets)), locations=locations,
            specimen=torch.from_numpy(specimen.astype(np.int64)),
            scanner=torch.from_numpy(scanner.astype(np.int64)),
            label=torch.from_numpy(label.astype(np.int64)),
            time=torch.from_numpy(time.astype(np.float32)),
            event=torch.from_numpy(event.astype(np.float32)),
            scanner_names=slides["scanner"].to_numpy(), transform=transform, positions=positions,
            prefetch=None if layout is None else layout.prefetch,
        )

    def select(self, slides: np.ndarray, *, max_tiles: int | None = None,
               generator: torch.Generator | None = None) -> "Selection":
        """Which tiles a batch of the given slides (global indices) holds; bags longer than
        `max_tiles` keep a random subset (drawn from `generator`) or, without a generator, evenly
        spaced tiles: the deterministic choice evaluation and prediction make, whatever a slide is
        batched with. Matched tiles of one specimen share their random key, so registered pairs
        survive subsampling."""
        index = torch.as_tensor(slides, dtype=torch.int64)
        starts, lengths = self.offsets[index], self.offsets[index + 1] - self.offsets[index]
        specimen = torch.unique(self.specimen[index], return_inverse=True)[1]
        longest = int(lengths.max())
        subsample = max_tiles is not None and longest > max_tiles
        if subsample and generator is None:
            position, real = _even_subsample(lengths, max_tiles=max_tiles)
        else:
            position = torch.arange(longest).expand(len(index), longest)
            real = position < lengths[:, None]
        row = self._rows(starts, position, real)
        loc = self._locations(starts, row, real)
        if subsample and generator is not None:
            draw = _random_keys if self.positions is None else _window_keys
            keys = draw(row, lengths=lengths, loc=loc, specimen=specimen, generator=generator)
            row, real = _keep_smallest(row, real, keys, max_tiles=max_tiles)
            loc = self._locations(starts, row, real)
        tile = torch.where(real, starts[:, None] + row, starts[:, None])
        return Selection(slides=index, tile=tile, real=real, specimen=specimen,
                         tile_group=_tile_groups(loc, specimen))

    def batch(self, selection: "Selection", features: torch.Tensor) -> Batch:
        """The padded batch of a selection given its tiles' features (B, N, D), zero on padding."""
        index = selection.slides
        return Batch(features=features, mask=selection.real, specimen=selection.specimen,
                     scanner=self.scanner[index], tile_group=selection.tile_group, label=self.label[index],
                     time=self.time[index], event=self.event[index], slide=index)

    def __call__(self, slides: np.ndarray, *, max_tiles: int | None = None,
                 generator: torch.Generator | None = None) -> Batch:
        """Padded batch of the given slides (global indices), tiles chosen by `select`, in torch's
        default floating dtype (float32; float64 where a test compares computations whose summation
        order differs)."""
        selection = self.select(slides, max_tiles=max_tiles, generator=generator)
        tile, real = selection.tile, selection.real
        if self.prefetch is not None:
            self.prefetch(tile[real].numpy())
        features = self.features[tile.reshape(-1)].reshape(*tile.shape, -1).to(torch.get_default_dtype())
        if self.transform is not None:
            tile_scanner = np.repeat(self.scanner_names[selection.slides.numpy()], real.sum(dim=1).numpy())
            features[real] = torch.from_numpy(self.transform(features[real].numpy(), tile_scanner)).to(
                features.dtype)
        return self.batch(selection, features.masked_fill_(~real[..., None], 0.0))

    def eval_batches(self, slides: np.ndarray, *, max_bags: int, max_tiles: int | None,
                     tile_budget: int) -> Iterator[Batch]:
        """Deterministic evaluation batches of `slides` in order (evenly spaced tiles above
        `max_tiles`), in chunks bounded by bag count and padded tiles (`eval_chunks`)."""
        lengths = (self.offsets[1:] - self.offsets[:-1]).numpy()
        for chunk in eval_chunks(np.asarray(slides), lengths, max_bags=max_bags, max_tiles=max_tiles,
                                 tile_budget=tile_budget):
            yield self(chunk, max_tiles=max_tiles)

    def _rows(self, starts: torch.Tensor, position: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """The row within each bag that holds store tile `position` (itself without a layout)."""
        if self.positions is None:
            return position
        tile = torch.where(real, starts[:, None] + position, starts[:, None])
        return torch.where(real, self.positions[tile].long(), 0)

    def _locations(self, starts: torch.Tensor, row: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        if self.locations is None:
            return torch.full(row.shape, -1, dtype=torch.int64)
        tile = torch.where(real, starts[:, None] + row, starts[:, None])
        return torch.where(real, self.locations[tile], -1)


def even_positions(length: int, count: int) -> np.ndarray:
    """`count` evenly spaced tile positions of a bag of `length` tiles (all of them if fewer)."""
    if length <= count:
        return np.arange(length)
    return (np.arange(count) * length) // count


def _even_subsample(lengths: torch.Tensor, *, max_tiles: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`even_positions` of every bag at once: (positions (B, max_tiles), real mask)."""
    slots = torch.arange(max_tiles)[None, :]
    long = lengths[:, None] > max_tiles
    position = torch.where(long, (slots * lengths[:, None]) // max_tiles, slots)
    return position, long | (slots < lengths[:, None])


def _random_keys(row: torch.Tensor, *, lengths: torch.Tensor, loc: torch.Tensor, specimen: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
    """Independent uniform keys (the store's order); matched tiles share their location's key."""
    keys = torch.rand(row.shape, generator=generator)
    if bool((loc >= 0).any()):
        shared = torch.rand((int(specimen.max()) + 1, int(loc.max()) + 1), generator=generator)
        keys = torch.where(loc >= 0, shared[specimen[:, None].expand_as(loc), loc.clamp_min(0)], keys)
    return keys


def _window_keys(row: torch.Tensor, *, lengths: torch.Tensor, loc: torch.Tensor, specimen: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
    """Keys of a shuffled layout: (row / length − phase) mod 1 with one uniform phase per specimen,
    so the smallest are a window of consecutive rows; a matched tile takes its location's key
    (location / reference length: the reference scan's own rows are matched to themselves)."""
    n_specimens = int(specimen.max()) + 1
    phase = torch.rand(n_specimens, generator=generator, dtype=torch.float64)[specimen][:, None]
    rank = row.double() / lengths[:, None].double()
    matched = loc >= 0
    if bool(matched.any()):
        owner = specimen[:, None].expand_as(loc)[matched]
        span = torch.ones(n_specimens, dtype=torch.float64).scatter_reduce(
            0, owner, (loc[matched] + 1).double(), reduce="amax")
        rank = torch.where(matched, loc.double() / span[specimen][:, None], rank)
    return torch.remainder(rank - phase, 1.0)


def _keep_smallest(row: torch.Tensor, real: torch.Tensor, keys: torch.Tensor, *,
                   max_tiles: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The `max_tiles` real tiles of each bag with the smallest keys, in their grid order."""
    keys = keys.masked_fill(~real, float("inf"))
    chosen = keys.topk(max_tiles, dim=1, largest=False).indices.sort(dim=1).values
    return row.gather(1, chosen), real.gather(1, chosen)


def _tile_groups(loc: torch.Tensor, specimen: torch.Tensor) -> torch.Tensor:
    """Dense ids of (specimen, location) for matched tiles; −1 for unmatched or padding."""
    matched = loc >= 0
    if not bool(matched.any()):
        return torch.full_like(loc, -1)
    key = specimen[:, None] * (int(loc.max()) + 1) + loc.clamp_min(0)
    dense = torch.unique(key[matched], return_inverse=True)[1]
    groups = torch.full_like(loc, -1)
    groups[matched] = dense
    return groups
