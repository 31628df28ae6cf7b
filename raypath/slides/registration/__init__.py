"""Registration of the scans of one specimen onto a reference scan, and registered tile pairs.

`Transform` maps level-0 points of a scan onto its specimen's reference scan;
`estimate_transform` finds it from thumbnails and `refine_transform` corrects it on tissue patches
read at a few microns per pixel; `register_specimen` does both for every scan of one specimen (the
unit of work of the `raypath register` job); `write_registration` / `load_registration` handle
registration.parquet; `tile_pairs` turns two scans' tile grids and transforms into matched tile
indices, and `map_grid` places a moving scan's tiles on its reference's grid.
"""

from raypath.slides.registration.estimate import (
    ScanImage,
    estimate_rigid,
    estimate_transform,
    optical_density,
    working_mpp,
)
from raypath.slides.registration.pairs import tile_pairs
from raypath.slides.registration.refine import Refinement, RefineSettings, refine_transform
from raypath.slides.registration.specimen import Scan, SpecimenError, register_specimen
from raypath.slides.registration.store import (
    COLUMNS,
    RegistrationError,
    choose_references,
    load_registration,
    read_registration,
    registration_transforms,
    write_registration,
)
from raypath.slides.registration.transform import Transform

__all__ = [
    "COLUMNS",
    "RefineSettings",
    "Refinement",
    "RegistrationError",
    "Scan",
    "ScanImage",
    "SpecimenError",
    "Transform",
    "choose_references",
    "estimate_rigid",
    "estimate_transform",
    "load_registration",
    "optical_density",
    "read_registration",
    "refine_transform",
    "register_specimen",
    "registration_transforms",
    "tile_pairs",
    "working_mpp",
    "write_registration",
]
