"""What the record logs say the latest stored version of each URL is.

The latest index (`storage.latest`) is derived from the fetch records rather than written beside
them: a crawl that stores a page already appends its record, and a second write per page, into
an index that only a later re-crawl reads, cost about 5% of a crawl's time. The index catches up
from the logs when it is read (see `LatestIndex.get`); this module reads the logs.

A log is read from the offset the index reached last time up to its last complete frame. A torn
or damaged frame stops the reading of a writer's newest log there (its writer may be appending
that very frame), and is skipped in a rotated log, which no writer appends to any more. Records
of writers from before records carried their body's validators (no `etag` key) are left out:
those writers kept the index themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgpack

from storage.framing import HEADER_SIZE, FrameProblem, ProblemKind, iter_frames
from storage.records import LOG_NAME, Outcome

__all__ = ["LatestEntry", "LogChange", "Revalidated", "log_sizes", "newest_logs", "read_changes"]

_STORED = Outcome.STORED.value
_NOT_MODIFIED = Outcome.NOT_MODIFIED.value


@dataclass(slots=True)
class LatestEntry:
    # Stored as an array in this order (`LatestIndex.put`): a new field goes last, with a
    # default, so entries written before it still read.
    url: str
    path: str  # relative to the output folder
    size: int
    sha256: str
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: float = 0.0
    warc_record_id: str | None = None
    warc_date: str | None = None
    warc_target_uri: str | None = None
    mtime_ns: int | None = None  # the file's st_mtime_ns once stored (None: not known)


@dataclass(frozen=True, slots=True)
class Revalidated:
    """A 304: the stored version stays; only its validators and fetch time are refreshed."""

    url: str
    fetched_at: float
    etag: str | None
    last_modified: str | None


LogChange = LatestEntry | Revalidated  # a stored version, or a 304 refreshing one


def log_sizes(records_dir: Path) -> dict[str, int]:
    """Size of every record log in `records_dir`, by file name (empty when there is none)."""
    sizes: dict[str, int] = {}
    try:
        entries = os.scandir(records_dir)
    except (FileNotFoundError, NotADirectoryError):
        return sizes
    with entries:
        for entry in entries:
            if LOG_NAME.match(entry.name):
                try:
                    sizes[entry.name] = entry.stat().st_size
                except FileNotFoundError:
                    continue
    return sizes


def newest_logs(names: Iterator[str] | list[str]) -> set[str]:
    """The log each writer appends to now: its highest sequence number."""
    newest: dict[str, tuple[int, str]] = {}
    for name in names:
        match = LOG_NAME.match(name)
        if match is None:
            continue
        seq = int(match.group("seq"))
        writer = match.group("writer")
        if writer not in newest or seq > newest[writer][0]:
            newest[writer] = (seq, name)
    return {name for _seq, name in newest.values()}


def read_changes(path: Path, start: int, *, appended_to: bool) -> tuple[list[LogChange], int]:
    """The index changes in `path` from byte `start`, and the offset to read from next time.

    `appended_to`: the log's writer may still be appending (its newest log), so a frame that is
    not whole yet ends the reading instead of being skipped.
    """
    changes: list[LogChange] = []
    position = start
    with open(path, "rb") as source:
        source.seek(start)
        for item in iter_frames(source):
            if isinstance(item, FrameProblem):
                if appended_to or item.kind is ProblemKind.TORN_TAIL:
                    break
                position = start + item.offset + item.skipped
                continue
            position += HEADER_SIZE + len(item)
            change = _change_of(item)
            if change is not None:
                changes.append(change)
    return changes, position


def _change_of(payload: bytes) -> LogChange | None:
    try:
        data = msgpack.unpackb(payload, raw=False)
    except (ValueError, msgpack.UnpackException):
        return None
    if not isinstance(data, dict) or "etag" not in data:
        return None
    outcome = data.get("outcome")
    url = data.get("url")
    if outcome not in (_STORED, _NOT_MODIFIED) or not isinstance(url, str):
        return None
    fetched_at = data.get("fetched_at")
    fetched_at = float(fetched_at) if isinstance(fetched_at, int | float) else 0.0
    etag, last_modified = _text(data.get("etag")), _text(data.get("last_modified"))
    if outcome == _NOT_MODIFIED:
        return Revalidated(url, fetched_at, etag, last_modified)
    path, size, sha256 = data.get("path"), data.get("size"), data.get("sha256")
    if not isinstance(path, str) or not isinstance(size, int) or not isinstance(sha256, str):
        return None
    warc_record_id = _text(data.get("warc_record_id"))
    return LatestEntry(
        url=url,
        path=path,
        size=size,
        sha256=sha256,
        etag=etag,
        last_modified=last_modified,
        fetched_at=fetched_at,
        warc_record_id=warc_record_id,
        warc_date=_text(data.get("warc_date")),
        # The URL the archived response was for (the one a revisit refers to).
        warc_target_uri=_text(data.get("final_url")) if warc_record_id else None,
        mtime_ns=mtime_ns if type(mtime_ns := data.get("mtime_ns")) is int else None,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
