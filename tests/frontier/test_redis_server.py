"""RedisFrontier against real redis-servers: round trips, key scheme, TLS and passwords,
and a server that goes away and comes back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.crc import key_slot

from crawler.frontier import (
    Ack,
    FrontierConfigError,
    FrontierSettings,
    FrontierUnavailable,
    RedisFrontier,
)
from crawler.frontier.redis_backend import RIDE_OUT_SECONDS
from crawler.frontier.redis_keys import JobKeys, PartitionKeys
from crawler.frontier.redis_scripts import LEASE
from tests.support.redis_server import RedisServer

from .conftest import TlsRedisServer, new_job

FAST = FrontierSettings(per_host_limit=1000)


class RoundTrips:
    """Counts writes of commands to Redis sockets: one per command, one per pipeline."""

    def __init__(self) -> None:
        self.count = 0

    @contextmanager
    def counting(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundTrips]:
        original = AbstractConnection.send_packed_command

        async def send(conn, command, check_health=True):  # type: ignore[no-untyped-def]
            self.count += 1
            return await original(conn, command, check_health)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", send)
        try:
            yield self
        finally:
            monkeypatch.setattr(AbstractConnection, "send_packed_command", original)

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


@pytest.fixture
async def real(redis_server: RedisServer) -> AsyncIterator[list[RedisFrontier]]:
    opened: list[RedisFrontier] = []
    yield opened
    for frontier in opened:
        await frontier.clear()
        await frontier.close()


# ---- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("partitions", [1, 4])
async def test_one_round_trip_per_lease_and_per_ack_batch_whatever_its_size(
    redis_server: RedisServer,
    real: list[RedisFrontier],
    monkeypatch: pytest.MonkeyPatch,
    partitions: int,
) -> None:
    settings = FAST.replace(partitions=partitions)
    frontier = await RedisFrontier.open(redis_server.url, new_job(), settings)
    real.append(frontier)
    await frontier.add([f"http://h{i % 50}.test/{i}" for i in range(1000)])
    await frontier.lease(1, "warm-up")  # the first lease of each partition: nothing special
    trips = RoundTrips()
    with trips.counting(monkeypatch):
        for size in (1, 16, 128):
            tasks = await frontier.lease(size, "w")
            assert len(tasks) == size
            if partitions == 1:  # with several, a lease walks on while partitions run dry
                assert trips.take() == 1, f"lease of {size}"
            trips.take()
            acks = [Ack(t, links=[f"{t.url}/a", f"http://h{i}.test/b"])
                    for i, t in enumerate(tasks)]  # fmt: skip
            results = await frontier.ack_many(acks)
            assert all(results)
            assert trips.take() == 1, f"ack_many of {size} with links over {partitions} partitions"
        tasks = await frontier.lease(128, "w")
        trips.take()
        assert all(await asyncio.gather(*(frontier.ack(t) for t in tasks)))
        assert trips.take() == 1, "128 concurrent acks are one group commit"


# ---- key scheme ----------------------------------------------------------------------------


def test_every_key_a_script_touches_shares_its_partitions_slot() -> None:
    job = "cluster-job"
    slots = set()
    for index in range(8):
        part = PartitionKeys(job, index)
        per_host = [part.queue("a.test"), part.host("b.test:8080"), part.bloom_block(3),
                    part.robots("https://c.test"), part.robots_claim("https://c.test")]  # fmt: skip
        part_slots = {key_slot(key.encode()) for key in [*part.script_keys, *per_host]}
        assert len(part_slots) == 1, f"partition {index} spans slots {part_slots}"
        slots |= part_slots
    assert len(slots) == 8, "partitions must spread over different slots"
    keys = JobKeys(job)
    assert key_slot(keys.config.encode()) == key_slot(keys.seed_hosts.encode())


async def test_all_keys_of_a_job_are_under_its_prefix_and_clear_removes_them(
    redis_server: RedisServer, real: list[RedisFrontier]
) -> None:
    job = new_job()
    frontier = await RedisFrontier.open(redis_server.url, job, FAST.replace(partitions=4))
    real.append(frontier)
    other = await RedisFrontier.open(redis_server.url, new_job(), FAST)
    real.append(other)
    await other.add(["http://untouched.test/"])
    await frontier.add([f"http://h{i}.test/" for i in range(12)])
    tasks = await frontier.lease(6, "w")
    await frontier.ack_many([Ack(t, links=[t.url + "x"]) for t in tasks[:3]])
    await frontier.fail(tasks[3], "HTTP 404")
    await frontier.retry(tasks[4], 30, "reset")
    await frontier.set_host_delay("h1.test", 1)
    await frontier.robots_put("http://h1.test", b"entry", 60)
    await frontier.robots_claim("http://h2.test", "me", 60)
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        keys = [k.decode() async for k in client.scan_iter(match=f"crawl:{{{job}*")]
        assert len(keys) > 20
        tags = {key.split("}", 1)[0] + "}" for key in keys}
        assert tags <= {f"crawl:{{{job}}}", *(f"crawl:{{{job}/{p}}}" for p in range(4))}
        assert len(tags) >= 4, tags
        await frontier.clear()
        assert [k async for k in client.scan_iter(match=f"crawl:{{{job}*")] == []
        assert (await other.stats()).queued == 1, "clear touched another job"
    finally:
        await client.aclose()


# ---- TLS and passwords ---------------------------------------------------------------------


async def test_rediss_with_a_password_works_end_to_end(tls_redis_server: TlsRedisServer) -> None:
    url = tls_redis_server.url
    assert url.startswith("rediss://:")
    job = new_job()
    async with await RedisFrontier.open(
        url, job, FAST, ssl_ca_certs=tls_redis_server.ca_file
    ) as frontier:
        await frontier.add(["https://a.test/"])
        (task,) = await frontier.lease(1, "w")
        assert await frontier.ack(task, links=["https://a.test/next"])
        assert [t.url for t in await frontier.lease(5, "w")] == ["https://a.test/next"]
        await frontier.clear()


@pytest.mark.parametrize("password", ["wrong", None], ids=["wrong-password", "no-password"])
async def test_refused_credentials_fail_at_once_with_a_config_error(
    tls_redis_server: TlsRedisServer, password: str | None
) -> None:
    started = time.monotonic()
    with pytest.raises(FrontierConfigError, match=f"127.0.0.1:{tls_redis_server.port}"):
        await RedisFrontier.open(
            tls_redis_server.url_with(password), new_job(), ssl_ca_certs=tls_redis_server.ca_file
        )
    assert time.monotonic() - started < RIDE_OUT_SECONDS, "refused credentials were retried"


async def test_an_untrusted_server_certificate_fails_at_once(
    tls_redis_server: TlsRedisServer,
) -> None:
    started = time.monotonic()
    with pytest.raises(FrontierConfigError, match="certificate verify failed"):
        await RedisFrontier.open(tls_redis_server.url, new_job())  # our test CA not trusted
    assert time.monotonic() - started < RIDE_OUT_SECONDS


# ---- the server goes away ------------------------------------------------------------------


async def test_a_server_that_is_gone_raises_frontier_unavailable_without_hanging(
    own_redis_server: RedisServer,
) -> None:
    frontier = await RedisFrontier.open(own_redis_server.url, "gone", FAST)
    try:
        await frontier.add(["http://a.test/1"])
        own_redis_server.stop()
        for call in (frontier.lease(1, "w"), frontier.is_finished(), frontier.stats()):
            started = time.monotonic()
            with pytest.raises(FrontierUnavailable, match=f"127.0.0.1:{own_redis_server.port}"):
                await call
            waited = time.monotonic() - started
            assert RIDE_OUT_SECONDS <= waited < 2 * RIDE_OUT_SECONDS + 1, waited
        own_redis_server.start()
        (task,) = await frontier.lease(1, "w")  # the same frontier works again
        assert await frontier.ack(task)
    finally:
        await frontier.close()


async def test_scripts_a_restarted_server_lost_are_loaded_again(
    own_redis_server: RedisServer,
) -> None:
    frontier = await RedisFrontier.open(own_redis_server.url, "reload", FAST)
    client = aioredis.Redis.from_url(own_redis_server.url)
    try:
        await frontier.add(["http://a.test/1", "http://a.test/2"])
        own_redis_server.restart()  # AOF keeps the data, not the script cache
        assert await client.script_exists(LEASE.sha) == [False]
        assert len(await frontier.lease(5, "w")) == 2
        assert await client.script_exists(LEASE.sha) == [True]
    finally:
        await client.aclose()
        await frontier.close()


async def crawl_through(
    server: RedisServer, outage: float, urls: int = 240
) -> tuple[RedisFrontier, list[str], list[FrontierUnavailable]]:
    """4 workers crawl while the server is stopped for `outage` seconds and started again
    (AOF on: the data survives). Workers treat FrontierUnavailable as any worker should: wait
    a moment and carry on; a task whose ack was lost comes back when its lease expires."""
    settings = FrontierSettings(per_host_limit=4, lease_seconds=2.0, max_attempts=10)
    frontier = await RedisFrontier.open(server.url, new_job(), settings)
    await frontier.add([f"http://h{i % 6}.test/{i}" for i in range(urls)])
    acked: list[str] = []
    errors: list[FrontierUnavailable] = []

    async def work(name: str) -> None:
        while True:
            try:
                tasks = await frontier.lease(4, name)
                if not tasks:
                    if await frontier.is_finished():
                        return
                    await asyncio.sleep(0.01)
                    continue
                for task in tasks:
                    await asyncio.sleep(0.002)
                    if await frontier.ack(task):
                        acked.append(task.id)
            except FrontierUnavailable as exc:
                errors.append(exc)
                await asyncio.sleep(0.2)

    workers = [asyncio.create_task(work(f"w{i}")) for i in range(4)]
    try:
        while len(acked) < urls // 4:
            await asyncio.sleep(0.005)
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(outage)
        await asyncio.to_thread(server.start)
        await asyncio.wait_for(asyncio.gather(*workers), 90)
    finally:
        for worker in workers:
            worker.cancel()
    return frontier, acked, errors


async def test_a_quick_restart_is_ridden_out(own_redis_server: RedisServer) -> None:
    frontier, acked, errors = await crawl_through(own_redis_server, outage=0.2)
    try:
        assert errors == [], "an outage shorter than the ride-out reached the caller"
        stats = await frontier.stats()
        assert (stats.done, stats.dead, stats.queued, stats.leased) == (240, 0, 0, 0)
        assert len(acked) == len(set(acked))
    finally:
        await frontier.close()


async def test_a_long_outage_raises_frontier_unavailable_then_the_crawl_resumes(
    own_redis_server: RedisServer,
) -> None:
    frontier, acked, errors = await crawl_through(own_redis_server, outage=2 * RIDE_OUT_SECONDS + 1)
    try:
        assert errors, "callers must hear that the store is gone"
        assert all(f"127.0.0.1:{own_redis_server.port}" in str(e) for e in errors)
        stats = await frontier.stats()
        assert (stats.done, stats.dead, stats.queued, stats.leased) == (240, 0, 0, 0)
        assert len(acked) == len(set(acked)), "a task was counted twice"
        assert await frontier.is_finished()
    finally:
        await frontier.close()
