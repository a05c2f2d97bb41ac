"""Taking SQLite's write lock quickly when other processes share the file.

SQLite's own busy handler sleeps 1, 2, 5 ... up to 100 ms between tries, while our
transactions (a frontier step, a flush of the latest-fetch index) hold the lock for a
millisecond or two: with two worker processes on one file, each would spend a good part of its
time asleep. `begin_immediate` tries again in steps of 0.2 ms doubling up to 2 ms instead.
Used by the SQLite frontier and by storage's latest-fetch index.
"""

from __future__ import annotations

import sqlite3
import time

__all__ = ["begin_immediate", "is_busy", "use_wal"]

# Waiting for another process's write lock: first try after this long, doubling up to the max.
BUSY_PAUSE_MIN_S = 0.0002
BUSY_PAUSE_MAX_S = 0.002


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether `exc` says the database is locked by someone else (so trying again may work)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def begin_immediate(
    db: sqlite3.Connection, timeout_s: float, *, busy_timeout_s: float | None = None
) -> None:
    """``BEGIN IMMEDIATE`` on `db`, waiting up to `timeout_s` for the write lock in short steps
    (0: one try, no wait).

    Raises the last `sqlite3.OperationalError` when the lock is still held after `timeout_s`,
    or at once for any other error. `db`'s busy timeout is `busy_timeout_s` afterwards
    (default: `timeout_s`).
    """
    db.execute("PRAGMA busy_timeout = 0")  # each try answers at once
    try:
        _until_not_busy(db, "BEGIN IMMEDIATE", timeout_s)
    finally:
        restore = timeout_s if busy_timeout_s is None else busy_timeout_s
        db.execute(f"PRAGMA busy_timeout = {int(restore * 1000)}")


def use_wal(db: sqlite3.Connection, timeout_s: float) -> None:
    """``PRAGMA journal_mode = WAL`` on `db`, tried again for up to `timeout_s` while another
    connection holds the file.

    Processes that open a new file at the same moment race to switch it to WAL, and the
    losers get "database is locked" at once, without SQLite's busy handler (4 processes
    opening a fresh file together: 19 failures in 100 rounds before this).
    """
    _until_not_busy(db, "PRAGMA journal_mode = WAL", timeout_s)


def _until_not_busy(db: sqlite3.Connection, statement: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pause = BUSY_PAUSE_MIN_S
    while True:
        try:
            db.execute(statement).fetchall()
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, BUSY_PAUSE_MAX_S)
