"""A node-local feature cache: the feature store as one memory-mapped array, built once per node.

Why: a sweep trains thousands of models on the same bags, and a cohort can be larger than any one
process's memory (10^6-10^7 tiles x 1,024-2,560 dims). The first process on a node that needs a
store writes it, slide by slide, into `features.npy` (float16 by default; bfloat16 or float32 on
request), `offsets.npy`, `coords.npy`, `layout.npy` and `slides.parquet`, with the store's provenance
in `cache.json`. Every later process maps it read-only: the OS page cache is the shared memory (one
copy per node, however many trials), nothing is pickled or sent through an object store, and a
batch reads only the rows it samples. When the cache fits in RAM this is the in-memory path.

Each bag's rows (features and coords alike) are written in a random order drawn once per slide
from the seed recorded in `cache.json` (`raypath.mil.layout`): a sampled bag is then a window of
consecutive rows, one disk read, so a cache larger than memory trains at disk speed. `layout.npy`
says where each store tile went; everything that is not training-time sampling (evaluation,
prediction, the full bag) sees the store's tiles in the store's order.

The build writes into a temporary directory and renames it (a crash never leaves a half cache
under its final name) under a file lock (trials starting together build it once; the others
wait). The directory name carries the store's fingerprint (file names, sizes and times), so a
changed store gets a new cache and the stale one is removed.
"""

import json
import logging
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import pandas as pd
from filelock import FileLock

from raypath.logs import ProgressBar
from raypath.mil.bags import IDENTITY_COLUMNS, BagSet
from raypath.mil.layout import (
    HEADER_BYTES,
    RowLayout,
    RowPrefetch,
    inverse,
    map_rows,
    tile_order,
    write_npy_header,
)
from raypath.paths import TEMPORARY_MARK
from raypath.publish import publish_directory, publish_file
from raypath.store import (
    PROVENANCE_KEYS,
    FeatureStore,
    ProvenanceError,
    SlideEntry,
    check_encoder,
    check_provenance,
)

log = logging.getLogger(__name__)

Storage = Literal["float16", "bfloat16", "float32"]
CACHE_VERSION = 2  # 2: each bag's rows shuffled once (layout.npy), page-aligned feature rows
LAYOUT_SEED = 0
_NUMPY = {"float16": np.float16, "float32": np.float32, "bfloat16": np.uint16}  # bf16 bits as uint16


@dataclass(frozen=True)
class CacheInfo:
    """What `cache.json` records: enough to refuse a cache that does not belong to a store."""

    encoder: str
    tiling_hash: str
    fingerprint: str
    storage: Storage
    n_tiles: int
    dim: int
    provenance: dict
    layout_seed: int

    @classmethod
    def read(cls, directory: Path) -> "CacheInfo":
        data = json.loads((directory / "cache.json").read_text())
        if data.get("version") != CACHE_VERSION:
            raise ProvenanceError(f"{directory}: cache format {data.get('version')} is not {CACHE_VERSION}")
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def cache_directory(root: Path, store: FeatureStore, *, storage: Storage,
                    fingerprint: str | None = None) -> Path:
    """Where the cache of `store` lives under `root`: keyed by the store's current fingerprint, or
    by `fingerprint` (what a sweep's driver saw: every trial then reads the same state)."""
    key = fingerprint or store.fingerprint()
    return Path(root) / store.encoder / store.tiling_hash / f"{storage}-v{CACHE_VERSION}-{key}"


def open_cache(store: FeatureStore, *, root: Path, storage: Storage = "float16",
               fingerprint: str | None = None) -> BagSet:
    """The store's bags, memory-mapped from the node-local cache under `root` (built on first use)."""
    directory = cache_directory(root, store, storage=storage, fingerprint=fingerprint)
    if not directory.is_dir():
        directory.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(directory) + ".lock"):
            if not directory.is_dir():
                _remove_leftovers(directory)
                build_cache(store, directory=directory, storage=storage)
    return load_cache(directory, store=store)


def load_cache(directory: Path, *, store: FeatureStore) -> BagSet:
    """Map a built cache read-only, refusing it unless it records `store`'s encoder and provenance."""
    info = CacheInfo.read(directory)
    if (info.encoder, info.tiling_hash) != (store.encoder, store.tiling_hash):
        raise ProvenanceError(f"{directory} caches {info.encoder}/{info.tiling_hash}, "
                              f"not {store.encoder}/{store.tiling_hash}")
    check_encoder(info.provenance, store=store)
    slides = pd.read_parquet(directory / "slides.parquet")
    check_provenance([info.provenance, store.slide_entry(str(slides["slide_id"].iloc[0])).metadata],
                     where=f"{directory} and {store.directory}")
    features = map_rows(directory / "features.npy")
    prefetch = RowPrefetch(directory / "features.npy", offset=HEADER_BYTES,
                           row_bytes=features.shape[1] * features.itemsize)
    layout = RowLayout(positions=np.load(directory / "layout.npy", mmap_mode="r"), seed=info.layout_seed,
                       prefetch=prefetch)
    return BagSet(features=features, offsets=np.load(directory / "offsets.npy"),
                  slides=slides[[*IDENTITY_COLUMNS, "extent_l0"]], coords=np.load(directory / "coords.npy",
                                                                                   mmap_mode="r"),
                  bfloat16=info.storage == "bfloat16", layout=layout)


def build_cache(store: FeatureStore, *, directory: Path, storage: Storage) -> CacheInfo:
    """Write the cache into a temporary sibling of `directory`, then rename it into place."""
    entries = _slide_entries(store)
    written: list[CacheInfo] = []
    publish_directory(directory, lambda temporary: written.append(_write(store, entries, temporary,
                                                                        storage=storage)), replace=False)
    info = written[0]
    _remove_stale(directory)
    log.info("cached %d slides (%d tiles x %d, %s) of %s in %s", len(entries), info.n_tiles, info.dim,
             storage, store.directory, directory)
    return info


def _slide_entries(store: FeatureStore) -> list[SlideEntry]:
    """Every slide's identity and size, provenance checked, sorted by specimen, scanner, slide."""
    entries = store.slide_entries()
    if not entries:
        raise FileNotFoundError(f"no feature files under {store.directory}")
    check_provenance([e.metadata for e in entries], where=store.directory)
    check_encoder(entries[0].metadata, store=store)
    kept = [e for e in entries if e.n_tiles]
    if len(kept) < len(entries):
        log.warning("%s: %d slides without tiles are left out", store.directory, len(entries) - len(kept))
    return sorted(kept, key=lambda e: (e.specimen_id, e.scanner, e.slide_id))


def _write(store: FeatureStore, entries: list[SlideEntry], directory: Path, *, storage: Storage) -> CacheInfo:
    """Stream each slide's rows, shuffled by `tile_order`, into features.npy and coords.npy with
    plain writes (nothing held in memory), and where each store tile went into layout.npy."""
    lengths = np.array([e.n_tiles for e in entries], dtype=np.int64)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    dim, total = int(entries[0].metadata["embed_dim"]), int(offsets[-1])
    with _npy_writer(directory / "features.npy", np.dtype(_NUMPY[storage]), (total, dim)) as features_out, \
            _npy_writer(directory / "coords.npy", np.dtype(np.int64), (total, 2)) as coords_out, \
            _npy_writer(directory / "layout.npy", np.dtype(np.int32), (total,)) as layout_out:
        bar = ProgressBar(_prefetch(store, entries), total=len(entries), desc="cache features", leave=False)
        for entry, (features, xy) in zip(entries, bar, strict=True):
            if features.shape != (entry.n_tiles, dim):
                raise ProvenanceError(f"{store.slide_path(entry.slide_id)}: features {features.shape}, "
                                      f"expected ({entry.n_tiles}, {dim})")
            order = tile_order(entry.slide_id, entry.n_tiles, seed=LAYOUT_SEED)
            features_out.write(_encode(features[order], storage).tobytes())
            coords_out.write(np.ascontiguousarray(xy[order], dtype=np.int64).tobytes())
            layout_out.write(inverse(order).tobytes())
    np.save(directory / "offsets.npy", offsets)
    slides = pd.DataFrame([{**{c: getattr(e, c) for c in IDENTITY_COLUMNS}, "extent_l0": e.extent_l0,
                            "n_tiles": e.n_tiles} for e in entries])
    slides.to_parquet(directory / "slides.parquet", index=False)
    provenance = {k: v for k, v in entries[0].metadata.items() if k in (*PROVENANCE_KEYS, "card", "tiling")}
    info = CacheInfo(encoder=store.encoder, tiling_hash=store.tiling_hash, fingerprint=store.fingerprint(),
                     storage=storage, n_tiles=int(offsets[-1]), dim=dim, provenance=provenance,
                     layout_seed=LAYOUT_SEED)
    (directory / "cache.json").write_text(json.dumps({"version": CACHE_VERSION, **info.__dict__,
                                                      "store": store.directory}, indent=2))
    return info


@contextmanager
def _npy_writer(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> Iterator[BinaryIO]:
    """A .npy file written row block by row block with plain writes: the data passes through the
    page cache, never through this process's memory, so building costs no RSS per tile. The
    header fills one page, so rows start at page offsets (a sampled window reads whole pages)."""
    with open(path, "wb") as sink:
        write_npy_header(sink, dtype=dtype, shape=shape)
        expected = sink.tell() + int(np.prod(shape)) * dtype.itemsize
        yield sink
        if sink.tell() != expected:
            raise OSError(f"{path}: wrote {sink.tell()} bytes, expected {expected}")
        sink.flush()
        os.fsync(sink.fileno())


def _encode(features: np.ndarray, storage: Storage) -> np.ndarray:
    """float32 rows in the storage type; bfloat16 = the top 16 bits, rounded to nearest even."""
    if storage != "bfloat16":
        return np.ascontiguousarray(features, dtype=_NUMPY[storage])
    bits = np.ascontiguousarray(features, dtype=np.float32).view(np.uint32)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return (rounded >> 16).astype(np.uint16)


def _prefetch(store: FeatureStore, entries: list[SlideEntry], *, depth: int = 4
              ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Slides' (features, coords) in order, reading up to `depth` ahead (remote stores are slow)."""
    with ThreadPoolExecutor(max_workers=depth) as pool:
        pending: deque[Future] = deque()
        for entry in entries:
            pending.append(pool.submit(store.read_tiles, entry.slide_id))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def cached_array(path: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """`path` as an array, computed and written once (atomically, under a lock) on first use."""
    if not path.exists():
        with FileLock(str(path) + ".lock"):
            if not path.exists():
                publish_file(path, lambda temporary: _save_array(temporary, compute()))
    return np.load(path, mmap_mode="r")


def _save_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as sink:  # np.save(path) would add `.npy` to a temporary name
        np.save(sink, array)


def _remove_leftovers(directory: Path) -> None:
    """Temporary directories of builders that died (only a lock holder runs this: none is live)."""
    for stale in directory.parent.glob(f".{directory.name}{TEMPORARY_MARK}*"):
        shutil.rmtree(stale, ignore_errors=True)


def _remove_stale(directory: Path) -> None:
    """Caches of earlier states of the same store: mapped files stay readable until unmapped."""
    prefix = directory.name.split("-")[0] + "-"
    for other in directory.parent.iterdir():
        stale = other.is_dir() and other.name.startswith(prefix) and ".tmp-" not in other.name
        if stale and other != directory:
            log.info("removing the outdated cache %s", other)
            shutil.rmtree(other, ignore_errors=True)
