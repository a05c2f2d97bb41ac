"""SQLite settles a DONE task with one UPDATE ... RETURNING where the library has it (3.35+)
and with a SELECT then an UPDATE where it does not; both paths must leave the same state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crawler.frontier import FrontierSettings, SqliteFrontier, sqlite_store

SHORT = FrontierSettings(per_host_limit=100, lease_seconds=0.3, max_attempts=3)


@pytest.fixture(params=["returning", "select-then-update"])
async def frontier(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[SqliteFrontier]:
    monkeypatch.setattr(sqlite_store, "_UPDATE_RETURNING", request.param == "returning")
    opened = await SqliteFrontier.open(tmp_path / "frontier.sqlite", "job", SHORT)
    yield opened
    await opened.close()


def host_rows(frontier: SqliteFrontier) -> dict[str, tuple[int, int]]:
    rows = frontier._store.db.execute("SELECT host, inflight, backoff FROM hosts")
    return {host: (inflight, backoff) for host, inflight, backoff in rows}


async def test_done_settles_count_per_host_and_report_each_task(frontier: SqliteFrontier) -> None:
    await frontier.add(["http://a.test/1", "http://a.test/2", "http://b.test/1"])
    tasks = await frontier.lease(3, "w")
    assert {host: inflight for host, (inflight, _) in host_rows(frontier).items()} == {
        "a.test": 2,
        "b.test": 1,
    }
    results = await asyncio.gather(*(frontier.ack(t, links=[]) for t in tasks))
    assert results == [True, True, True]
    assert host_rows(frontier) == {"a.test": (0, 0), "b.test": (0, 0)}
    stats = await frontier.stats()
    assert (stats.done, stats.leased, stats.queued) == (3, 0, 0)
    # A second ack of a finished task changes nothing and says so.
    assert not await frontier.ack(tasks[0])
    assert (await frontier.stats()).done == 3


async def test_an_ack_for_an_older_lease_is_refused(frontier: SqliteFrontier) -> None:
    await frontier.add(["http://a.test/1"])
    (first,) = await frontier.lease(1, "slow")
    await asyncio.sleep(max(0.0, first.deadline - time.time()) + 0.05)
    (again,) = await frontier.lease(1, "fast")
    assert again.attempts == first.attempts + 1
    assert not await frontier.ack(first), "the slow worker's lease was reclaimed"
    assert (await frontier.stats()).leased == 1
    assert await frontier.ack(again)
    stats = await frontier.stats()
    assert (stats.done, stats.leased) == (1, 0)
    assert host_rows(frontier) == {"a.test": (0, 0)}


async def test_a_done_task_in_a_batch_with_a_retry_keeps_both_right(
    frontier: SqliteFrontier,
) -> None:
    await frontier.add(["http://a.test/1", "http://a.test/2"])
    one, two = await frontier.lease(2, "w")
    done, retried = await asyncio.gather(frontier.ack(one), frontier.retry(two, 0, "reset"))
    assert done and retried
    stats = await frontier.stats()
    assert (stats.done, stats.queued, stats.leased, stats.retried) == (1, 1, 0, 1)
    assert host_rows(frontier)["a.test"][0] == 0
