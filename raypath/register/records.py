"""The run's records: per-specimen log (where, how long, outcome), failures manifest, summary.

`<work dir>/failures.csv` lists the specimens of the latest run that still lack a result when it
ends, each with the scan, stage and reason that stopped it; per-run copies, `specimens.csv` and
`summary.json` live in `<work dir>/_runs/<run_id>/`. Files are written atomically (`raypath.publish`).
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from raypath.extract.failures import RUNS_DIR, RecordsError, to_csv
from raypath.publish import write_text

FAILURE_COLUMNS = ("specimen_id", "slide_id", "stage", "reason", "attempts")


@dataclass(frozen=True)
class SpecimenRecord:
    """What happened to one specimen in this run; status is done or failed."""

    specimen_id: str
    status: str
    slide_id: str = ""
    stage: str = ""
    reason: str = ""
    attempts: int = 0
    node_id: str = ""
    node_ip: str = ""
    seconds: float = 0.0


def write_records(work_dir: Path, *, run_id: str, records: list[SpecimenRecord],
                  outstanding: list[SpecimenRecord], summary: dict[str, Any], owner: str) -> None:
    """specimens.csv, failures.csv (per run and latest) and summary.json; RecordsError when not writable."""
    run_dir = work_dir / RUNS_DIR / run_id
    failures = to_csv([asdict(r) for r in outstanding], FAILURE_COLUMNS)
    columns = SpecimenRecord.__dataclass_fields__
    files = {run_dir / "specimens.csv": to_csv([asdict(r) for r in records], columns),
             run_dir / "failures.csv": failures,
             run_dir / "summary.json": json.dumps(summary, indent=2, sort_keys=True),
             work_dir / "failures.csv": failures}
    for path, text in files.items():
        try:
            write_text(str(path), text, owner=owner)
        except OSError as exc:
            raise RecordsError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from exc
