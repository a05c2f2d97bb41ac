"""Scale: 1,000,000 URLs over 10,000 hosts added to a real redis-server and drained.

Marked slow (CI runs it). It asserts that every URL came out exactly once and that the
counters agree, and reports adds/s, lease+ack/s and the server's memory per URL (INFO memory)
in the test output and as junit properties. The figures are reported, not asserted: the
machine is shared, so timings are noisy (scripts/bench/frontier.py compares fairly).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis

from crawler.frontier import Ack, FrontierSettings, RedisFrontier
from tests.support.binaries import require_binary
from tests.support.redis_server import RedisServer

URLS = 1_000_000
HOSTS = 10_000
ADD_BATCH = 10_000
LEASE_BATCH = 128
LEASERS = 4  # concurrent lease/ack loops: Python and Redis work at the same time


@pytest.fixture
def fresh_redis() -> Iterator[RedisServer]:
    """A server of this test's own, so its memory figures are ours alone."""
    server = RedisServer(require_binary("redis-server"))
    server.start()
    try:
        yield server
    finally:
        server.close()


def url_of(i: int) -> str:
    return f"http://h{i % HOSTS}.scale.test/p/{i}"


async def used_memory(client: aioredis.Redis) -> int:
    return int((await client.info("memory"))["used_memory"])


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_a_million_urls_over_ten_thousand_hosts(
    fresh_redis: RedisServer,
    capsys: pytest.CaptureFixture[str],
    record_property,  # type: ignore[no-untyped-def]
) -> None:
    settings = FrontierSettings(per_host_limit=2, lease_seconds=600)
    frontier = await RedisFrontier.open(fresh_redis.url, "scale", settings)
    probe = aioredis.Redis.from_url(fresh_redis.url)
    try:
        empty = await used_memory(probe)
        started = time.perf_counter()
        for first in range(0, URLS, ADD_BATCH):
            result = await frontier.add([url_of(i) for i in range(first, first + ADD_BATCH)])
            assert (result.added, result.duplicates) == (ADD_BATCH, 0)
        add_seconds = time.perf_counter() - started
        full = await used_memory(probe)
        stats = await frontier.stats()
        assert (stats.queued, stats.hosts_with_backlog) == (URLS, HOSTS)

        times_leased = bytearray(URLS)
        acked = 0

        async def drain(worker: str) -> None:
            nonlocal acked
            while tasks := await frontier.lease(LEASE_BATCH, worker):
                for task in tasks:
                    times_leased[int(task.url.rsplit("/", 1)[1])] += 1
                results = await frontier.ack_many([Ack(task) for task in tasks])
                assert all(results)
                acked += len(results)

        started = time.perf_counter()
        await asyncio.gather(*(drain(f"w{i}") for i in range(LEASERS)))
        drain_seconds = time.perf_counter() - started
        drained = await used_memory(probe)

        assert acked == URLS
        assert times_leased.count(1) == URLS, "every URL must be leased exactly once"
        stats = await frontier.stats()
        assert (stats.done, stats.queued, stats.leased, stats.expired) == (URLS, 0, 0, 0)
        assert await frontier.is_finished()
        assert (await frontier.add([url_of(i) for i in range(0, URLS, 997)])).added == 0

        figures = {
            "adds_per_s": round(URLS / add_seconds),
            "lease_ack_per_s": round(URLS / drain_seconds),
            "redis_bytes_per_queued_url": round((full - empty) / URLS),
            "redis_bytes_per_done_url": round((drained - empty) / URLS),
        }
        for name, value in figures.items():
            record_property(name, value)
        with capsys.disabled():
            print(
                f"\nfrontier scale, redis, {URLS:,} URLs / {HOSTS:,} hosts: "
                f"{figures['adds_per_s']:,} adds/s, "
                f"{figures['lease_ack_per_s']:,} lease+ack/s (batches of {LEASE_BATCH}, "
                f"{LEASERS} loops), {figures['redis_bytes_per_queued_url']} B/URL queued, "
                f"{figures['redis_bytes_per_done_url']} B/URL done (dedupe set)"
            )
    finally:
        await probe.aclose()
        await frontier.close()
