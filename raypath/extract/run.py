"""The extraction job on the driver: check, claim, stream the pipeline, write, report.

Exit status is non-zero when any slide failed; everything else in the cohort still completes.
Several runs may share one output (`coordination`): each slide is computed by one of them.
"""

import datetime
import logging
import uuid
from collections.abc import Callable, Mapping

import pandas as pd
import ray

from raypath.cluster import connect
from raypath.cohort import load_manifest
from raypath.extract import rows
from raypath.extract.checks import check_encoder_names, check_slide_files, check_writable
from raypath.extract.config import ExtractConfig
from raypath.extract.coordination import Coordination, default_claims_dir
from raypath.extract.driver import Driver
from raypath.extract.encoders import EncoderFactory, EncoderInfo, describe_encoders
from raypath.extract.failures import RecordsError, RunRecords, SlideRecord
from raypath.extract.pipeline import build_dataset, check_resources, data_context, qc_dir
from raypath.extract.plan import Plan, check_slide_ids, plan_slides
from raypath.extract.references import slide_references
from raypath.extract.summary import RunSummary
from raypath.extract.write import SlideWriter
from raypath.store import FeatureStore

log = logging.getLogger(__name__)


def new_run_id() -> str:
    return f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def run_extraction(
    config: ExtractConfig, *, factories: Mapping[str, EncoderFactory] | None = None,
) -> RunSummary:
    """Extract features for every slide of the manifest still lacking them; see the module doc.

    Every input is checked before Ray starts or an encoder is built. Slides another live run on the
    same output holds are waited for, never computed twice; what that run leaves unfinished is
    computed here. Raises RecordsError (after logging the summary) when the run records cannot be
    written, e.g. on a full disk; the features written stay.
    """
    if config.manifest is None or config.output is None:
        raise ValueError("extract needs `manifest` and `output` (config keys or --manifest/--out)")
    check_encoder_names(config, known=factories or {})
    manifest = load_manifest(config.manifest, check_files=False)
    tiling_hash = config.tiling.cache_key()
    stores = {spec.name: FeatureStore(config.output, encoder=spec.name, tiling_hash=tiling_hash)
              for spec in config.encoders}
    check_slide_ids(manifest, stores=stores, source=str(config.manifest))
    check_writable(config.output, stores=stores)
    slide_references(config)  # grid: reference: the registration table is readable and complete in columns
    run_id = config.run_id or new_run_id()
    claims_dir = default_claims_dir(config.output, config.claims_dir)
    with Coordination(claims_dir=claims_dir, run_id=run_id, lease_s=config.claim_lease_s) as coordination:
        coordination.clear_stale(stores=stores, output=config.output)
        plan = plan_slides(manifest, stores=stores)
        check_slide_files(manifest, slide_ids=[t["slide_id"] for t in plan.tasks],
                          source=str(config.manifest))
        # Built before any slide is read: a finished file only counts as done if the same weights wrote it.
        encoders = describe_encoders(config, factories=factories)
        for info in encoders:
            stores[info.name].check_compatible(info.metadata)
        summary = RunSummary(run_id=run_id, output=config.output, slides=plan.total,
                             already_done=len(plan.finished), encoded={s.name: 0 for s in config.encoders},
                             qc_dir=qc_dir(config) if config.qc_pictures else "")
        records = _run_claimed(plan, manifest=manifest, config=config, encoders=encoders, stores=stores,
                               summary=summary, coordination=coordination)
        _finish(summary, records)
        log.info("\n%s", summary.text())
        _write_records(records, config=config, stores=stores, summary=summary, coordination=coordination)
    return summary


def _run_claimed(
    plan: Plan, *, manifest: pd.DataFrame, config: ExtractConfig, encoders: list[EncoderInfo],
    stores: Mapping[str, FeatureStore], summary: RunSummary, coordination: Coordination,
) -> list[SlideRecord]:
    """Compute what this run could claim; wait for what other runs hold, then take what they left."""
    records: dict[str, SlideRecord] = {}
    while True:
        mine, elsewhere, finished = coordination.claim(plan, stores=stores)
        summary.finished_elsewhere += len(finished)
        if mine.tasks:
            connect(config.ray_address, settings=config.ray)
            for record in _execute(mine, config=config, encoders=encoders, stores=stores, summary=summary,
                                   owner=coordination.token,
                                   settled=lambda slide_id: coordination.release(slide_id, stores=stores)):
                records[record.slide_id] = record
        if not elsewhere:
            return list(records.values())
        coordination.wait(elsewhere, stores=stores)
        waited = {slide_id for slides in elsewhere.values() for slide_id in slides}
        plan = plan_slides(manifest[manifest["slide_id"].astype(str).isin(waited)], stores=stores)
        summary.finished_elsewhere += len(plan.finished)


def _write_records(
    records: list[SlideRecord], *, config: ExtractConfig, stores: Mapping[str, FeatureStore],
    summary: RunSummary, coordination: Coordination,
) -> None:
    """failures.csv lists the slides still lacking a file when it is written (under the claims lock)."""
    with coordination.records_lock():
        outstanding = [r for r in records if r.status != "done"
                       and not all(store.has(r.slide_id) for store in stores.values())]
        try:
            RunRecords(output=config.output, run_id=summary.run_id, owner=coordination.token).write(
                records, outstanding=outstanding, summary=summary.to_dict())
        except RecordsError as exc:
            log.error("run %s: the features above are written, but its records are not: %s",
                      summary.run_id, exc.strerror)
            raise


def _execute(
    plan: Plan, *, config: ExtractConfig, encoders: list[EncoderInfo], stores: Mapping[str, FeatureStore],
    summary: RunSummary, owner: str, settled: Callable[[str], None],
) -> list[SlideRecord]:
    """One pass of the pipeline over the slides (and encoders) `plan` holds for this run."""
    needs = {t["slide_id"]: [e.name for e in encoders if t[rows.need_column(e.name)]] for t in plan.tasks}
    active = [e for e in encoders if any(e.name in n for n in needs.values())]
    writer = SlideWriter(stores=stores, metadata={e.name: e.metadata for e in encoders},
                         identities=plan.slides, tile_px=config.tiling.tile_px,
                         threads=config.write_threads, owner=owner)
    driver = Driver(plan, needs=needs, dims={e.name: e.dim for e in encoders}, summary=summary,
                    writer=writer, settled=settled)
    check_resources(config, stages=len(active), available=ray.cluster_resources())
    with data_context(config):
        dataset = build_dataset(plan.tasks, config=config, encoders=active)
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
                driver.absorb(batch)
        except Exception as exc:  # the pipeline itself broke (not one slide): report, do not hide
            log.exception("extraction pipeline failed")
            driver.abort(f"pipeline error: {type(exc).__name__}: {exc}")
        finally:
            driver.drain()
    return driver.records()


def _finish(summary: RunSummary, records: list[SlideRecord]) -> None:
    for record in records:
        setattr(summary, record.status, getattr(summary, record.status) + 1)
    summary.failed_slides = [r.slide_id for r in records if r.status == "failed"]
