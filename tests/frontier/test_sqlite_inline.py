"""Where the SQLite frontier runs its SQL: on the loop's thread while the file is free, on its
own thread when a step would wait (another process holds the write lock) and for checkpoints,
always in the order the calls were made, and never with the loop asleep."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from crawler.frontier import SqliteFrontier, sqlite_backend
from crawler.frontier.sqlite_store import SqliteStore
from tests.support.sqlite_lock import write_lock_held


@pytest.fixture
async def frontier(tmp_path: Path) -> AsyncIterator[SqliteFrontier]:
    opened = await SqliteFrontier.open(tmp_path / "frontier.sqlite", "job")
    yield opened
    await opened.close()


def spy(store: SqliteStore, name: str, threads: list[int]) -> None:
    """Note the thread each call of `store.<name>` runs on."""
    real: Callable[..., Any] = getattr(store, name)

    def wrapper(*args: Any) -> Any:
        threads.append(threading.get_ident())
        return real(*args)

    setattr(store, name, wrapper)


async def test_steps_run_on_the_loop_thread_while_the_file_is_free(
    frontier: SqliteFrontier,
) -> None:
    threads: list[int] = []
    spy(frontier._store, "commit", threads)
    spy(frontier._store, "lease", threads)
    await frontier.add(["http://a.test/1"])
    (task,) = await frontier.lease(1, "w")
    assert await frontier.ack(task, links=["http://a.test/2"])
    assert threads == [threading.get_ident()] * 3


async def test_a_step_held_up_by_another_writer_waits_on_the_thread_with_the_loop_running(
    frontier: SqliteFrontier,
) -> None:
    await frontier.add(["http://a.test/1"])
    (task,) = await frontier.lease(1, "w")
    threads: list[int] = []
    spy(frontier._store, "commit", threads)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        with write_lock_held(Path(frontier.path)) as release:
            ack = asyncio.create_task(frontier.ack(task))
            await asyncio.sleep(0.3)
            assert not ack.done()  # it waits for the lock...
            assert ticks >= 10  # ...and the loop goes on meanwhile
            release.set()
            assert await asyncio.wait_for(ack, 30)
    finally:
        ticker.cancel()
    loop_thread = threading.get_ident()
    # Tried here once (the lock was taken), then done on the thread.
    assert threads[0] == loop_thread
    assert threads[-1] != loop_thread
    assert (await frontier.stats()).done == 1


async def test_calls_made_while_the_thread_is_busy_follow_it_in_order(
    frontier: SqliteFrontier,
) -> None:
    await frontier.add(["http://a.test/1"])
    (task,) = await frontier.lease(1, "w")
    commits: list[int] = []
    reads: list[int] = []
    spy(frontier._store, "commit", commits)
    spy(frontier._store, "stats", reads)
    with write_lock_held(Path(frontier.path)) as release:
        ack = asyncio.create_task(frontier.ack(task, links=["http://a.test/2"]))
        await asyncio.sleep(0.1)
        # Free to run at once on its own, but the thread holds an earlier step: it waits.
        stats = asyncio.create_task(frontier.stats())
        await asyncio.sleep(0.1)
        assert not stats.done()
        assert reads == []
        release.set()
        assert await asyncio.wait_for(ack, 30)
        seen = await asyncio.wait_for(stats, 30)
    # Run on the thread after the ack's commit: it saw what the ack wrote.
    assert reads[0] != threading.get_ident()
    assert seen.done == 1
    assert seen.queued == 1


async def test_the_wal_is_checkpointed_on_the_thread_with_automatic_checkpoints_off(
    frontier: SqliteFrontier, monkeypatch: pytest.MonkeyPatch
) -> None:
    (autocheckpoint,) = frontier._store.db.execute("PRAGMA wal_autocheckpoint").fetchone()
    assert autocheckpoint == 0
    monkeypatch.setattr(sqlite_backend, "CHECKPOINT_EVERY", 5)
    threads: list[int] = []
    spy(frontier._store, "checkpoint", threads)
    for i in range(12):
        await frontier.add([f"http://a.test/{i}"])
    await frontier.stats()  # goes behind the last checkpoint sent
    assert len(threads) >= 2  # each add is a few steps
    assert threading.get_ident() not in threads


async def test_the_wal_stays_small_over_many_steps(frontier: SqliteFrontier) -> None:
    for i in range(1500):
        await frontier.add([f"http://a.test/{i}/" + "x" * 200])
    await frontier.stats()
    wal = Path(f"{frontier.path}-wal")
    # Without checkpoints every step's pages would pile up in the WAL (about 40 MB here).
    assert os.stat(wal).st_size < 4 << 20
    assert (await frontier.stats()).queued == 1500
