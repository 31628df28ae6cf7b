"""Write a planned synthetic cohort: slides in parallel, then manifest, labels and truth tables.

Every file appears atomically (temporary name, then rename), so an interrupted run leaves no
half-written slide, and a rerun with the same config only writes what is missing.
"""

import json
import logging
import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import pandas as pd

from raypath.cohort.declaration import CohortDeclaration, write_declaration
from raypath.logs import ProgressBar
from raypath.publish import publish_file, write_text
from raypath.slides.synth.config import SynthConfig
from raypath.slides.synth.plan import ScanPlan, plan_cohort, true_transform
from raypath.slides.synth.render import render_block
from raypath.slides.synth.tiff import write_svs

log = logging.getLogger(__name__)
CONFIG_FILE = "synth.json"
# Fields that do not change a single output byte.
_RUNTIME_FIELDS = {"workers"}


class SynthError(RuntimeError):
    """The output directory holds a cohort written with a different config."""


def write_slide(scan: ScanPlan, slides_dir: Path, *, stripe_px: int) -> Path:
    """Render and write one slide to `slides_dir/<slide_id>.svs` atomically; returns its path."""
    target = slides_dir / f"{scan.slide_id}.svs"

    def render(x0: int, y0: int, width: int, height: int):
        return render_block(
            tissue=scan.specimen.tissue,
            profile=scan.scanner,
            geometry=scan.geometry,
            x0=x0,
            y0=y0,
            width=width,
            height=height,
            noise_seed=scan.noise_seed,
        )

    def write(temporary: Path) -> None:
        write_svs(temporary, render=render, dimensions=scan.geometry.dimensions, mpp=scan.geometry.mpp,
                  quality=scan.jpeg_quality, stripe_px=stripe_px)

    publish_file(target, write)
    return target


def _atomic_csv(frame: pd.DataFrame, path: Path) -> None:
    publish_file(path, lambda temporary: frame.to_csv(temporary, index=False))


def _check_config(config: SynthConfig, out: Path) -> None:
    """Refuse to mix cohorts: a rerun must use the config that wrote the existing files."""
    wanted = config.model_dump(mode="json", exclude=_RUNTIME_FIELDS)
    recorded = out / CONFIG_FILE
    if recorded.exists():
        previous = json.loads(recorded.read_text())
        if previous != wanted:
            changed = sorted(k for k in wanted.keys() | previous.keys() if wanted.get(k) != previous.get(k))
            raise SynthError(
                f"{recorded}: cohort was written with a different config (fields {changed}); "
                "use a new --out directory"
            )
        return
    write_text(recorded, json.dumps(wanted, indent=2, sort_keys=True))


def _write_slides(scans: list[ScanPlan], slides_dir: Path, config: SynthConfig) -> None:
    todo = [scan for scan in scans if not (slides_dir / f"{scan.slide_id}.svs").exists()]
    log.info(
        "%d slides planned, %d already written, writing %d", len(scans), len(scans) - len(todo), len(todo)
    )
    workers = min(config.workers or os.cpu_count() or 1, max(len(todo), 1))
    progress = ProgressBar(total=len(todo), desc="synth slides", unit="slide", disable=not todo)
    if workers == 1:
        for scan in todo:
            write_slide(scan, slides_dir, stripe_px=config.stripe_px)
            progress.update()
    else:
        context = multiprocessing.get_context("spawn")  # safe beside threads (Ray, codecs) in the parent
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [
                pool.submit(write_slide, scan, slides_dir, stripe_px=config.stripe_px) for scan in todo
            ]
            for future in as_completed(futures):
                future.result()
                progress.update()
    progress.close()


def _references(scans: Iterable[ScanPlan]) -> dict[str, ScanPlan]:
    """Reference scan per specimen: the scan whose scanner name sorts first (as `raypath register`)."""
    references: dict[str, ScanPlan] = {}
    for scan in sorted(scans, key=lambda s: s.scanner.name):
        references.setdefault(scan.specimen.specimen_id, scan)
    return references


def _tables(scans: list[ScanPlan]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    references = _references(scans)
    manifest, labels, truth = [], {}, []
    for scan in scans:
        spec, geometry = scan.specimen, scan.geometry
        manifest.append(
            {
                "slide_id": scan.slide_id,
                "path": f"slides/{scan.slide_id}.svs",
                "patient_id": spec.patient_id,
                "specimen_id": spec.specimen_id,
                "scanner": scan.scanner.name,
                "center": scan.center,
            }
        )
        labels[spec.patient_id] = {
            "patient_id": spec.patient_id,
            "label": spec.label,
            "time": round(spec.time, 4),
            "event": spec.event,
            "split": spec.split,
        }
        reference = references[spec.specimen_id]
        transform = true_transform(scan, reference)
        truth.append(
            {
                "slide_id": scan.slide_id,
                "specimen_id": spec.specimen_id,
                "reference_slide_id": reference.slide_id,
                "scanner": scan.scanner.name,
                "mpp": geometry.mpp,
                "width": geometry.dimensions[0],
                "height": geometry.dimensions[1],
                "rotation_deg": transform.rotation_deg,
                "tx": transform.tx,
                "ty": transform.ty,
                "scale": transform.scale,
                "glass_rotation_deg": geometry.rotation_deg,
                "glass_shift_x_um": geometry.shift_um[0],
                "glass_shift_y_um": geometry.shift_um[1],
                "label": spec.label,
                "grade": spec.tissue.grade,
                "tumour_burden": spec.tumour_burden,
                "time": spec.time,
                "event": spec.event,
                "split": spec.split,
            }
        )
    return pd.DataFrame(manifest), pd.DataFrame(list(labels.values())), pd.DataFrame(truth)


def write_cohort(config: SynthConfig, out: Path) -> list[ScanPlan]:
    """Write DIR/slides/*.svs, manifest.csv, labels.csv (with each patient's split), truth.csv,
    cohort.yaml (the held-out scanners every command honours) and synth.json; returns the plan."""
    out = Path(out)
    slides_dir = out / "slides"
    slides_dir.mkdir(parents=True, exist_ok=True)
    _check_config(config, out)
    scans = plan_cohort(config)
    _write_slides(scans, slides_dir, config)
    manifest, labels, truth = _tables(scans)
    _atomic_csv(manifest, out / "manifest.csv")
    _atomic_csv(labels, out / "labels.csv")
    _atomic_csv(truth, out / "truth.csv")
    write_declaration(CohortDeclaration(held_out_scanners=config.held_out_scanners), out)
    log.info("cohort of %d slides (%d specimens) in %s", len(scans), labels.shape[0], out)
    return scans
