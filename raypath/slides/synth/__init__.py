"""Synthetic multi-scanner cohorts: procedural H&E-like tissue, scanner models, pyramidal SVS files.

Same biology, different scanner: every specimen is one procedurally generated tissue, and each
scanner is a technical transform of it (stain colour in HED space, tone, blur, noise, JPEG
quality, pixel size and a small rotation/shift on the glass), so robustness can be measured
against a known truth. Modules: `noise` (coordinate-hashed noise), `tissue` (the biology),
`stain` (RGB <-> HED), `scanners` (profiles), `render` (tissue -> pixels), `tiff` (SVS writer),
`plan` (cohort design, truth) and `writer` (files on disk).
"""

from raypath.slides.synth.plan import ScanPlan, SpecimenPlan, plan_cohort, true_transform
from raypath.slides.synth.scanners import PROFILES, ScannerProfile, get_profile
from raypath.slides.synth.writer import SynthError, write_cohort, write_slide

__all__ = [
    "PROFILES",
    "ScanPlan",
    "ScannerProfile",
    "SpecimenPlan",
    "SynthError",
    "get_profile",
    "plan_cohort",
    "true_transform",
    "write_cohort",
    "write_slide",
]
