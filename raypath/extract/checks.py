"""Checks a run makes before Ray starts or an encoder is built: each bad input costs seconds, and
the error names it (exit 2 through the CLI)."""

import contextlib
from collections.abc import Collection, Mapping
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs

from raypath.encoders.registry import get_card
from raypath.extract.config import ExtractConfig
from raypath.paths import is_remote, temporary_name
from raypath.store import FeatureStore

SHOWN = 5  # examples named in an error


class MissingSlidesError(FileNotFoundError):
    """Manifest rows whose slide file does not exist."""


def check_encoder_names(config: ExtractConfig, *, known: Collection[str] = ()) -> None:
    """Every encoder is a registered card (or one of `known`, e.g. factories a benchmark passes)."""
    for spec in config.encoders:
        if spec.name not in known:
            get_card(spec.name)  # UnknownEncoderError (a ValueError) listing the known names


def check_writable(output: str, *, stores: Mapping[str, FeatureStore]) -> None:
    """The output root, and every store directory that already exists, accept a new file."""
    directories = [output, *(store.directory for store in stores.values())]
    for index, directory in enumerate(directories):
        filesystem, inner = (pafs.FileSystem.from_uri(directory) if is_remote(directory)
                             else (pafs.LocalFileSystem(), str(Path(directory).resolve())))
        if index and filesystem.get_file_info(inner).type != pafs.FileType.Directory:
            continue
        probe = f"{inner}/{temporary_name('write-probe')}"  # ownerless: swept if a kill leaves it
        try:
            filesystem.create_dir(inner, recursive=True)
            with filesystem.open_output_stream(probe) as sink:
                sink.write(b"")
        except OSError as exc:
            raise PermissionError(f"output {directory} is not writable: {exc.strerror or exc}") from None
        finally:
            with contextlib.suppress(OSError):
                filesystem.delete_file(probe)


def _exists(path: str) -> bool:
    return is_remote(path) or Path(path).is_file()


def check_slide_files(manifest: pd.DataFrame, *, slide_ids: Collection[str], source: str) -> None:
    """Every slide still to extract has a file (object-store paths are left to the readers)."""
    wanted = set(slide_ids)
    missing = [(line, row["slide_id"], row["path"])
               for line, row in enumerate(manifest.to_dict("records"), start=2)
               if row["slide_id"] in wanted and not _exists(row["path"])]
    if missing:
        shown = "; ".join(f"line {line} {slide_id!r}: {path}" for line, slide_id, path in missing[:SHOWN])
        more = f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
        raise MissingSlidesError(f"{source}: {len(missing)} of {len(wanted)} slides to extract have no "
                                 f"file, e.g. {shown}{more}")
