"""The SQLite store waiting for another process's write lock: it waits, then writes; it gives up
only after the busy timeout, with SQLite's own error."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from crawler.frontier import FrontierSettings, sqlite_store
from crawler.frontier.sqlite_store import SqliteStore
from tests.support.sqlite_lock import write_lock_held


def test_a_write_waits_for_another_connections_lock_then_goes_through(tmp_path: Path) -> None:
    path = tmp_path / "frontier.sqlite"
    store = SqliteStore(str(path), FrontierSettings())
    try:
        with write_lock_held(path) as release:
            timer = threading.Timer(0.3, release.set)  # let go while the store is trying
            timer.start()
            store.set_meta("k", "v")  # would raise "database is locked" if it did not wait
            assert store.meta("k") == "v"
            timer.join()
    finally:
        store.close()


def test_a_write_gives_up_after_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "frontier.sqlite"
    store = SqliteStore(str(path), FrontierSettings())
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_MS", 200)
    try:
        with write_lock_held(path), pytest.raises(sqlite3.OperationalError, match="locked"):
            store.set_meta("k", "v")
        store.set_meta("k", "v")  # the connection is usable again afterwards
        assert store.meta("k") == "v"
    finally:
        store.close()
