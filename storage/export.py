"""The user's view of the records: JSON lines (every field) or CSV (the main columns).

`crawl export OUT --format jsonl|csv [--failed]` calls these; problems found while reading
(a torn last record after a crash) come back in the `ReadReport` for the CLI to mention.

CSV is for spreadsheets, and much of a record is what a server sent (its Content-Type, the
URL it redirected to, an error quoting it): a text cell starting with `=`, `+`, `-`, `@`, tab
or CR would be run as a formula there (CSV injection), so such a cell gets a leading `'`,
which spreadsheets show as text (OWASP's advice). JSON lines keep every value as it is.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from storage.paths import current_location, displaced_path
from storage.records import FetchRecord, Outcome, ReadReport, read_records

__all__ = ["CSV_COLUMNS", "export_csv", "export_jsonl", "is_failure"]

CSV_COLUMNS = (
    "url",
    "final_url",
    "status",
    "outcome",
    "size",
    "sha256",
    "path",
    "error",
    "fetched_at",
    "content_type",
    "resumed_from",
    "received",
    "total_seconds",
)
_SUCCESS = (Outcome.STORED, Outcome.NOT_MODIFIED)


def is_failure(record: FetchRecord) -> bool:
    return record.outcome not in _SUCCESS


def export_jsonl(
    out_dir: str | os.PathLike[str], stream: TextIO, *, failed_only: bool = False
) -> ReadReport:
    """One JSON object per record, in log order. Returns what the read found."""
    report = ReadReport()
    for record in _selected(out_dir, report, failed_only):
        stream.write(json.dumps(record.to_map(), ensure_ascii=False))
        stream.write("\n")
    return report


def export_csv(
    out_dir: str | os.PathLike[str], stream: TextIO, *, failed_only: bool = False
) -> ReadReport:
    report = ReadReport()
    writer = csv.writer(stream)
    writer.writerow(CSV_COLUMNS)
    for record in _selected(out_dir, report, failed_only):
        row = {**record.to_map(), "total_seconds": record.timings.total}
        writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
    return report


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """A CSV cell: empty for None, text that a spreadsheet would evaluate made inert."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _selected(
    out_dir: str | os.PathLike[str], report: ReadReport, failed_only: bool
) -> Iterator[FetchRecord]:
    root = Path(out_dir)
    for record in read_records(out_dir, report):
        if not failed_only or is_failure(record):
            if record.path is not None:
                # Where the file is now: `/a` moves aside once `/a/b` is stored (its record
                # was written before), and the export should name a file, not a directory.
                stored = root / record.path
                if current_location(stored) != stored:
                    record.path = displaced_path(record.path)
            yield record
