"""Read CSV or Parquet tables as strings while remembering where each row came from.

Every validation error must name the file, the row as a person sees it (the line in a CSV, the
header being line 1; the 1-based row in a Parquet file) and the column, so rows carry their origin.
"""

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq


class CohortError(ValueError):
    """A manifest or label table that does not validate; the message names file, row and column."""


@dataclass(frozen=True)
class Table:
    """A table's header and rows as stripped strings ('' = empty), with the origin of each row."""

    path: Path
    columns: list[str]
    rows: list[dict[str, str]]
    origins: list[str]
    """'line 7' (CSV) or 'row 6' (Parquet) per row."""

    def where(self, index: int, column: str | None = None) -> str:
        """'manifest.csv line 7, column 'time'' for error messages."""
        place = f"{self.path.name} {self.origins[index]}"
        return f"{place}, column '{column}'" if column else place

    def fail(self, index: int, column: str | None, message: str) -> CohortError:
        """An error located at a row (and column)."""
        return CohortError(f"{self.where(index, column)}: {message}")

    def require(self, columns: tuple[str, ...]) -> None:
        """Raise naming every required column the header lacks."""
        missing = [name for name in columns if name not in self.columns]
        if missing:
            raise CohortError(f"{self.path}: missing column(s) {missing}; the header has {self.columns}")


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _read_csv(path: Path) -> Table:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        rows, origins = [], []
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue  # blank line; line numbers still follow the file
            if len(record) > len(header):
                raise CohortError(
                    f"{path.name} line {reader.line_num}: {len(record)} fields, header has {len(header)}"
                )
            rows.append({name: _cell(record[i]) if i < len(record) else "" for i, name in enumerate(header)})
            origins.append(f"line {reader.line_num}")
    return Table(path=path, columns=header, rows=rows, origins=origins)


def _read_parquet(path: Path) -> Table:
    table = pq.read_table(path)
    columns = [str(name) for name in table.column_names]
    data = table.to_pydict()
    rows = [{name: _cell(data[name][i]) for name in columns} for i in range(table.num_rows)]
    return Table(
        path=path, columns=columns, rows=rows, origins=[f"row {i + 1}" for i in range(table.num_rows)]
    )


def read_table(path: str | Path) -> Table:
    """A `.csv` or `.parquet` file as a `Table`; unreadable or empty files raise `CohortError`."""
    path = Path(path)
    if not path.is_file():
        raise CohortError(f"{path}: file not found")
    try:
        table = _read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else _read_csv(path)
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:
        if isinstance(exc, CohortError):
            raise
        raise CohortError(f"{path}: cannot read table: {exc}") from exc
    if not table.columns:
        raise CohortError(f"{path}: empty file (no header)")
    return table
