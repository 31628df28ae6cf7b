"""The extraction job on the driver: plan, stream the pipeline, assemble and write, report.

Exit status is non-zero when any slide failed; everything else in the cohort still completes.
"""

import datetime
import logging
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait

import numpy as np
import ray

from raypath.cluster import connect
from raypath.cohort import load_manifest
from raypath.extract import rows
from raypath.extract.assemble import Assembler, SlideEvent, encoded_counts
from raypath.extract.config import ExtractConfig
from raypath.extract.encoders import EncoderFactory, EncoderInfo, describe_encoders
from raypath.extract.failures import RunRecords, SlideRecord
from raypath.extract.pipeline import build_dataset, check_resources, data_context
from raypath.extract.plan import Plan, check_slide_ids, plan_slides
from raypath.extract.progress import Progress
from raypath.extract.summary import RunSummary
from raypath.extract.write import SlideWriter
from raypath.store import FeatureStore

log = logging.getLogger(__name__)


def new_run_id() -> str:
    return f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def run_extraction(
    config: ExtractConfig, *, factories: Mapping[str, EncoderFactory] | None = None,
) -> RunSummary:
    """Extract features for every slide of the manifest still lacking them; see the module doc."""
    if config.manifest is None or config.output is None:
        raise ValueError("extract needs `manifest` and `output` (config keys or --manifest/--out)")
    manifest = load_manifest(config.manifest, check_files=False)
    tiling_hash = config.tiling.cache_key()
    stores = {spec.name: FeatureStore(config.output, encoder=spec.name, tiling_hash=tiling_hash)
              for spec in config.encoders}
    check_slide_ids(manifest, stores=stores, source=str(config.manifest))
    for store in stores.values():
        if removed := store.clear_temporaries():
            log.info("removed %d stale temporary files under %s", removed, store.directory)
    # Built before planning: a finished file only counts as done if the same weights wrote it.
    encoders = describe_encoders(config, factories=factories)
    for info in encoders:
        stores[info.name].check_compatible(info.metadata)
    plan = plan_slides(manifest, stores=stores)
    summary = RunSummary(run_id=config.run_id or new_run_id(), output=config.output, slides=plan.total,
                         already_done=len(plan.finished), encoded={s.name: 0 for s in config.encoders})
    records: list[SlideRecord] = []
    if plan.tasks:
        connect(config.ray_address)
        records = _execute(plan, config=config, encoders=encoders, stores=stores, summary=summary)
    _finish(summary, records)
    RunRecords(output=config.output, run_id=summary.run_id).write(records, summary.to_dict())
    log.info("\n%s", summary.text())
    return summary


def _execute(
    plan: Plan, *, config: ExtractConfig, encoders: list[EncoderInfo], stores: Mapping[str, FeatureStore],
    summary: RunSummary,
) -> list[SlideRecord]:
    needs = {t["slide_id"]: [e.name for e in encoders if t[rows.need_column(e.name)]] for t in plan.tasks}
    active = [e for e in encoders if any(e.name in n for n in needs.values())]
    driver = _Driver(plan, needs=needs, dims={e.name: e.dim for e in encoders}, summary=summary,
                     writer=SlideWriter(stores=stores, metadata={e.name: e.metadata for e in encoders},
                                        identities=plan.slides, tile_px=config.tiling.tile_px,
                                        threads=config.write_threads))
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


class _Driver:
    """Consumes result batches: counts, assembles slides, hands complete ones to the writer."""

    def __init__(self, plan: Plan, *, needs, dims, summary: RunSummary, writer: SlideWriter) -> None:
        self.plan, self.summary, self.writer = plan, summary, writer
        self.assembler = Assembler(needs=needs, dims=dims)
        self.progress = Progress(total=len(plan.tasks))
        self.pending: dict[Future, SlideEvent] = {}
        self.results: dict[str, SlideRecord] = {}
        self.started = time.perf_counter()

    def absorb(self, batch: dict[str, np.ndarray]) -> None:
        tiles = int(np.count_nonzero(batch["status"] == rows.TILE))
        if not self.summary.startup_s:
            self.summary.startup_s = time.perf_counter() - self.started
            self.summary.startup_tiles = tiles
        for name, count in encoded_counts(batch, self.summary.encoded).items():
            self.summary.encoded[name] += count
        self.summary.tiles += tiles
        self.progress.add_tiles(tiles)
        for event in self.assembler.add(batch):
            if event.status == "done":
                self.pending[self.writer.submit(event.buffer)] = event
            else:
                self._record(event, status=event.status, stage=event.stage, reason=event.reason)
        self._collect(block=False)

    def _collect(self, *, block: bool) -> None:
        while self.pending:
            finished, _ = wait(list(self.pending), timeout=None if block else 0, return_when=FIRST_COMPLETED)
            if not finished:
                return
            for future in finished:
                event = self.pending.pop(future)
                error = future.exception()
                if error is None:
                    self._record(event, status="done")
                else:
                    log.error("writing %s failed: %s", event.slide_id, error)
                    reason = f"{type(error).__name__}: {error}"
                    self._record(event, status="failed", stage="write", reason=reason)

    def _record(self, event: SlideEvent, *, status: str, stage: str = "", reason: str = "") -> None:
        tiles = event.buffer.n_tiles if event.buffer is not None else 0
        self.results[event.slide_id] = SlideRecord(
            slide_id=event.slide_id, path=self.plan.slides[event.slide_id]["path"], status=status,
            stage=stage, reason=reason, attempts=event.attempts, node_id=event.node_id, node_ip=event.node_ip,
            tiles=tiles, seconds=round(event.read_s, 3))
        self.progress.add_slide(status)

    def abort(self, reason: str) -> None:
        """Slides without a result when the pipeline broke are failed, never silently missing."""
        for task in self.plan.tasks:
            slide_id = task["slide_id"]
            if slide_id in self.results or slide_id in self.pending_ids():
                continue
            buffer = self.assembler.buffers.get(slide_id)
            arrived = f" ({int(buffer.filled.sum())}/{buffer.n_tiles} tiles arrived)" if buffer else ""
            why = reason + arrived
            self._record(SlideEvent(slide_id=slide_id, status="failed", attempts=0),
                         status="failed", stage="read", reason=why)

    def pending_ids(self) -> set[str]:
        return {event.slide_id for event in self.pending.values()}

    def drain(self) -> None:
        self._collect(block=True)
        self.writer.close()
        self.abort("no result reached the driver")
        self.progress.close()
        self.summary.seconds = time.perf_counter() - self.started

    def records(self) -> list[SlideRecord]:
        return [self.results[t["slide_id"]] for t in self.plan.tasks if t["slide_id"] in self.results]


def _finish(summary: RunSummary, records: list[SlideRecord]) -> None:
    for record in records:
        setattr(summary, record.status, getattr(summary, record.status) + 1)
    summary.failed_slides = [r.slide_id for r in records if r.status == "failed"]
