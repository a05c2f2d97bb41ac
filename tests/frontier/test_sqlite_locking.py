"""The SQLite store waiting for another process's write lock: it waits, then writes; it gives up
only after the busy timeout, with SQLite's own error."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from crawler.frontier import FrontierSettings, sqlite_store
from crawler.frontier.sqlite_store import SqliteStore


def _hold_write_lock(path: Path, release: threading.Event, held: threading.Event) -> None:
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(30)
        other.execute("COMMIT")
    finally:
        other.close()


def test_a_write_waits_for_another_connections_lock_then_goes_through(tmp_path: Path) -> None:
    path = tmp_path / "frontier.sqlite"
    store = SqliteStore(str(path), FrontierSettings())
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, release, held))
    holder.start()
    try:
        assert held.wait(30)
        timer = threading.Timer(0.3, release.set)  # let go while the store is trying
        timer.start()
        store.set_meta("k", "v")  # would raise "database is locked" if it did not wait
        assert store.meta("k") == "v"
        timer.join()
    finally:
        release.set()
        holder.join(30)
        store.close()


def test_a_write_gives_up_after_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "frontier.sqlite"
    store = SqliteStore(str(path), FrontierSettings())
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_MS", 200)
    release, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, release, held))
    holder.start()
    try:
        assert held.wait(30)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            store.set_meta("k", "v")
        release.set()
        holder.join(30)
        store.set_meta("k", "v")  # the connection is usable again afterwards
        assert store.meta("k") == "v"
    finally:
        release.set()
        holder.join(30)
        store.close()
