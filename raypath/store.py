"""The feature store: one Parquet file per slide per FM, an explicit versioned schema, atomic writes.

Layout: ``<root>/<encoder>/<tiling_hash>/<slide_id>.parquet``. Changing the encoder or any tiling
setting changes the directory, so old and new features never mix. File metadata records the
encoder card, a hash of its weights, the tiling config, the raypath version and a code hash; a
reader refuses to mix files whose provenance differs.
"""

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

import raypath
from raypath.logs import ProgressBar
from raypath.paths import is_remote, join, temporary_owner
from raypath.publish import publish_stream

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
METADATA_KEY = b"raypath"
# Provenance fields that must agree between files read together.
PROVENANCE_KEYS = ("schema_version", "encoder", "weights_hash", "tiling_hash", "embed_dim")


class ProvenanceError(ValueError):
    """Feature files written by different encoders, weights, tiling or schema versions."""


def feature_schema(embed_dim: int, metadata: Mapping[str, Any] | None = None) -> pa.Schema:
    """The versioned Arrow schema of a slide's feature file; one row per tissue tile."""
    fields = [
        pa.field("slide_id", pa.string(), nullable=False),
        pa.field("specimen_id", pa.string(), nullable=False),
        pa.field("patient_id", pa.string(), nullable=False),
        pa.field("scanner", pa.string(), nullable=False),
        pa.field("tile_index", pa.int32(), nullable=False),
        pa.field("x", pa.int64(), nullable=False),  # level-0 pixels, top-left corner
        pa.field("y", pa.int64(), nullable=False),
        pa.field("extent_l0", pa.int32(), nullable=False),  # tile side in level-0 pixels
        pa.field("tile_px", pa.int32(), nullable=False),  # tile side at `mpp`
        pa.field("mpp", pa.float32(), nullable=False),
        pa.field("tissue_fraction", pa.float32(), nullable=False),
        pa.field("features", pa.list_(pa.float32(), embed_dim), nullable=False),
    ]
    meta = {METADATA_KEY: json.dumps(dict(metadata), sort_keys=True).encode()} if metadata else None
    return pa.schema(fields, metadata=meta)


@functools.cache
def code_hash() -> str:
    """Hash of raypath's source, recorded so features trace back to the code that made them."""
    digest = hashlib.sha256()
    package_dir = Path(raypath.__file__).parent
    for source in sorted(package_dir.rglob("*.py")):
        digest.update(source.relative_to(package_dir).as_posix().encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def provenance(
    *, encoder: str, card: Mapping[str, Any], weights_hash: str, tiling: Mapping[str, Any],
    tiling_hash: str, embed_dim: int,
) -> dict[str, Any]:
    """The metadata every feature file carries."""
    return {
        "schema_version": SCHEMA_VERSION,
        "encoder": encoder,
        "card": dict(card),
        "weights_hash": weights_hash,
        "tiling": dict(tiling),
        "tiling_hash": tiling_hash,
        "embed_dim": int(embed_dim),
        "raypath_version": raypath.__version__,
        "code_hash": code_hash(),
    }


def tiles_table(
    *, slide: Mapping[str, str], coords: np.ndarray, features: np.ndarray, extent_l0: int,
    tile_px: int, mpp: float, tissue_fraction: np.ndarray, metadata: Mapping[str, Any],
) -> pa.Table:
    """Build one slide's table; `coords` is (n, 2) level-0 x/y, `features` is (n, dim) float32."""
    count, dim = features.shape
    flat = pa.array(np.ascontiguousarray(features, dtype=np.float32).reshape(-1))
    columns = {
        "slide_id": pa.array([slide["slide_id"]] * count, pa.string()),
        "specimen_id": pa.array([slide["specimen_id"]] * count, pa.string()),
        "patient_id": pa.array([slide["patient_id"]] * count, pa.string()),
        "scanner": pa.array([slide["scanner"]] * count, pa.string()),
        "tile_index": pa.array(np.arange(count, dtype=np.int32)),
        "x": pa.array(coords[:, 0].astype(np.int64)),
        "y": pa.array(coords[:, 1].astype(np.int64)),
        "extent_l0": pa.array(np.full(count, extent_l0, dtype=np.int32)),
        "tile_px": pa.array(np.full(count, tile_px, dtype=np.int32)),
        "mpp": pa.array(np.full(count, mpp, dtype=np.float32)),
        "tissue_fraction": pa.array(np.asarray(tissue_fraction, dtype=np.float32)),
        "features": pa.FixedSizeListArray.from_arrays(flat, dim),
    }
    return pa.Table.from_pydict(columns, schema=feature_schema(dim, metadata))


IDENTITY = ("slide_id", "specimen_id", "patient_id", "scanner")


@dataclass(frozen=True)
class StoreFile:
    """A finished slide file as the store's directory listing shows it."""

    slide_id: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Temporary:
    """A file being written (or left half-written) under a temporary name, and who wrote it."""

    path: str
    owner: str
    mtime_s: float


@dataclass(frozen=True)
class SlideEntry:
    """A slide's identity, tile count and provenance, read without its features."""

    slide_id: str
    specimen_id: str
    patient_id: str
    scanner: str
    extent_l0: int
    n_tiles: int
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Bag:
    """One slide's tiles: features (n, dim) float32, level-0 coords (n, 2) and identity."""

    slide_id: str
    specimen_id: str
    patient_id: str
    scanner: str
    features: np.ndarray
    coords: np.ndarray
    extent_l0: int
    metadata: dict[str, Any]
    tile_um: float = 0.0  # side of a tile in microns (tile_px x mpp): scale bars on heatmaps


def table_to_bag(table: pa.Table, metadata: dict[str, Any]) -> Bag:
    """Convert a slide's table (already read) into a Bag without copying the features twice."""
    dim = table.schema.field("features").type.list_size
    flat = table.column("features").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    first = {name: table.column(name)[0].as_py() if table.num_rows else "" for name in
             ("slide_id", "specimen_id", "patient_id", "scanner")}
    extent = int(table.column("extent_l0")[0].as_py()) if table.num_rows else 0
    tile_um = (float(table.column("tile_px")[0].as_py()) * float(table.column("mpp")[0].as_py())
               if table.num_rows else 0.0)
    coords = np.stack([table.column("x").to_numpy(), table.column("y").to_numpy()], axis=1)
    return Bag(features=flat.reshape(-1, dim), coords=coords, extent_l0=extent, metadata=metadata,
               tile_um=tile_um, **first)


def tiling_hashes(root: str | Path, *, encoder: str) -> list[str]:
    """The tiling-hash directories one encoder has under a local root or a URI, sorted."""
    return _subdirectories(join(str(root), encoder))


def store_encoders(root: str | Path) -> list[str]:
    """The encoders that have features under a store root (local or URI), sorted."""
    return _subdirectories(str(root))


def _subdirectories(directory: str) -> list[str]:
    filesystem, inner = pafs.FileSystem.from_uri(directory) if is_remote(directory) else (
        pafs.LocalFileSystem(), directory)
    if filesystem.get_file_info(inner).type != pafs.FileType.Directory:
        return []
    infos = filesystem.get_file_info(pafs.FileSelector(inner))
    return sorted(Path(i.path).name for i in infos if i.type == pafs.FileType.Directory
                  and not Path(i.path).name.startswith((".", "_")))


class FeatureStore:
    """Feature files of one encoder under one tiling config; writes are atomic, reads checked."""

    def __init__(self, root: str | Path, *, encoder: str, tiling_hash: str) -> None:
        self.root = str(root)
        self.encoder = encoder
        self.tiling_hash = tiling_hash
        self.directory = join(self.root, encoder, tiling_hash)
        self._fs, self._dir = pafs.FileSystem.from_uri(self.directory) if is_remote(
            self.directory) else (pafs.LocalFileSystem(), self.directory)

    def slide_path(self, slide_id: str) -> str:
        """Final path of a slide's file; ids were validated as path-safe by the cohort loader."""
        if "/" in slide_id or "\\" in slide_id or slide_id in ("", ".", ".."):
            raise ValueError(f"unsafe slide id {slide_id!r} for a feature file name")
        return f"{self._dir}/{slide_id}.parquet"

    def has(self, slide_id: str) -> bool:
        """A slide counts as done only when its final file exists (temp files never do)."""
        info = self._fs.get_file_info(self.slide_path(slide_id))
        return info.type == pafs.FileType.File

    def write(self, slide_id: str, table: pa.Table, *, owner: str = "") -> str:
        """Write to a hidden temporary name, then rename: a crash never leaves a half file.

        The temporary name carries the writer's `owner` token (`raypath.extract.owners`), so another
        run removes it only once its writer is gone.
        """
        final = self.slide_path(slide_id)
        publish_stream(self._fs, final, lambda sink: pq.write_table(table, sink, compression="zstd",
                                                                    row_group_size=1 << 20), owner=owner)
        return final

    def _exists(self, path: str) -> bool:
        return self._fs.get_file_info(path).type == pafs.FileType.File

    def slide_ids(self) -> list[str]:
        """Slides with a finished file, sorted; temporary files are ignored."""
        return [entry.slide_id for entry in self.files()]

    def files(self) -> list["StoreFile"]:
        """Finished slide files with size and modification time, sorted by slide id (one listing)."""
        if self._fs.get_file_info(self._dir).type != pafs.FileType.Directory:
            return []
        infos = self._fs.get_file_info(pafs.FileSelector(self._dir))
        found = [StoreFile(slide_id=Path(i.path).name[: -len(".parquet")], size=i.size,
                           mtime_ns=i.mtime_ns or 0)
                 for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet")
                 and not Path(i.path).name.startswith(".")]
        return sorted(found, key=lambda entry: entry.slide_id)

    def fingerprint(self) -> str:
        """Hash of the finished files' names, sizes and times: changes whenever the store does."""
        rows = [(f.slide_id, f.size, f.mtime_ns) for f in self.files()]
        return hashlib.sha256(json.dumps([self.encoder, self.tiling_hash, rows]).encode()).hexdigest()[:16]

    def slide_entry(self, slide_id: str) -> "SlideEntry":
        """Identity, tile count and provenance of one slide from its footer and first row group."""
        with self._fs.open_input_file(self.slide_path(slide_id)) as source:
            parquet = pq.ParquetFile(source)
            raw = parquet.schema_arrow.metadata or {}
            if METADATA_KEY not in raw:
                raise ProvenanceError(f"{self.slide_path(slide_id)} has no raypath metadata")
            rows = parquet.metadata.num_rows
            ids = parquet.read_row_group(0, columns=[*IDENTITY, "extent_l0"]).slice(0, 1).to_pylist() \
                if rows else [{name: "" for name in IDENTITY} | {"extent_l0": 0}]
        return SlideEntry(**ids[0], n_tiles=rows, metadata=json.loads(raw[METADATA_KEY]))

    def slide_entries(self, slide_ids: Iterable[str] | None = None) -> list["SlideEntry"]:
        """`slide_entry` of many slides, read in parallel (footers only: cheap even on s3://)."""
        ids = self.slide_ids() if slide_ids is None else list(slide_ids)
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(ProgressBar(pool.map(self.slide_entry, ids), total=len(ids), desc="index features",
                             leave=False, disable=len(ids) < 100))

    def read_tiles(self, slide_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(features (n, dim) float32, level-0 coords (n, 2)) of one slide, nothing else read."""
        with self._fs.open_input_file(self.slide_path(slide_id)) as source:
            table = pq.read_table(source, columns=["features", "x", "y"])
        dim = table.schema.field("features").type.list_size
        flat = table.column("features").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        coords = np.stack([table.column("x").to_numpy(), table.column("y").to_numpy()], axis=1)
        return flat.reshape(-1, dim), coords

    def read_coords(self, slide_id: str) -> tuple[np.ndarray, int]:
        """(level-0 coords (n, 2), tile side in level-0 px) of one slide, without its features."""
        with self._fs.open_input_file(self.slide_path(slide_id)) as source:
            table = pq.read_table(source, columns=["x", "y", "extent_l0"])
        extent = int(table.column("extent_l0")[0].as_py()) if table.num_rows else 0
        return np.stack([table.column("x").to_numpy(), table.column("y").to_numpy()], axis=1), extent

    def temporaries(self) -> list[Temporary]:
        """Temporary files in the store directory, with their owner token and modification time."""
        if self._fs.get_file_info(self._dir).type != pafs.FileType.Directory:
            return []
        infos = self._fs.get_file_info(pafs.FileSelector(self._dir))
        found = [(i, temporary_owner(Path(i.path).name)) for i in infos if i.type == pafs.FileType.File]
        return [Temporary(path=i.path, owner=owner, mtime_s=(i.mtime_ns or 0) / 1e9)
                for i, owner in found if owner is not None]

    def clear_temporaries(self, *, is_gone: Callable[[Temporary], bool] = lambda temporary: True) -> int:
        """Delete temporary files whose writer is gone (by default: all of them); returns how many.

        A file another process renames or deletes meanwhile is no error.
        """
        removed = 0
        for temporary in self.temporaries():
            if is_gone(temporary):
                try:
                    self._fs.delete_file(temporary.path)
                except FileNotFoundError:
                    continue
                removed += 1
        return removed

    def metadata(self, slide_id: str) -> dict[str, Any]:
        """The provenance in one slide file's footer, without reading its features."""
        with self._fs.open_input_file(self.slide_path(slide_id)) as source:
            raw = pq.read_schema(source).metadata or {}
        if METADATA_KEY not in raw:
            raise ProvenanceError(f"{self.slide_path(slide_id)} has no raypath metadata")
        return json.loads(raw[METADATA_KEY])

    def check_compatible(self, expected: Mapping[str, Any]) -> None:
        """Refuse to add files next to existing ones written with other weights, tiling or schema."""
        existing = self.slide_ids()
        if existing:
            check_provenance([self.metadata(existing[0]), expected], where=self.directory)

    def read_bag(self, slide_id: str) -> Bag:
        """One slide's bag in one read."""
        path = self.slide_path(slide_id)
        with self._fs.open_input_file(path) as source:
            table = pq.read_table(source)
        meta = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
        if not meta:
            raise ProvenanceError(f"{path} has no raypath metadata")
        return table_to_bag(table, meta)


def check_encoder(metadata: Mapping[str, Any], *, store: "FeatureStore") -> None:
    """Features filed under one FM's name must have been written by that FM (a copy or a symlink
    under the wrong name would otherwise train or be scored as the other FM)."""
    if metadata.get("encoder") != store.encoder:
        raise ProvenanceError(f"features under {store.directory} were written by encoder "
                              f"{metadata.get('encoder')!r}, not {store.encoder!r}")


def check_provenance(metadatas: list[Mapping[str, Any]], *, where: str) -> None:
    """Refuse a silent mix of features from different encoders, weights, tiling or schema."""
    if not metadatas:
        return
    reference = {k: metadatas[0].get(k) for k in PROVENANCE_KEYS}
    for meta in metadatas[1:]:
        current = {k: meta.get(k) for k in PROVENANCE_KEYS}
        if current != reference:
            diff = {k: (reference[k], current[k]) for k in PROVENANCE_KEYS
                    if reference[k] != current[k]}
            raise ProvenanceError(f"feature files under {where} disagree on provenance: {diff}")
    if reference["schema_version"] != SCHEMA_VERSION:
        raise ProvenanceError(f"{where}: schema version {reference['schema_version']} is not "
                              f"the supported {SCHEMA_VERSION}")
