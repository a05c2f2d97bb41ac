"""How the SQLite frontier lays out its tasks: in queue order (`seq` the rowid, the fingerprint
in a unique index) in new files, keyed by fingerprint in files made before. The conformance
suite runs on both (the "sqlite" and "sqlite-fp-keyed" backends); these tests check the
layouts themselves and what the queue-order layout must never do."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from crawler.frontier import Ack, FrontierError, FrontierSettings, Outcome, SqliteFrontier
from tests.frontier.conftest import FP_KEYED_TASKS

SETTINGS = FrontierSettings(per_host_limit=100)


def tasks_table_sql(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as db:
        (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'tasks'").fetchone()
    return " ".join(sql.split())


def wal_frames_of_one_commit(frontier: SqliteFrontier) -> int:
    """How many pages the last commit wrote to the WAL (a passive checkpoint reports it)."""
    _busy, frames, _done = frontier._store.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(frames)


async def test_a_new_file_keeps_tasks_in_queue_order(tmp_path: Path) -> None:
    path = tmp_path / "frontier.sqlite"
    async with await SqliteFrontier.open(path, "job", SETTINGS) as frontier:
        await frontier.add([f"http://a.test/{i}" for i in range(5)])
        rows = frontier._store.db.execute("SELECT rowid, seq FROM tasks ORDER BY rowid")
        assert [rowid for rowid, seq in rows if rowid == seq] == [1, 2, 3, 4, 5]
    sql = tasks_table_sql(path)
    assert "seq INTEGER PRIMARY KEY" in sql and "fp BLOB NOT NULL UNIQUE" in sql
    assert "WITHOUT ROWID" not in sql


async def test_a_file_of_the_older_layout_keeps_it_and_works(tmp_path: Path) -> None:
    path = tmp_path / "frontier.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(FP_KEYED_TASKS)
    async with await SqliteFrontier.open(path, "job", SETTINGS) as frontier:
        added = await frontier.add(["http://a.test/1", "http://a.test/2", "http://a.test/1"])
        assert (added.added, added.duplicates) == (2, 1)
        one, two = await frontier.lease(2, "w")
        assert await frontier.ack(one, links=["http://a.test/3", "http://a.test/2"])
        assert await frontier.retry(two, 0, "reset")
        stats = await frontier.stats()
        assert (stats.done, stats.queued, stats.duplicates) == (1, 2, 2)
    assert "fp BLOB PRIMARY KEY" in tasks_table_sql(path)
    assert "WITHOUT ROWID" in tasks_table_sql(path)


async def test_a_reused_sequence_number_is_an_error_not_a_lost_url(tmp_path: Path) -> None:
    """Duplicates are recognised by fingerprint only: if the seq counter ever went back, the
    insert must fail loudly rather than drop a new URL as if it were known."""
    async with await SqliteFrontier.open(tmp_path / "f.sqlite", "job", SETTINGS) as frontier:
        await frontier.add(["http://a.test/1"])
        frontier._store.db.execute("UPDATE counters SET value = 0 WHERE name = 'seq'")
        with pytest.raises(FrontierError, match=r"UNIQUE constraint failed: tasks\.seq"):
            await frontier.add(["http://a.test/new"])
        assert (await frontier.stats()).queued == 1


async def test_settling_neighbouring_tasks_writes_few_pages(tmp_path: Path) -> None:
    """Why the layout changed: acking a batch of tasks leased together dirties a few
    neighbouring pages, where fingerprint keys scattered them over one page each."""
    frames: dict[str, int] = {}
    for layout in ("queue-order", "fp-keyed"):
        path = tmp_path / f"{layout}.sqlite"
        if layout == "fp-keyed":
            with contextlib.closing(sqlite3.connect(path)) as db:
                db.execute(FP_KEYED_TASKS)
        async with await SqliteFrontier.open(path, "job", SETTINGS) as frontier:
            await frontier.add([f"http://a.test/page/{i}" for i in range(3000)])
            tasks = await frontier.lease(100, "w")
            wal_frames_of_one_commit(frontier)  # start from an empty WAL
            assert all(await frontier.ack_many([Ack(t, Outcome.DONE) for t in tasks]))
            frames[layout] = wal_frames_of_one_commit(frontier)
    assert frames["queue-order"] * 3 < frames["fp-keyed"], frames
