"""The run's records: per-slide log (who read what, where, how long) and the failures manifest.

`<out>/failures.csv` always lists exactly the slides of the latest run that still lack features
when it ends (a slide another run finished meanwhile is not listed), each with the stage that
stopped it, whether it failed (an error: retry or fix) or was skipped
(nothing to extract: no tissue, too small, not pyramidal), the reason and the attempts spent.
Per-run copies and `slides.csv` live in `<out>/_runs/<run_id>/`. Every file is written under a
temporary name carrying the run's owner token and renamed into place; a failed write (a full
disk) removes its temporary file and raises `RecordsError`.
"""

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from raypath.paths import join
from raypath.publish import write_text

RUNS_DIR = "_runs"
FAILURE_COLUMNS = ("slide_id", "path", "stage", "status", "reason", "attempts")


@dataclass(frozen=True)
class SlideRecord:
    """What happened to one slide in this run; status is done, skipped or failed.

    The one outcome type: the assembler makes it when a slide's last chunk arrives (seconds: how long
    that read took), the driver fails it if the write does, and it is a row of slides.csv as it is.
    """

    slide_id: str
    path: str
    status: str
    stage: str = ""
    reason: str = ""
    attempts: int = 0
    node_id: str = ""
    node_ip: str = ""
    tiles: int = 0
    seconds: float = 0.0


class RecordsError(OSError):
    """The run records could not be written (full disk, lost permissions); the features are kept."""


def to_csv(records: Iterable[Mapping[str, Any]], columns: Iterable[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


class RunRecords:
    """Writes the run's slides.csv, failures.csv and summary.json (and the latest failures.csv)."""

    def __init__(self, *, output: str, run_id: str, owner: str = "") -> None:
        self.output, self.owner = output, owner
        self.run_dir = join(output, RUNS_DIR, run_id)

    def write(self, records: list[SlideRecord], *, outstanding: list[SlideRecord],
              summary: Mapping[str, Any]) -> None:
        """`outstanding`: the records of slides that still lack features, for failures.csv."""
        columns = list(SlideRecord.__dataclass_fields__)
        failures = to_csv([asdict(r) for r in outstanding], FAILURE_COLUMNS)
        files = {join(self.run_dir, "slides.csv"): to_csv([asdict(r) for r in records], columns),
                 join(self.run_dir, "failures.csv"): failures,
                 join(self.run_dir, "summary.json"): json.dumps(summary, indent=2, sort_keys=True),
                 join(self.output, "failures.csv"): failures}
        for path, text in files.items():
            try:
                write_text(path, text, owner=self.owner)
            except OSError as exc:
                raise RecordsError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from exc
