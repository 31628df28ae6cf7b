"""Reference-grid tiling (`tiling.grid: reference`): for each slide, the scan whose grid it is tiled on.

A moving scan maps to its specimen's reference scan and its transform from registration.parquet; a
reference scan maps to None (tiled on its own grid, as per scan). A slide the table does not cover
is absent: its reading task fails it (stage tiling) instead of silently tiling it on its own grid
under the reference-grid store, and failures.csv names it.
"""

import logging

from raypath.cohort import load_manifest
from raypath.extract.config import ExtractConfig
from raypath.slides.registration import read_registration
from raypath.slides.registration.grid import ReferenceScan, scan_references

log = logging.getLogger(__name__)
UNREGISTERED = ("not in registration.parquet: tiling.grid reference tiles a scan on its reference's grid "
                "through its transform (register its specimen, then extract again)")


def slide_references(config: ExtractConfig) -> dict[str, ReferenceScan | None]:
    """slide_id -> its ReferenceScan (moving scans) or None (reference scans); {} on per-scan grids.
    Reads and checks the registration table: a missing file or column is an error here, before Ray."""
    if config.tiling.grid != "reference" or config.registration is None:
        return {}
    manifest = load_manifest(config.manifest, check_files=False)
    references = scan_references(manifest, read_registration(config.registration))
    missing = sorted(set(manifest["slide_id"].astype(str)) - set(references))
    if missing:
        log.warning("%d slides are not in %s and will fail (grid: reference), e.g. %s", len(missing),
                    config.registration, missing[:5])
    return references
