"""The registration job on the driver: check, claim, run one Ray task per specimen, store, assemble.

Every input is checked before Ray starts. Specimens with a stored result for these settings and
inputs are skipped, so a killed run resumes where it stopped; the others are claimed (extraction's
claims, owners and heartbeat: several runs on one output split the specimens and never compute one
twice), registered as Ray tasks spread over the cluster, and each result is stored atomically the
moment it reaches the driver. registration.parquet is then assembled from every stored result;
specimens that could not be registered are left out of it and named in failures.csv (exit 1).
"""

import dataclasses
import logging
import time
from pathlib import Path

import pandas as pd

from raypath.cluster import connect
from raypath.cohort import load_manifest
from raypath.extract.checks import check_writable
from raypath.extract.claims import StoreKey
from raypath.extract.coordination import CLAIMS_DIR, POLL_S, Coordination, clear_record_temporaries
from raypath.extract.failures import RecordsError
from raypath.extract.run import new_run_id
from raypath.register.plan import SpecimenTask, plan_specimens
from raypath.register.progress import SpecimenProgress
from raypath.register.records import SpecimenRecord, write_records
from raypath.register.results import SpecimenResults
from raypath.register.summary import RegisterSummary
from raypath.register.task import Outcome, run_tasks
from raypath.slides.registration.config import RegisterConfig
from raypath.slides.registration.store import write_registration

log = logging.getLogger(__name__)
CLAIM_KIND = "registration"


def run_registration(config: RegisterConfig) -> RegisterSummary:
    """Register every specimen of the manifest still lacking a result; see the module doc. Raises
    RecordsError (after writing the table and logging the summary) when the run records cannot be written."""
    if config.manifest is None or config.out is None:
        raise ValueError("register needs `manifest` and `out` (config keys or --manifest/--out)")
    manifest = load_manifest(config.manifest)
    tasks = plan_specimens(manifest, reference_scanner=config.reference_scanner)
    work = config.work_dir()
    check_writable(str(work), stores={})
    results = SpecimenResults(work, settings_hash=config.settings_hash())
    summary = RegisterSummary(run_id=config.run_id or new_run_id(), output=str(config.out),
                              specimens=len(tasks), scans=len(manifest))
    claims_dir = Path(config.claims_dir).expanduser() if config.claims_dir else work / CLAIMS_DIR
    coordination = Coordination(claims_dir=claims_dir, run_id=summary.run_id, lease_s=config.claim_lease_s)
    with coordination:
        coordination.clear_stale(stores={}, output=str(work))
        clear_record_temporaries(results.directory, is_gone=coordination.abandoned)  # result files
        todo = [task for task in tasks if not results.has(task)]
        summary.already_done = len(tasks) - len(todo)
        log.info("%d specimens: %d to register, %d already registered with these settings",
                 len(tasks), len(todo), summary.already_done)
        started = time.perf_counter()
        records = _run_claimed(todo, config=config, results=results, coordination=coordination,
                               summary=summary)
        summary.seconds = time.perf_counter() - started
        with coordination.records_lock():
            table = results.read(tasks)
            write_registration(table, config.out)
            _finish(summary, records, table=table, results=results, tasks=tasks)
            log.info("\n%s", summary.text())
            _write_records(work, records, summary=summary, results=results, tasks=tasks,
                           owner=coordination.token)
    return summary


def _run_claimed(todo: list[SpecimenTask], *, config: RegisterConfig, results: SpecimenResults,
                 coordination: Coordination, summary: RegisterSummary) -> dict[str, SpecimenRecord]:
    """Register what this run could claim; wait for what other runs hold, then take what they left."""
    key: StoreKey = (CLAIM_KIND, config.settings_hash())
    records: dict[str, SpecimenRecord] = {}
    while todo:
        mine, others = _claim(todo, key=key, results=results, coordination=coordination, summary=summary)
        if mine:
            records.update(_execute(mine, config=config, results=results, coordination=coordination, key=key))
        if not others:
            break
        waited = [t for t in todo if (key, t.specimen_id) in others]
        _wait(coordination, waited, key=key, results=results, holders=others)
        summary.finished_elsewhere += sum(results.has(t) for t in waited)
        todo = [t for t in waited if not results.has(t)]
    return records


def _claim(todo: list[SpecimenTask], *, key: StoreKey, results: SpecimenResults, coordination: Coordination,
           summary: RegisterSummary) -> tuple[list[SpecimenTask], dict]:
    """(what this run now holds and must register, {(key, specimen): holder} of other live runs).
    A specimen stored by another run between planning and claiming is released, not registered again."""
    if coordination.book is None:
        return todo, {}
    others = coordination.book.claim([(key, t.specimen_id) for t in todo])
    mine = [t for t in todo if (key, t.specimen_id) not in others]
    finished = [t for t in mine if results.has(t)]
    coordination.book.release([(key, t.specimen_id) for t in finished])
    summary.finished_elsewhere += len(finished)
    return [t for t in mine if t not in finished], others


def _wait(coordination: Coordination, waited: list[SpecimenTask], *, key: StoreKey, results: SpecimenResults,
          holders: dict) -> None:
    """Block until every specimen another live run holds has a result, is released, or its holder is gone."""
    log.info("waiting for %d specimens other runs are registering", len(waited))
    pending = {t.specimen_id: (t, holders[(key, t.specimen_id)]) for t in waited}
    while pending:
        time.sleep(POLL_S)
        pending = {s: (t, holder) for s, (t, holder) in pending.items()
                   if not results.has(t) and coordination.book.holder(key, s) == holder
                   and not coordination.registry.is_gone(holder)}


def _execute(tasks: list[SpecimenTask], *, config: RegisterConfig, results: SpecimenResults,
             coordination: Coordination, key: StoreKey) -> dict[str, SpecimenRecord]:
    """Register `tasks` on the cluster; each result is stored and its claim released as it arrives."""
    connect(config.ray_address, settings=config.ray)
    records, progress = {}, SpecimenProgress(total=len(tasks))
    for task, outcome in run_tasks(tasks, config):
        record = _store(outcome, task, results=results, owner=coordination.token)
        records[task.specimen_id] = record
        if coordination.book is not None:
            coordination.book.release([(key, task.specimen_id)])
        progress.add(record.status)
    progress.close()
    return records


def _store(outcome: Outcome, task: SpecimenTask, *, results: SpecimenResults, owner: str) -> SpecimenRecord:
    """The specimen's result written atomically (a failed write fails the specimen, not the run)."""
    record, rows = outcome
    if record.status == "done":
        try:
            results.write(task, rows, owner=owner)
        except OSError as exc:
            record = dataclasses.replace(record, status="failed", stage="write",
                                         reason=f"{type(exc).__name__}: {exc}")
    if record.status != "done":
        log.error("specimen %s not registered (%s%s): %s", task.specimen_id, record.stage,
                  f", slide {record.slide_id}" if record.slide_id else "", record.reason)
    return record


def _finish(summary: RegisterSummary, records: dict[str, SpecimenRecord], *, table: pd.DataFrame,
            results: SpecimenResults, tasks: list[SpecimenTask]) -> None:
    summary.done = sum(r.status == "done" for r in records.values())
    summary.failed_specimens = [t.specimen_id for t in tasks if not results.has(t)]
    summary.failed = len(summary.failed_specimens)
    summary.nodes = len({r.node_id for r in records.values() if r.node_id})
    weak = table[table["weak"].astype(bool)] if "weak" in table.columns else table.iloc[:0]
    summary.weak_scans, summary.weak_slides = len(weak), weak["slide_id"].astype(str).tolist()
    for row in weak.itertuples():
        log.warning("weak registration of %s onto %s (score %.2f, residual %.2f um, %d regions agree)",
                    row.slide_id, row.reference_slide_id, row.score, row.residual_um, row.regions)


def _write_records(work: Path, records: dict[str, SpecimenRecord], *, summary: RegisterSummary,
                   results: SpecimenResults, tasks: list[SpecimenTask], owner: str) -> None:
    """failures.csv lists the specimens still lacking a result when it is written."""
    left = SpecimenRecord(specimen_id="", status="failed", stage="claim", reason="held by a run that left it")
    outstanding = [records.get(t.specimen_id) or dataclasses.replace(left, specimen_id=t.specimen_id)
                   for t in tasks if not results.has(t)]
    try:
        write_records(work, run_id=summary.run_id, records=list(records.values()), outstanding=outstanding,
                      summary=summary.to_dict(), owner=owner)
    except RecordsError as exc:
        log.error("run %s: registration.parquet is written, but its records are not: %s", summary.run_id,
                  exc.strerror)
        raise
