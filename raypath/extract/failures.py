"""The run's records: per-slide log (who read what, where, how long) and the failures manifest.

`<out>/failures.csv` always lists exactly the slides that still lack features after the latest
run, each with the stage that stopped it, whether it failed (an error: retry or fix) or was skipped
(nothing to extract: no tissue, too small, not pyramidal), the reason and the attempts spent.
Per-run copies and `slides.csv` live in `<out>/_runs/<run_id>/`.
"""

import csv
import io
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from raypath.paths import is_remote, join

RUNS_DIR = "_runs"
FAILURE_COLUMNS = ("slide_id", "path", "stage", "status", "reason", "attempts")


@dataclass(frozen=True)
class SlideRecord:
    """What happened to one slide in this run; status is done, skipped or failed."""

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


def write_text(path: str, text: str) -> None:
    """Atomic small-file write (temporary name + rename), local or object store."""
    if is_remote(path):
        filesystem, inner = pafs.FileSystem.from_uri(path)
    else:
        filesystem, inner = pafs.LocalFileSystem(), str(Path(path).resolve())
    parent, name = inner.rsplit("/", 1)
    filesystem.create_dir(parent, recursive=True)
    temporary = f"{parent}/.{name}.tmp-{uuid.uuid4().hex[:8]}"
    with filesystem.open_output_stream(temporary) as sink:
        sink.write(text.encode())
    filesystem.move(temporary, inner)


def to_csv(records: Iterable[Mapping[str, Any]], columns: Iterable[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


class RunRecords:
    """Writes the run's slides.csv, failures.csv and summary.json (and the latest failures.csv)."""

    def __init__(self, *, output: str, run_id: str) -> None:
        self.output = output
        self.run_dir = join(output, RUNS_DIR, run_id)

    def write(self, records: list[SlideRecord], summary: Mapping[str, Any]) -> None:
        rows = [asdict(r) for r in records]
        columns = [f for f in SlideRecord.__dataclass_fields__]
        failures = to_csv([r for r in rows if r["status"] != "done"], FAILURE_COLUMNS)
        write_text(join(self.run_dir, "slides.csv"), to_csv(rows, columns))
        write_text(join(self.run_dir, "failures.csv"), failures)
        write_text(join(self.run_dir, "summary.json"), json.dumps(summary, indent=2, sort_keys=True))
        write_text(join(self.output, "failures.csv"), failures)
