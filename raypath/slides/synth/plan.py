"""Plan a synthetic cohort: biology per specimen, geometry per scan, labels, survival, split.

Planning is cheap and fully determined by the config, so every worker re-derives the same plan
and the slides can be written in any order, in parallel, or resumed.
"""

import dataclasses
import zlib
from dataclasses import dataclass

import numpy as np

from raypath.slides.registration.transform import Transform
from raypath.slides.synth.config import SynthConfig
from raypath.slides.synth.render import ScanGeometry
from raypath.slides.synth.scanners import ScannerProfile, get_profile, strengthened
from raypath.slides.synth.tissue import Blob, SpecimenTissue, tissue_field, tumour_field

_BURDEN_GRID_UM = 8.0


@dataclass(frozen=True)
class SpecimenPlan:
    """One specimen (one patient): its tissue and the ground truth derived from it."""

    specimen_id: str
    patient_id: str
    tissue: SpecimenTissue
    label: int
    tumour_burden: float
    time: float
    event: int
    split: str


@dataclass(frozen=True)
class ScanPlan:
    """One slide: a specimen seen by one scanner."""

    slide_id: str
    specimen: SpecimenPlan
    scanner: ScannerProfile
    center: str
    geometry: ScanGeometry
    jpeg_quality: int
    noise_seed: int


def _blobs(rng: np.random.Generator, field: tuple[float, float]) -> tuple[Blob, ...]:
    side = min(field)
    return tuple(
        Blob(
            cx=float(rng.uniform(0.3, 0.7) * field[0]),
            cy=float(rng.uniform(0.3, 0.7) * field[1]),
            rx=float(rng.uniform(0.15, 0.28) * side),
            ry=float(rng.uniform(0.1, 0.22) * side),
            angle=float(rng.uniform(0, np.pi)),
        )
        for _ in range(int(rng.integers(1, 4)))
    )


def _tumour_threshold(
    tissue: SpecimenTissue, field: tuple[float, float], burden: float
) -> tuple[float, float]:
    """Threshold that makes `burden` of the tissue area tumour, and the burden actually reached."""
    xs = np.arange(0, field[0], _BURDEN_GRID_UM)
    ys = np.arange(0, field[1], _BURDEN_GRID_UM)
    inside = tissue_field(tissue, xs, ys) > 0.5
    if burden <= 0 or not inside.any():
        return float("inf"), 0.0
    level = tumour_field(tissue, xs, ys)[inside]
    threshold = float(np.quantile(level, 1.0 - burden))
    return threshold, float(np.mean(level > threshold))


def _specimen(config: SynthConfig, index: int, label: int, split: str) -> SpecimenPlan:
    rng = np.random.default_rng([config.seed, index])
    grade = 0 if label == 0 else (label if config.classes > 2 else int(rng.integers(1, 4)))
    draft = SpecimenTissue(
        seed=int(rng.integers(2**31)),
        blobs=_blobs(rng, config.field_um),
        tumour_threshold=float("inf"),
        grade=grade,
        feature_um=0.18 * min(config.field_um),
        contrast=config.tumour_contrast,
    )
    threshold, burden = _tumour_threshold(draft, config.field_um,
                                          rng.uniform(*config.tumour_burden) if label else 0.0)
    tissue = dataclasses.replace(draft, tumour_threshold=threshold)
    hazard = config.base_hazard * np.exp(config.burden_effect * burden + config.grade_effect * grade)
    event_time, censor_time = rng.exponential(1.0 / hazard), rng.uniform(0, config.followup_months)
    return SpecimenPlan(
        specimen_id=f"S{index:04d}",
        patient_id=f"P{index:04d}",
        tissue=tissue,
        label=label,
        tumour_burden=burden,
        time=float(min(event_time, censor_time)),
        event=int(event_time <= censor_time),
        split=split,
    )


def _design(config: SynthConfig) -> list[tuple[int, str]]:
    """(label, split) per specimen: exactly round(positive_fraction * n) positives spread over the
    grades; round(test_fraction * n_label) of each label in test and round(val_fraction * n_label) in
    val (stratified), the rest in train, in seeded order."""
    rng = np.random.default_rng([config.seed, 2**20])
    positives = round(config.positive_fraction * config.specimens)
    labels = [0] * (config.specimens - positives) + [1 + i % (config.classes - 1) for i in range(positives)]
    design = []
    for label in sorted(set(labels)):
        count = labels.count(label)
        tests = round(config.test_fraction * count)
        vals = tests + round(config.val_fraction * count)
        design += [(label, "test" if i < tests else "val" if i < vals else "train") for i in range(count)]
    return [(int(design[i][0]), design[i][1]) for i in rng.permutation(len(design))]


def _scan(config: SynthConfig, specimen: SpecimenPlan, index: int, name: str) -> ScanPlan:
    profile = get_profile(name)
    rng = np.random.default_rng([config.seed, index, zlib.crc32(name.encode())])
    mpp = config.mpp.get(name, profile.mpp_40x * (2 if config.magnification == 20 else 1))
    geometry = ScanGeometry(
        mpp=mpp,
        field_um=config.field_um,
        rotation_deg=float(rng.uniform(-config.max_rotation_deg, config.max_rotation_deg)),
        shift_um=(
            float(rng.uniform(-1, 1) * config.max_shift_um),
            float(rng.uniform(-1, 1) * config.max_shift_um),
        ),
    )
    return ScanPlan(
        slide_id=f"{specimen.specimen_id}-{name}",
        specimen=specimen,
        scanner=strengthened(profile, config.scanner_strength),
        center=f"site-{config.scanners.index(name)}",
        geometry=geometry,
        jpeg_quality=config.jpeg_quality or profile.jpeg_quality,
        noise_seed=int(rng.integers(2**31)),
    )


def plan_cohort(config: SynthConfig) -> list[ScanPlan]:
    """Every slide of the cohort, sorted by slide id; specimens are shared between their scans."""
    scans = []
    for index, (label, split) in enumerate(_design(config)):
        specimen = _specimen(config, index, label, split)
        training = [name for name in config.scanners if name not in config.held_out_scanners]
        chosen = config.scanners if specimen.split == "test" else training
        confound = np.random.default_rng([config.seed, index, 2**21]).uniform() < config.confounding
        if specimen.split != "test" and confound:
            chosen = [training[label % len(training)]]
        scans += [_scan(config, specimen, index, name) for name in chosen]
    return sorted(scans, key=lambda scan: scan.slide_id)


def true_transform(scan: ScanPlan, reference: ScanPlan) -> Transform:
    """The exact level-0 transform from `scan` to `reference` (see `render` for the geometry)."""
    a, r = scan.geometry, reference.geometry
    phi = r.rotation_deg - a.rotation_deg
    rotation = Transform(rotation_deg=phi).matrix
    centre = np.array(a.field_um) / 2
    offset = -rotation @ (centre + np.array(a.shift_um)) + centre + np.array(r.shift_um)
    return Transform(
        rotation_deg=phi, tx=float(offset[0] / r.mpp), ty=float(offset[1] / r.mpp), scale=a.mpp / r.mpp
    )
