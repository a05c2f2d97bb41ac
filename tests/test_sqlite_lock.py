"""Processes opening a new SQLite file at the same moment: the switch to WAL must wait for the
others, not fail with "database is locked" (it answers that at once, without SQLite's busy
handler: 4 processes opening a fresh file together failed in about 1 round of 5)."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from crawler.frontier import FrontierSettings
from crawler.frontier.sqlite_store import SqliteStore
from crawler.sqlite_lock import use_wal
from storage.latest import LatestIndex
from storage.latest_logs import LatestEntry

OPENERS = 4
ROUNDS = 40


def _open_connection(folder: str) -> None:
    db = sqlite3.connect(Path(folder) / "x.sqlite", timeout=60, isolation_level=None)
    try:
        use_wal(db, 60)
        db.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY) WITHOUT ROWID")
    finally:
        db.close()


def _open_frontier_store(folder: str) -> None:
    SqliteStore(str(Path(folder) / "frontier.sqlite"), FrontierSettings()).close()


def _open_latest_index(folder: str) -> None:
    index = LatestIndex(folder)
    index.put(LatestEntry(url="http://a/", path="files/a", size=1, sha256="0" * 64))
    index.close()


def _race(opener: Any, folder: str, barrier: Any, errors: Any) -> None:
    barrier.wait()
    try:
        opener(folder)
    except Exception as exc:  # reported to the test, which names it
        errors.put(repr(exc))
    else:
        errors.put(None)


@pytest.mark.parametrize("opener", [_open_connection, _open_frontier_store, _open_latest_index])
def test_processes_opening_a_new_file_together_all_get_it(tmp_path: Path, opener: Any) -> None:
    context = multiprocessing.get_context("fork")  # many rounds: spawn would take minutes
    failures: list[str] = []
    for round_number in range(ROUNDS):
        folder = tmp_path / str(round_number)
        folder.mkdir()
        barrier, errors = context.Barrier(OPENERS), context.Queue()
        processes = [
            context.Process(target=_race, args=(opener, str(folder), barrier, errors))
            for _ in range(OPENERS)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
            assert process.exitcode == 0
        failures += [error for error in (errors.get() for _ in processes) if error]
    assert failures == []
