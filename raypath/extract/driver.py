"""The driver side of one pipeline pass: counts results, assembles slides, hands complete ones to
the writer, and records each slide's outcome the moment it has one (releasing its claim)."""

import logging
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import replace

import numpy as np

from raypath.extract import rows
from raypath.extract.assemble import Assembler, encoded_counts
from raypath.extract.failures import SlideRecord
from raypath.extract.plan import Plan
from raypath.extract.progress import Progress
from raypath.extract.summary import RunSummary
from raypath.extract.write import SlideWriter

log = logging.getLogger(__name__)


class Driver:
    """Consumes result batches: counts, assembles slides, hands complete ones to the writer."""

    def __init__(self, plan: Plan, *, needs, dims, summary: RunSummary, writer: SlideWriter,
                 settled: Callable[[str], None]) -> None:
        self.plan, self.summary, self.writer, self.settled = plan, summary, writer, settled
        self.assembler = Assembler(needs=needs, dims=dims,
                                   paths={slide_id: slide["path"] for slide_id, slide in plan.slides.items()})
        self.progress = Progress(total=len(plan.tasks))
        self.pending: dict[Future, SlideRecord] = {}  # complete slides being written
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
        for record, buffer in self.assembler.add(batch):
            if buffer is not None:
                self.pending[self.writer.submit(buffer)] = record
            else:
                self._record(record)
        self._collect(block=False)

    def _collect(self, *, block: bool) -> None:
        while self.pending:
            finished, _ = wait(list(self.pending), timeout=None if block else 0, return_when=FIRST_COMPLETED)
            if not finished:
                return
            for future in finished:
                record = self.pending.pop(future)
                error = future.exception()
                if error is not None:
                    log.error("writing %s failed: %s", record.slide_id, error)
                    record = replace(record, status="failed", stage="write",
                                     reason=f"{type(error).__name__}: {error}")
                self._record(record)

    def _record(self, record: SlideRecord) -> None:
        self.results[record.slide_id] = record
        self.progress.add_slide(record.status)
        self.settled(record.slide_id)

    def abort(self, reason: str) -> None:
        """Slides without a result when the pipeline broke are failed, never silently missing."""
        for task in self.plan.tasks:
            slide_id = task["slide_id"]
            if slide_id in self.results or slide_id in self.pending_ids():
                continue
            buffer = self.assembler.buffers.get(slide_id)
            arrived = f" ({int(buffer.filled.sum())}/{buffer.n_tiles} tiles arrived)" if buffer else ""
            why = reason + arrived
            self._record(SlideRecord(slide_id=slide_id, path=self.plan.slides[slide_id]["path"],
                                     status="failed", stage="read", reason=why))

    def pending_ids(self) -> set[str]:
        return {record.slide_id for record in self.pending.values()}

    def drain(self) -> None:
        self._collect(block=True)
        self.writer.close()
        self.abort("no result reached the driver")
        self.progress.close()
        self.summary.seconds += time.perf_counter() - self.started

    def records(self) -> list[SlideRecord]:
        return [self.results[t["slide_id"]] for t in self.plan.tasks if t["slide_id"] in self.results]
