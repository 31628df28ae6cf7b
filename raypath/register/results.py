"""Per-specimen results: `<work dir>/specimens/<settings hash>/<specimen>.<inputs digest>.parquet`.

Each file is written whole under a temporary name carrying the run's owner token and renamed into
place (`raypath.publish`), so a killed run leaves finished specimens complete and nothing
half-written under a final name; a rerun skips every specimen whose file exists.
"""

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from raypath.publish import write_bytes
from raypath.register.plan import SpecimenTask
from raypath.slides.registration.store import COLUMNS

SPECIMENS_DIR = "specimens"


class SpecimenResults:
    """The stored results of one registration setting (`settings_hash`) under a work directory."""

    def __init__(self, work_dir: Path, *, settings_hash: str) -> None:
        self.directory = Path(work_dir) / SPECIMENS_DIR / settings_hash

    def path(self, task: SpecimenTask) -> Path:
        return self.directory / f"{task.specimen_id}.{task.digest}.parquet"

    def names(self) -> set[str]:
        """File names of every finished result (temporary files are hidden and never count)."""
        if not self.directory.is_dir():
            return set()
        return {p.name for p in self.directory.iterdir() if not p.name.startswith(".")}

    def has(self, task: SpecimenTask) -> bool:
        return self.path(task).is_file()

    def write(self, task: SpecimenTask, rows: list[dict[str, Any]], *, owner: str) -> None:
        """One specimen's rows, atomically."""
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(pd.DataFrame(rows, columns=list(COLUMNS)), preserve_index=False),
                       buffer)
        write_bytes(str(self.path(task)), buffer.getvalue(), owner=owner)

    def read(self, tasks: Iterable[SpecimenTask]) -> pd.DataFrame:
        """The rows of every task that has a result, in task order (empty table with the columns if none)."""
        frames = [pd.read_parquet(self.path(task)) for task in tasks if self.has(task)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(COLUMNS))
