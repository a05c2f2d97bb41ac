"""Fetch records: one msgpack map per fetch, appended to a per-writer log under `out/records/`.

A writer owns its files (`<writer_id>.<seq>.rec`, rotated by size, locked with flock so two
processes cannot share a writer id). Each record is one frame (`storage.framing`), so a crash
leaves at most a torn last frame; reopening the writer cuts it off before appending. Records are
written as they are appended, or, once `hold()` was called, kept until `flush()` and written
together: a crawler flushes just before its frontier commits the acks those records belong to,
one write per batch of pages instead of one per page.
`read_records(out_dir)` iterates every log and reports torn or damaged frames in a `ReadReport`
instead of failing.
"""

from __future__ import annotations

import enum
import fcntl
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import msgpack

from storage.errors import StorageError
from storage.framing import HEADER_SIZE, FrameProblem, ProblemKind, encode_frame, iter_frames
from storage.sink import FsyncPolicy

__all__ = [
    "FetchRecord",
    "LogProblem",
    "Outcome",
    "ReadReport",
    "RecordLog",
    "RedirectHop",
    "Timings",
    "clean_text",
    "read_log",
    "read_records",
]

RECORDS_DIR = "records"
LOG_SUFFIX = ".rec"
DEFAULT_ROTATE_BYTES = 256 << 20
# Held records are written anyway once this many bytes of them wait (a few thousand records).
HOLD_MAX_BYTES = 1 << 20
LOG_NAME = re.compile(r"^(?P<writer>.+)\.(?P<seq>\d{6})\.rec$")
_WRITER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class Outcome(enum.StrEnum):
    """How a fetch ended, from the point of view of storage."""

    STORED = "stored"  # a complete, verified body is in place under `path`
    NOT_MODIFIED = "not-modified"  # 304: the stored file is still current
    HTTP_ERROR = "http-error"  # 4xx/5xx: no file stored (a `.part` being resumed is kept)
    NOT_STORED = "not-stored"  # 1xx/204/205/3xx not followed: nothing to store
    TOO_LARGE = "too-large"  # over max_size: cut there; what was read is left as `.part`
    FAILED = "failed"  # transport error, size or digest mismatch: see `error`
    SKIPPED = "skipped"  # not fetched on purpose (robots.txt, its type): see `error` for why


@dataclass(slots=True)
class RedirectHop:
    url: str
    status: int
    location: str | None


@dataclass(slots=True)
class Timings:
    """Seconds. `dns`/`connect` are filled only when the client reports them."""

    dns: float | None = None
    connect: float | None = None
    ttfb: float | None = None
    total: float | None = None


@dataclass(slots=True)
class FetchRecord:
    """Everything a user may ask about one fetch. `path` is relative to the output folder."""

    url: str
    method: str = "GET"
    final_url: str | None = None
    status: int | None = None
    reason: str | None = None
    outcome: Outcome = Outcome.FAILED
    error: str | None = None
    notes: list[str] = field(default_factory=list)  # e.g. why a resume restarted from zero
    headers: list[tuple[str, str]] = field(default_factory=list)
    request_headers: list[tuple[str, str]] = field(default_factory=list)
    set_cookies: list[str] = field(default_factory=list)
    cookies_sent: list[str] = field(default_factory=list)
    redirects: list[RedirectHop] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    size: int | None = None  # length of the stored file
    received: int = 0  # body bytes received by this fetch
    resumed_from: int = 0  # offset the Range request started at (0: no resume)
    sha256: str | None = None
    path: str | None = None
    content_type: str | None = None
    fetched_at: float = 0.0  # unix time the request started
    warc_file: str | None = None
    warc_record_id: str | None = None
    writer: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # Validators of the stored body (what a re-fetch sends as If-None-Match and
    # If-Modified-Since) and the WARC-Date of its archived response: the latest index is
    # derived from these (storage.latest_logs). A 304's record carries the refreshed ones.
    etag: str | None = None
    last_modified: str | None = None
    warc_date: str | None = None
    # The stored file's st_mtime_ns when it was put in place: a re-fetch revalidates the file
    # only while it still has it (an edit of the same size must not pass for the stored one).
    mtime_ns: int | None = None

    def to_map(self) -> dict[str, Any]:
        """Plain types only (str, int, float, None, list, dict): msgpack and JSON ready."""
        out = {name: getattr(self, name) for name in _RECORD_FIELDS}
        out["outcome"] = getattr(self.outcome, "value", self.outcome)
        out["headers"] = [[k, v] for k, v in self.headers]
        out["request_headers"] = [[k, v] for k, v in self.request_headers]
        out["redirects"] = [
            {"url": hop.url, "status": hop.status, "location": hop.location}
            for hop in self.redirects
        ]
        timings = self.timings
        out["timings"] = {
            "dns": timings.dns,
            "connect": timings.connect,
            "ttfb": timings.ttfb,
            "total": timings.total,
        }
        return out

    @classmethod
    def from_map(cls, data: dict[str, Any]) -> FetchRecord:
        """The inverse of `to_map`; unknown keys (from newer writers) are ignored."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["outcome"] = Outcome(kwargs.get("outcome", Outcome.FAILED))
        kwargs["headers"] = [(k, v) for k, v in kwargs.get("headers", [])]
        kwargs["request_headers"] = [(k, v) for k, v in kwargs.get("request_headers", [])]
        kwargs["redirects"] = [RedirectHop(**hop) for hop in kwargs.get("redirects", [])]
        kwargs["timings"] = Timings(**kwargs.get("timings", {}))
        return cls(**kwargs)

    def header(self, name: str) -> str | None:
        """First response header `name` (case-insensitive), or None."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)


# Computed once: `dataclasses.fields()` on every record costs more than the rest of `to_map`.
_RECORD_FIELDS = tuple(f.name for f in fields(FetchRecord))


def clean_text(value: str) -> str:
    """Header text decoded with surrogateescape made encodable: bad bytes shown as `\\xNN`."""
    if value.isascii():
        return value  # nearly every header: nothing to check
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass(frozen=True, slots=True)
class LogProblem:
    path: Path
    kind: ProblemKind
    offset: int
    skipped: int
    detail: str


@dataclass(slots=True)
class ReadReport:
    """What a read found besides good records: torn tails and damaged frames, per file."""

    files: int = 0
    records: int = 0
    problems: list[LogProblem] = field(default_factory=list)

    @property
    def torn(self) -> list[LogProblem]:
        return [p for p in self.problems if p.kind is ProblemKind.TORN_TAIL]


class RecordLog:
    """Appends records for one writer. Not shared between processes (flock enforces it)."""

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        writer_id: str,
        *,
        fsync: FsyncPolicy = FsyncPolicy.NEVER,
        rotate_bytes: int = DEFAULT_ROTATE_BYTES,
    ) -> None:
        if not _WRITER_ID.match(writer_id):
            raise ValueError(f"writer id {writer_id!r}: use letters, digits, '.', '_', '-'")
        self.directory = Path(out_dir) / RECORDS_DIR
        self.writer_id = writer_id
        self.fsync = FsyncPolicy(fsync)
        self.rotate_bytes = rotate_bytes
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = None
        self._size = 0
        self._held: list[bytes] | None = None  # frames waiting for flush(), once holding
        self._held_bytes = 0
        # One packer for the log's life: `msgpack.packb` builds a new one per record.
        self._packer = msgpack.Packer(use_bin_type=True)
        self._seq = self._last_sequence()
        self._open(self._seq, repair=True)

    @property
    def path(self) -> Path:
        return self.directory / f"{self.writer_id}.{self._seq:06d}{LOG_SUFFIX}"

    def append(self, record: FetchRecord) -> None:
        data = record.to_map()
        try:
            packed = self._packer.pack(data)
        except UnicodeEncodeError:
            # Text with lone surrogates (undecodable bytes of a URL given to `download`, say):
            # the record is kept with those bytes shown as `\xNN`, never lost, since every
            # fetch must leave one.
            packed = self._packer.pack(_clean_all(data))
        frame = encode_frame(packed)
        held = self._held
        if held is None:
            self._write_frames([frame])
            return
        held.append(frame)
        self._held_bytes += len(frame)
        if self._held_bytes >= HOLD_MAX_BYTES:
            self.flush()

    def hold(self) -> None:
        """From now on keep appended records in memory until `flush()` (or `close()`), or until
        HOLD_MAX_BYTES of them wait. A killed process loses the held ones: flush before anything
        that relies on a record being on disk."""
        self._require_fd()
        if self._held is None:
            self._held = []

    def flush(self) -> None:
        """Write the held records now (one write; fsync too with the `always` policy)."""
        held = self._held
        if held:
            try:
                # Takes written frames off the front: after a failed write only the unwritten
                # ones wait for the next flush (never dropped while acks rely on them, never
                # written twice).
                self._write_frames(held)
            finally:
                self._held_bytes = sum(len(frame) for frame in held)

    def close(self) -> None:
        if self._fd is not None:
            self.flush()
            if self.fsync is not FsyncPolicy.NEVER:
                os.fsync(self._fd)
            self._close_file()

    def __enter__(self) -> RecordLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _require_fd(self) -> int:
        if self._fd is None:
            raise StorageError(f"record log {self.path} is closed")
        return self._fd

    def _write_frames(self, frames: list[bytes]) -> None:
        """Append whole frames, one write per log file, taking each group off `frames` once it
        is written; a file that is not empty is rotated before a frame that would take it past
        `rotate_bytes`."""
        while frames:
            end, size = 0, self._size
            while end < len(frames) and not (size and size + len(frames[end]) > self.rotate_bytes):
                size += len(frames[end])
                end += 1
            if end == 0:
                self._close_file()
                self._seq += 1
                self._open(self._seq, repair=False)
                continue
            fd = self._require_fd()
            view = memoryview(frames[0] if end == 1 else b"".join(frames[:end]))
            while view:
                written = os.write(fd, view)
                view = view[written:]
            self._size = size
            del frames[:end]
        if self.fsync is FsyncPolicy.ALWAYS:
            os.fsync(self._require_fd())

    def _last_sequence(self) -> int:
        sequences = [
            int(m.group("seq"))
            for p in self.directory.iterdir()
            if (m := LOG_NAME.match(p.name)) and m.group("writer") == self.writer_id
        ]
        return max(sequences, default=0)

    def _open(self, seq: int, *, repair: bool) -> None:
        path = self.directory / f"{self.writer_id}.{seq:06d}{LOG_SUFFIX}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StorageError(f"record log {path} is in use by another writer") from None
        if repair:
            _cut_torn_tail(fd, path)
        self._fd = fd
        self._size = os.fstat(fd).st_size

    def _close_file(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _clean_all(value: Any) -> Any:
    """`value` with every text in it (keys too) made encodable (`clean_text`)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {_clean_all(k): _clean_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_all(v) for v in value]
    return value


def _cut_torn_tail(fd: int, path: Path) -> None:
    """Truncate a torn last frame left by a crash, so new frames follow a clean end."""
    with open(path, "rb") as source:
        end_of_good = 0
        position = 0
        for item in iter_frames(source):
            if isinstance(item, FrameProblem):
                if item.kind is ProblemKind.TORN_TAIL:
                    os.ftruncate(fd, end_of_good)
                    return
                position = item.offset + item.skipped
            else:
                position += HEADER_SIZE + len(item)
                end_of_good = position


def read_log(path: Path, report: ReadReport | None = None) -> Iterator[FetchRecord]:
    """Records of one log file; problems go to `report` (torn tail, damaged frames)."""
    report = report if report is not None else ReadReport()
    report.files += 1
    with open(path, "rb") as source:
        for item in iter_frames(source):
            if isinstance(item, FrameProblem):
                report.problems.append(
                    LogProblem(path, item.kind, item.offset, item.skipped, item.detail)
                )
                continue
            try:
                data = msgpack.unpackb(item, raw=False)
                record = FetchRecord.from_map(data)
            except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
                report.problems.append(
                    LogProblem(path, ProblemKind.CORRUPT, -1, len(item), f"bad record: {exc}")
                )
                continue
            report.records += 1
            yield record


def read_records(
    out_dir: str | os.PathLike[str], report: ReadReport | None = None
) -> Iterator[FetchRecord]:
    """Every record under `out_dir/records`, log by log (writer id, then sequence)."""
    directory = Path(out_dir) / RECORDS_DIR
    if not directory.is_dir():
        return
    logs = sorted(
        (p for p in directory.iterdir() if LOG_NAME.match(p.name)),
        key=lambda p: (p.name.rsplit(".", 2)[0], p.name),
    )
    for path in logs:
        yield from read_log(path, report)
