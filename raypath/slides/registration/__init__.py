"""Registration of the scans of one specimen onto a reference scan, and registered tile pairs.

`Transform` maps level-0 points of a scan onto its specimen's reference scan;
`estimate_transform` finds it from thumbnails; `register_manifest` / `write_registration` /
`load_registration` handle registration.parquet; `tile_pairs` turns two scans' tile grids and
transforms into matched tile indices.
"""

from raypath.slides.registration.estimate import (
    ScanImage,
    estimate_rigid,
    estimate_transform,
    optical_density,
)
from raypath.slides.registration.pairs import tile_pairs
from raypath.slides.registration.store import (
    COLUMNS,
    RegistrationError,
    choose_references,
    load_registration,
    read_registration,
    register_manifest,
    registration_transforms,
    write_registration,
)
from raypath.slides.registration.transform import Transform

__all__ = [
    "COLUMNS",
    "RegistrationError",
    "ScanImage",
    "Transform",
    "choose_references",
    "estimate_rigid",
    "estimate_transform",
    "load_registration",
    "optical_density",
    "read_registration",
    "register_manifest",
    "registration_transforms",
    "tile_pairs",
    "working_mpp",
    "write_registration",
]
