"""Dedupe options: the exact set (default) and a Bloom filter with a configurable error rate.

Redis 8 and Redis Stack have `BF.*`; Debian's redis-server (7.x) has not, so there the frontier
falls back to its own Bloom filter in SETBIT bitsets ('bits'), which is what the real-server
tests check. fakeredis has `BF.*` (through pyprobables), which covers the 'bf' path.
"""

from __future__ import annotations

import dataclasses

import fakeredis
import pytest

from crawler.frontier import (
    FrontierConfigError,
    FrontierSettings,
    RedisFrontier,
    SqliteFrontier,
)
from crawler.frontier.bloom import bloom_shape
from crawler.urls import fingerprint
from tests.support.redis_server import RedisServer

from .conftest import new_job

CAPACITY = 4000


def distinct_urls(count: int, tag: str) -> list[str]:
    return [f"http://h{i % 40}.test/{tag}/{i}" for i in range(count)]


@pytest.fixture(params=["redis-bits", "fakeredis-bf"])
async def bloom_store(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """(how to open a frontier on the store, the dedupe mode the store must end up with)."""
    if request.param == "redis-bits":
        server: RedisServer = request.getfixturevalue("redis_server")
        opened: list[RedisFrontier] = []

        async def open_real(settings: FrontierSettings) -> RedisFrontier:
            frontier = await RedisFrontier.open(server.url, new_job(), settings)
            opened.append(frontier)
            return frontier

        yield open_real, "bits"
        for frontier in opened:
            await frontier.clear()
            await frontier.close()
    else:
        fake = fakeredis.FakeServer()
        clients: list[fakeredis.FakeAsyncRedis] = []

        async def open_fake(settings: FrontierSettings) -> RedisFrontier:
            client = fakeredis.FakeAsyncRedis(server=fake)
            clients.append(client)
            return await RedisFrontier.open(client, new_job(), settings)

        yield open_fake, "bf"
        for client in clients:
            await client.aclose()


def bloom(error_rate: float, partitions: int = 1) -> FrontierSettings:
    return FrontierSettings(
        per_host_limit=1000,
        dedupe="bloom",
        bloom_capacity=CAPACITY,
        bloom_error_rate=error_rate,
        partitions=partitions,
    )


async def test_bloom_dedupe_never_enqueues_a_url_twice(bloom_store) -> None:  # type: ignore[no-untyped-def]
    open_frontier, mode = bloom_store
    frontier = await open_frontier(bloom(0.01))
    assert frontier.dedupe_mode == mode
    urls = distinct_urls(CAPACITY, "a")
    first = await frontier.add(urls)
    again = await frontier.add(urls)
    assert (again.added, again.duplicates) == (0, CAPACITY), "a Bloom filter has no false negatives"
    assert first.added + first.duplicates == CAPACITY
    spellings = [u.replace("http://h", "HTTP://H").replace(".test/", ".TEST:80/") for u in urls]
    assert (await frontier.add(spellings[:50])).added == 0  # the same canonical URLs


@pytest.mark.parametrize("partitions", [1, 3])
async def test_bloom_false_positive_rate_follows_the_setting(bloom_store, partitions: int) -> None:  # type: ignore[no-untyped-def]
    open_frontier, _ = bloom_store
    rates = {}
    probes = CAPACITY // 5  # few, as each probe is also added and fills the filter further
    for error_rate in (0.05, 0.001):
        frontier = await open_frontier(bloom(error_rate, partitions))
        await frontier.add(distinct_urls(CAPACITY, "fill"))  # filled to capacity
        probe = await frontier.add(distinct_urls(probes, "probe"))  # all of them new
        rates[error_rate] = probe.duplicates / probes  # each duplicate is a false positive
    assert 0.05 / 2 < rates[0.05] < 0.05 * 2, rates  # a real Bloom filter, about as configured
    assert rates[0.001] <= 0.001 * 5, rates


async def test_exact_dedupe_has_no_false_positives(redis_server: RedisServer) -> None:
    async with await RedisFrontier.open(
        redis_server.url, new_job(), FrontierSettings(per_host_limit=1000)
    ) as frontier:
        assert frontier.dedupe_mode == "set"
        await frontier.add(distinct_urls(CAPACITY, "fill"))
        probe = await frontier.add(distinct_urls(CAPACITY, "probe"))
        assert (probe.added, probe.duplicates) == (CAPACITY, 0)
        await frontier.clear()


async def test_a_jobs_dedupe_choice_is_kept_when_it_is_joined(redis_server: RedisServer) -> None:
    job = new_job()
    async with await RedisFrontier.open(redis_server.url, job, bloom(0.01)) as first:
        await first.add(["http://a.test/1"])
        async with await RedisFrontier.open(
            redis_server.url, job, FrontierSettings(dedupe="exact")
        ) as joined:
            assert (joined.settings.dedupe, joined.dedupe_mode) == ("bloom", "bits")
            assert (await joined.add(["http://a.test/1"])).duplicates == 1
        await first.clear()


async def test_sqlite_refuses_bloom_dedupe_with_a_reason(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FrontierConfigError, match="dedupes exactly"):
        await SqliteFrontier.open(tmp_path / "f.sqlite", "job", bloom(0.01))


def test_bloom_shape_is_the_textbook_optimum() -> None:
    shape = bloom_shape(1_000_000, 0.01)
    assert 9_500_000 < shape.bits < 9_700_000  # m = -n ln p / (ln 2)^2 = 9.585 M
    assert shape.hashes == 7  # k = m/n ln 2 = 6.64
    assert bloom_shape(1_000_000, 0.0001).bits > 1.9 * shape.bits
    big = bloom_shape(1_000_000_000, 0.001)
    assert big.blocks > 1 and big.block_bits <= 1 << 31  # a Redis string holds 2^32 bits


def test_bit_positions_give_the_configured_rate() -> None:
    """The positions the Lua script sets, simulated in Python on a bytearray."""
    for error_rate in (0.02, 0.002):
        shape = bloom_shape(20_000, error_rate)
        bits = bytearray(shape.bits // 8 + 1)

        for url in distinct_urls(20_000, "fill"):
            for offset in shape.positions(fingerprint(url))[1]:
                bits[offset >> 3] |= 1 << (offset & 7)

        def seen(url: str, shape=shape, bits=bits) -> bool:  # type: ignore[no-untyped-def]
            offsets = shape.positions(fingerprint(url))[1]
            return all(bits[offset >> 3] & 1 << (offset & 7) for offset in offsets)

        false = sum(seen(url) for url in distinct_urls(20_000, "probe"))
        assert error_rate / 1.5 < false / 20_000 < error_rate * 1.5, (error_rate, false)


async def test_a_queued_url_found_nearer_takes_the_smaller_depth_with_bloom(bloom_store) -> None:  # type: ignore[no-untyped-def]
    # The filter only says "seen"; the task row says whether it waits, and at what depth.
    open_frontier, _ = bloom_store
    frontier = await open_frontier(bloom(0.01))
    await frontier.add(["http://near.test/", "http://a.test/"])
    pages = {t.url: t for t in await frontier.lease(10, "w")}
    deep = dataclasses.replace(pages["http://a.test/"], depth=2)
    assert await frontier.ack(deep, links=["http://a.test/x"])  # depth 3
    assert await frontier.ack(pages["http://near.test/"], links=["http://a.test/x"])  # 1
    (x,) = await frontier.lease(10, "w")
    assert (x.url, x.depth) == ("http://a.test/x", 1)
    assert (await frontier.stats()).duplicates == 1

