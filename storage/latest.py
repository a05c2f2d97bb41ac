"""The last stored version of each URL: what a conditional re-fetch and a WARC revisit need.

One SQLite table in `out/state/latest.sqlite` (WAL mode), keyed by URL, shared by the worker
processes of an output folder. It is derived from the fetch records (`storage.latest_logs`):
a crawl writes nothing here, and a lookup that misses first reads what the record logs gained
since the index last looked (each log from the offset stored with the index, one transaction
per log), then looks again. A re-crawl pays for the index once, when it first needs it; a
crawl that stores a page pays nothing beyond its record, which it writes anyway. `put()` stages
entries directly (batched: at most `FLUSH_ENTRIES` or `FLUSH_SECONDS` old, and on `close`), as
writers did before records carried their body's validators. The record logs stay the full
history; this is only the "latest" view.

Durability follows the store's fsync policy: with `never` SQLite does not sync either
(`synchronous = OFF`); the file then survives a killed process but not always a power loss.
Since the index is only a cache of what is stored, a file SQLite cannot read is moved aside
(`latest.sqlite.unreadable-<time>`) and started afresh: those URLs are fetched whole again
instead of revalidated.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import msgpack

from crawler.sqlite_lock import begin_immediate, use_wal
from storage.latest_logs import (
    LatestEntry,
    LogChange,
    Revalidated,
    log_sizes,
    newest_logs,
    read_changes,
)
from storage.resume import header_safe

__all__ = ["LatestEntry", "LatestIndex", "conditional_headers"]

log = logging.getLogger("crawl.storage")

LATEST_FILE = Path("state") / "latest.sqlite"
BUSY_TIMEOUT_S = 60.0
FLUSH_ENTRIES = 256
FLUSH_SECONDS = 1.0


def conditional_headers(entry: LatestEntry) -> dict[str, str]:
    """If-None-Match / If-Modified-Since for a re-fetch of `entry` (empty: ask unconditionally)."""
    headers: dict[str, str] = {}
    if entry.etag and header_safe(entry.etag):
        headers["If-None-Match"] = entry.etag
    if entry.last_modified and header_safe(entry.last_modified):
        headers["If-Modified-Since"] = entry.last_modified
    return headers


class LatestIndex:
    """The latest entry per URL, shared by every process writing into one output folder.

    The file is opened on first use, so a Store that never stores anything creates nothing.
    Safe to call from several threads (one connection, one lock).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        durable: bool = True,
        records_dir: str | os.PathLike[str] | None = None,
        before_reading_records: Callable[[], object] | None = None,
    ) -> None:
        self.path = Path(out_dir) / LATEST_FILE
        # NORMAL in WAL mode: a committed batch survives a power loss; OFF: no fsync ever.
        self._synchronous = "NORMAL" if durable else "OFF"
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        # Where the entries come from besides `put` (see `_catch_up`), and what must run first
        # so this process's own records are in the logs (a writer holding them, say).
        self._records_dir = None if records_dir is None else Path(records_dir)
        self._before_reading_records = before_reading_records
        self._log_sizes_seen: dict[str, int] = {}
        self._pending: dict[str, bytes | None] = {}  # key -> packed entry, None: forget
        # Used under the lock only: a Packer keeps one buffer, which threads must not share.
        self._packer = msgpack.Packer(unicode_errors="surrogateescape")
        self._pending_since = 0.0

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = self._open()
            except sqlite3.OperationalError:
                raise  # locked or out of space: the file is fine, the caller sees why
            except sqlite3.DatabaseError as exc:
                aside = self.path.with_name(f"{self.path.name}.unreadable-{time.time():.0f}")
                log.warning(
                    "%s is unreadable (%s): moved to %s, starting anew", self.path, exc, aside
                )
                for suffix in ("", "-wal", "-shm"):
                    source = Path(f"{self.path}{suffix}")
                    if source.exists():
                        os.replace(source, f"{aside}{suffix}")
                self._db = self._open()
        return self._db

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            # Set before the switch to WAL, so that switch does not sync either when OFF.
            db.execute(f"PRAGMA synchronous = {self._synchronous}")
            use_wal(db, BUSY_TIMEOUT_S)
            db.execute(
                "CREATE TABLE IF NOT EXISTS latest (url TEXT PRIMARY KEY, entry TEXT NOT NULL)"
                " WITHOUT ROWID"
            )
            # How far each record log has been read into `latest` (see `_catch_up`).
            db.execute(
                "CREATE TABLE IF NOT EXISTS indexed_logs"
                " (log TEXT PRIMARY KEY, offset INTEGER NOT NULL) WITHOUT ROWID"
            )
            # A damaged file can open and still fail on its first read: read once here.
            db.execute("SELECT 1 FROM latest LIMIT 1").fetchall()
        except BaseException:
            db.close()
            raise
        return db

    def get(self, url: str, *, refresh: bool = False) -> LatestEntry | None:
        """The entry for `url`, or None (missing or unreadable).

        `refresh`: read what the logs gained first even when the index has an entry, which
        may be stale: a later store of `url` by another writer is only in its log until a
        miss makes the index catch up. For a caller that found the entry's file changed.
        """
        key = _key(url)
        with self._lock:
            stored = self._stored(key)
            if (stored is None or refresh) and self._catch_up():
                stored = self._stored(key)
        return None if stored is None else _decode(stored, url)

    def _stored(self, key: str) -> str | bytes | None:
        if key in self._pending:
            return self._pending[key]
        if self._db is None and not self.path.exists():
            return None  # nothing stored yet: do not create the file for a lookup
        query = "SELECT entry FROM latest WHERE url = ?"
        row = self._connection().execute(query, (key,)).fetchone()
        return None if row is None else row[0]

    def _catch_up(self) -> bool:
        """Index what the record logs gained since this index last looked; True when any log
        had grown (the lookup is worth repeating).

        Each log is read from the offset stored with the index (another process may have
        read it already) in a transaction of its own, so processes sharing the folder take
        turns and none reads a log twice.
        """
        if self._records_dir is None:
            return False
        if self._before_reading_records is not None:
            self._before_reading_records()
        sizes = log_sizes(self._records_dir)
        grown = [name for name, size in sizes.items() if size > self._log_sizes_seen.get(name, 0)]
        if not grown:
            return False
        appended_to = newest_logs(list(sizes))
        db = self._connection()
        for name in sorted(grown):
            begin_immediate(db, BUSY_TIMEOUT_S)
            try:
                query = "SELECT offset FROM indexed_logs WHERE log = ?"
                row = db.execute(query, (name,)).fetchone()
                start = 0 if row is None else int(row[0])
                if start < sizes[name]:
                    changes, end = read_changes(
                        self._records_dir / name, start, appended_to=name in appended_to
                    )
                    self._apply(db, changes)
                    db.execute("INSERT OR REPLACE INTO indexed_logs VALUES (?, ?)", (name, end))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            self._log_sizes_seen[name] = sizes[name]
        return True

    def _apply(self, db: sqlite3.Connection, changes: list[LogChange]) -> None:
        """Changes of one log in order; a record older than the entry it would replace (from
        another writer's log, read later) changes nothing."""
        for start in range(0, len(changes), _APPLY_BATCH):
            batch = changes[start : start + _APPLY_BATCH]
            keys = list(dict.fromkeys(_key(change.url) for change in batch))
            current: dict[str, LatestEntry | None] = {}
            for key in keys:
                row = db.execute("SELECT entry FROM latest WHERE url = ?", (key,)).fetchone()
                current[key] = None if row is None else _decode(row[0], None)
            changed: dict[str, LatestEntry] = {}
            for change in batch:
                key = _key(change.url)
                entry = changed.get(key) or current[key]
                if entry is not None and entry.fetched_at > change.fetched_at:
                    continue
                if isinstance(change, Revalidated):
                    if entry is None:
                        continue  # a 304 for a version this index never saw stored
                    entry.etag = change.etag or entry.etag
                    entry.last_modified = change.last_modified or entry.last_modified
                    entry.fetched_at = change.fetched_at
                else:
                    entry = change
                changed[key] = entry
            db.executemany(
                "INSERT OR REPLACE INTO latest VALUES (?, ?)",
                [(key, self._packer.pack(_fields_of(entry))) for key, entry in changed.items()],
            )

    def put(self, entry: LatestEntry) -> None:
        # An array, not a map: a crawl puts one entry per page, and the field names would be
        # most of the packing and of the row (see `get`, which reads both).
        self._stage(_key(entry.url), _fields_of(entry))

    def forget(self, url: str) -> None:
        self._stage(_key(url), None)

    def flush(self) -> None:
        """Write the staged entries now (one transaction)."""
        with self._lock:
            self._flush_locked()

    def close(self) -> None:
        with self._lock:
            try:
                self._flush_locked()
            finally:
                if self._db is not None:
                    self._db.close()
                    self._db = None

    def _stage(self, key: str, entry_fields: list[object] | None) -> None:
        with self._lock:
            if not self._pending:
                self._pending_since = time.monotonic()
            self._pending[key] = None if entry_fields is None else self._packer.pack(entry_fields)
            if (
                len(self._pending) >= FLUSH_ENTRIES
                or time.monotonic() - self._pending_since >= FLUSH_SECONDS
            ):
                self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._pending:
            return
        puts = [(key, packed) for key, packed in self._pending.items() if packed is not None]
        gone = [(key,) for key, packed in self._pending.items() if packed is None]
        db = self._connection()
        begin_immediate(db, BUSY_TIMEOUT_S)
        try:
            db.executemany("INSERT OR REPLACE INTO latest VALUES (?, ?)", puts)
            db.executemany("DELETE FROM latest WHERE url = ?", gone)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._pending.clear()


_FIELD_NAMES = tuple(f.name for f in fields(LatestEntry))  # new fields go last (see `put`)
_APPLY_BATCH = 10_000  # log records applied to the table at a time (bounds the memory used)


def _fields_of(entry: LatestEntry) -> list[object]:
    return [
        entry.url, entry.path, entry.size, entry.sha256, entry.etag, entry.last_modified,
        entry.fetched_at, entry.warc_record_id, entry.warc_date, entry.warc_target_uri,
        entry.mtime_ns,
    ]  # fmt: skip


def _decode(stored: str | bytes, url: str | None) -> LatestEntry | None:
    """A stored entry (None when unreadable, or not for `url` when one is given)."""
    try:
        # A msgpack array of the fields in `_FIELD_NAMES` order; older writers stored a
        # msgpack map, and before that JSON text, of the same fields.
        raw = json.loads(stored) if isinstance(stored, str) else _unpack(stored)
        if isinstance(raw, list):
            entry = LatestEntry(*raw[: len(_FIELD_NAMES)])
        else:
            entry = LatestEntry(**{k: v for k, v in raw.items() if k in _FIELD_NAMES})
    except (TypeError, ValueError, AttributeError, msgpack.UnpackException):
        return None
    return entry if url is None or entry.url == url else None


def _unpack(packed: bytes) -> Any:
    # URLs may carry lone surrogates (undecodable bytes, see `_key`): kept as they are.
    return msgpack.unpackb(packed, unicode_errors="surrogateescape")


def _key(url: str) -> str:
    # URLs may carry lone surrogates (undecodable bytes kept as surrogateescape): SQLite needs
    # valid UTF-8, so those are stored as escapes.
    return url.encode("utf-8", "backslashreplace").decode("utf-8")
