"""RedisFrontier against a real redis-server that misbehaves: emptied by a restart without
persistence, scripts flushed, out of memory, an ACL user without EVALSHA, slow answers, replies
lost after the command ran, connections killed, a non-default database.

Every failure must end in a clear error or a retry: never a hang (each test has a timeout and
calls are wrapped in `asyncio.wait_for`), a lost URL, a task counted twice, or a job that says
it is finished when it was only wiped.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import TypeVar

import pytest
import redis.asyncio as aioredis

from crawler.frontier import (
    Ack,
    FrontierConfigError,
    FrontierError,
    FrontierSettings,
    FrontierUnavailable,
    RedisFrontier,
)
from crawler.frontier.errors import FrontierJobLost
from crawler.frontier.redis_scripts import COMMIT, LEASE
from tests.support.binaries import require_binary
from tests.support.ports import free_port, wait_for_port
from tests.support.redis_server import RedisServer

from .conftest import TlsRedisServer, new_job

pytestmark = pytest.mark.timeout(120)

T = TypeVar("T")
FAST = FrontierSettings(per_host_limit=1000)
GUARD_S = 30.0  # a hang guard, far above what any call here should take


async def within(call: Awaitable[T], seconds: float = GUARD_S) -> T:
    return await asyncio.wait_for(call, seconds)


class DebugRedisServer(RedisServer):
    """redis-server that takes DEBUG from local clients (off by default since Redis 7)."""

    def start(self) -> None:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "no",
            "--enable-debug-command", "local",
            "--loglevel", "warning",
        ]  # fmt: skip
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.port)


@pytest.fixture
def debug_redis_server() -> Iterator[RedisServer]:
    server = DebugRedisServer(require_binary("redis-server"))
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def slow_admin(debug_redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(debug_redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def admin(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


# ---- a restart that empties the server -----------------------------------------------------


async def test_a_job_wiped_by_a_restart_without_persistence_is_an_error_not_finished(
    volatile_redis_server: RedisServer,
) -> None:
    server = volatile_redis_server
    frontier = await RedisFrontier.open(server.url, new_job(), FAST)
    client = aioredis.Redis.from_url(server.url)
    try:
        await frontier.add([f"http://a.test/{i}" for i in range(10)])
        (task,) = await frontier.lease(1, "w")
        await asyncio.to_thread(server.restart)  # no AOF, no RDB: everything is gone
        # An emptied job has no queued and no leased tasks: it must not look finished.
        with pytest.raises(FrontierJobLost, match="lost"):
            await within(frontier.is_finished())
        with pytest.raises(FrontierJobLost):
            await within(frontier.lease(5, "w"))
        # The ack of a page fetched before the wipe must not seed a new, partial job with its
        # links (the pages queued before would be missing from it, silently).
        with pytest.raises(FrontierJobLost):
            await within(frontier.ack(task, links=["http://a.test/new"]))
        assert await client.keys("*") == [], "the wiped job was partly re-created"
        assert issubclass(FrontierJobLost, FrontierError)
        assert not issubclass(FrontierJobLost, FrontierUnavailable), "no retry brings it back"
    finally:
        await client.aclose()
        await frontier.close()


async def test_a_job_restarted_with_aof_is_not_taken_for_a_wiped_one(
    own_redis_server: RedisServer,
) -> None:
    frontier = await RedisFrontier.open(own_redis_server.url, new_job(), FAST)
    try:
        await frontier.add([f"http://a.test/{i}" for i in range(3)])
        await asyncio.to_thread(own_redis_server.restart)
        assert not await within(frontier.is_finished())
        tasks = await within(frontier.lease(5, "w"))
        assert len(tasks) == 3
        assert all(await within(frontier.ack_many([Ack(t) for t in tasks])))
        assert await within(frontier.is_finished())
    finally:
        await frontier.close()


async def test_clear_still_leaves_a_usable_empty_job(redis_server: RedisServer) -> None:
    frontier = await RedisFrontier.open(redis_server.url, new_job(), FAST)
    try:
        await frontier.add(["http://a.test/1"])
        await frontier.clear()
        assert await frontier.is_finished()
        assert (await frontier.add(["http://a.test/1"])).added == 1
        await frontier.clear()
    finally:
        await frontier.close()


# ---- the script cache ----------------------------------------------------------------------


@pytest.mark.parametrize("partitions", [1, 4])
async def test_script_flush_mid_crawl_is_ridden_out_in_single_calls_and_pipelines(
    redis_server: RedisServer, admin: aioredis.Redis, partitions: int
) -> None:
    frontier = await RedisFrontier.open(
        redis_server.url, new_job(), FAST.replace(partitions=partitions)
    )
    try:
        await frontier.add([f"http://h{i}.test/" for i in range(16)])
        await admin.script_flush()
        tasks = await within(frontier.lease(16, "w"))
        assert len(tasks) == 16
        await admin.script_flush()
        # Links to every partition and acks: a pipeline of several EVALSHA, all NOSCRIPT.
        acks = [Ack(t, links=[f"http://h{i}.test/next"]) for i, t in enumerate(tasks)]
        assert all(await within(frontier.ack_many(acks)))
        stats = await frontier.stats()
        assert (stats.done, stats.queued, stats.leased) == (16, 16, 0)
        await frontier.clear()
    finally:
        await frontier.close()


# ---- out of memory -------------------------------------------------------------------------


async def test_writes_refused_by_maxmemory_are_a_clear_retryable_error_and_reads_still_work(
    redis_server: RedisServer, admin: aioredis.Redis
) -> None:
    job = new_job()
    frontier = await RedisFrontier.open(redis_server.url, job, FAST)
    before = await admin.config_get("maxmemory*")
    try:
        await frontier.add(["http://a.test/1"])
        await admin.config_set("maxmemory-policy", "noeviction")
        await admin.config_set("maxmemory", 1)  # every write is over the limit
        with pytest.raises(FrontierUnavailable, match="out of memory"):
            await within(frontier.add(["http://a.test/2"]))
        with pytest.raises(FrontierUnavailable, match="out of memory"):
            await within(frontier.lease(1, "w"))
        # Reading needs no memory: `crawl status` (which joins the job) still works.
        assert (await within(frontier.stats())).queued == 1
        async with await within(RedisFrontier.open(redis_server.url, job)) as reader:
            assert (await within(reader.stats())).queued == 1
        await admin.config_set("maxmemory", 0)
        (task,) = await within(frontier.lease(1, "w"))  # the same frontier works again
        assert await frontier.ack(task)
    finally:
        await admin.config_set("maxmemory", before["maxmemory"])
        await admin.config_set("maxmemory-policy", before["maxmemory-policy"])
        await frontier.clear()
        await frontier.close()


# ---- ACLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "refused"),
    [(["-evalsha"], "evalsha"), (["-@scripting"], "script")],
    ids=["no-evalsha", "no-scripting"],
)
async def test_an_acl_user_without_script_rights_gets_a_config_error_at_once(
    redis_server: RedisServer, admin: aioredis.Redis, rules: list[str], refused: str
) -> None:
    user = f"crawler-{new_job()}"
    await admin.acl_setuser(
        user, enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", *rules]
    )
    url = f"redis://{user}:pw@127.0.0.1:{redis_server.port}/0"
    job = new_job()
    try:
        with pytest.raises(FrontierConfigError, match=f"(?i)NOPERM.*{refused}"):
            frontier = await within(RedisFrontier.open(url, job, FAST), 5)
            try:
                await within(frontier.add(["http://a.test/"]), 5)
                await within(frontier.lease(1, "w"), 5)
            finally:
                await frontier.close()
    finally:
        await admin.acl_deluser(user)
        async with await RedisFrontier.open(redis_server.url, job) as leftover:
            await leftover.clear()


# ---- a slow server -------------------------------------------------------------------------


async def test_a_server_slower_than_the_socket_timeout_is_reported_and_replies_never_mix(
    debug_redis_server: RedisServer, slow_admin: aioredis.Redis
) -> None:
    frontier = await RedisFrontier.open(debug_redis_server.url, new_job(), FAST, socket_timeout=0.5)
    try:
        await frontier.add([f"http://a.test/{i}" for i in range(4)])
        sleeper = asyncio.create_task(slow_admin.execute_command("DEBUG", "SLEEP", "2"))
        await asyncio.sleep(0.1)
        with pytest.raises(FrontierUnavailable):
            await within(frontier.lease(2, "w"))
        await sleeper
        # The lease above may have run after the sleep with its reply unread: whatever it
        # did, the next calls get their own replies, not that one.
        stats = await within(frontier.stats())
        tasks = await within(frontier.lease(4, "w"))
        assert stats.queued + stats.leased == 4
        assert {t.url for t in tasks} <= {f"http://a.test/{i}" for i in range(4)}
        assert all(await within(frontier.ack_many([Ack(t) for t in tasks])))
        await frontier.clear()
    finally:
        await frontier.close()


async def test_a_server_slower_than_the_ride_out_but_within_the_timeout_just_answers_late(
    debug_redis_server: RedisServer, slow_admin: aioredis.Redis
) -> None:
    frontier = await RedisFrontier.open(debug_redis_server.url, new_job(), FAST)
    try:
        await frontier.add(["http://a.test/1"])
        sleeper = asyncio.create_task(slow_admin.execute_command("DEBUG", "SLEEP", "1"))
        await asyncio.sleep(0.1)
        (task,) = await within(frontier.lease(1, "w"))
        await sleeper
        assert await within(frontier.ack(task))
        assert await frontier.is_finished()
        await frontier.clear()
    finally:
        await frontier.close()


# ---- replies lost after the command ran ----------------------------------------------------


class ReplyDropper:
    """A TCP proxy in front of redis-server that, when armed, forwards the next command
    containing `marker` and then cuts the client's connection before the reply comes back:
    the command ran, its caller never heard. Everything else passes through."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.marker: bytes | None = None
        self.dropped = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def arm(self, marker: bytes) -> None:
        self.marker = marker

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        cut = asyncio.Event()

        async def client_to_server() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()
                if self.marker is not None and self.marker in data:
                    self.marker = None
                    # No reply goes back from now on; the server gets time to run the command,
                    # then the client's connection is closed.
                    cut.set()
                    self.dropped += 1
                    await asyncio.sleep(0.2)
                    return

        async def server_to_client() -> None:
            while not cut.is_set() and (data := await up_reader.read(65536)):
                if cut.is_set():
                    # Held back until the other direction has let the server run the command.
                    await asyncio.sleep(0.3)
                    return
                writer.write(data)
                await writer.drain()

        pipes = [asyncio.create_task(client_to_server()), asyncio.create_task(server_to_client())]
        self._pipes.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            self._pipes.difference_update(pipes)
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()


@pytest.fixture
async def dropper(redis_server: RedisServer) -> AsyncIterator[ReplyDropper]:
    proxy = ReplyDropper(redis_server.port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


async def test_an_ack_batch_whose_reply_was_lost_is_settled_once_and_reported_settled(
    dropper: ReplyDropper, redis_server: RedisServer
) -> None:
    frontier = await RedisFrontier.open(dropper.url, new_job(), FAST)
    try:
        await frontier.add([f"http://a.test/{i}" for i in range(8)])
        tasks = await within(frontier.lease(8, "w"))
        dropper.arm(COMMIT.sha.encode())
        acks = [Ack(t, links=[f"{t.url}/child"]) for t in tasks]
        results = await within(frontier.ack_many(acks))
        assert dropper.dropped == 1, "the proxy did not lose a reply"
        stats = await frontier.stats()
        assert (stats.done, stats.leased, stats.queued) == (8, 0, 8), stats
        assert stats.added == 16 and stats.duplicates == 0, "the retry counted links again"
        # The retry found the batch already settled: those acks did land, and the worker must
        # hear so (it forgets the links it sent when an ack did not go through).
        assert results == [True] * 8
        await frontier.clear()
    finally:
        await frontier.close()


async def test_a_lease_whose_reply_was_lost_does_not_strand_tasks_until_their_deadline(
    dropper: ReplyDropper,
) -> None:
    frontier = await RedisFrontier.open(dropper.url, new_job(), FAST.replace(max_attempts=1))
    try:
        await frontier.add([f"http://a.test/{i}" for i in range(4)])
        dropper.arm(LEASE.sha.encode())
        tasks = await within(frontier.lease(2, "w"))
        assert dropper.dropped == 1
        stats = await frontier.stats()
        # What the retried call handed out is all that is leased: nothing was leased twice
        # over, to expire (and with max_attempts=1, die) unfetched a lease later.
        assert len(tasks) == 2 and stats.leased == 2, stats
        assert all(await within(frontier.ack_many([Ack(t) for t in tasks])))
        rest = await within(frontier.lease(4, "w"))
        assert len(rest) == 2
        assert all(await within(frontier.ack_many([Ack(t) for t in rest])))
        assert await frontier.is_finished()
        assert (await frontier.stats()).dead == 0
        await frontier.clear()
    finally:
        await frontier.close()


# ---- killed connections, other databases ---------------------------------------------------


async def test_client_kill_of_the_frontiers_connections_is_ridden_out(
    redis_server: RedisServer, admin: aioredis.Redis
) -> None:
    frontier = await RedisFrontier.open(redis_server.url, new_job(), FAST)
    try:
        await frontier.add([f"http://a.test/{i}" for i in range(20)])
        done = 0
        for _ in range(5):
            tasks = await within(frontier.lease(4, "w"))
            await admin.client_kill_filter(_type="normal", skipme=True)
            assert all(await within(frontier.ack_many([Ack(t) for t in tasks])))
            done += len(tasks)
        stats = await frontier.stats()
        assert (stats.done, stats.queued, stats.leased) == (20, 0, 0)
        await frontier.clear()
    finally:
        await frontier.close()


async def test_a_url_with_a_database_number_keeps_the_job_in_that_database(
    redis_server: RedisServer,
) -> None:
    job = new_job()
    url3 = f"redis://127.0.0.1:{redis_server.port}/3"
    db0 = aioredis.Redis.from_url(redis_server.url)
    db3 = aioredis.Redis.from_url(url3)
    try:
        async with await RedisFrontier.open(url3, job, FAST) as frontier:
            await frontier.add(["http://a.test/"])
            assert await RedisFrontier.job_exists(url3, job)
            assert not await RedisFrontier.job_exists(redis_server.url, job)
            assert await db3.keys(f"crawl:{{{job}*") != []
            assert await db0.keys(f"crawl:{{{job}*") == []
            await frontier.clear()
    finally:
        await db0.aclose()
        await db3.aclose()


async def test_a_rediss_url_with_a_database_and_its_ca_in_the_query_needs_no_options(
    tls_redis_server: TlsRedisServer,
) -> None:
    """What `--redis` gets on the command line: everything in the URL."""
    server = tls_redis_server
    job = new_job()
    url = f"rediss://:{server.password}@127.0.0.1:{server.port}/2?ssl_ca_certs={server.ca_file}"
    async with await within(RedisFrontier.open(url, job, FAST)) as frontier:
        await frontier.add(["https://a.test/"])
        (task,) = await within(frontier.lease(1, "w"))
        assert await frontier.ack(task)
        assert await RedisFrontier.job_exists(url, job)
        db0 = url.replace("/2?", "/0?")
        assert not await RedisFrontier.job_exists(db0, job)
        await frontier.clear()
    with pytest.raises(FrontierConfigError, match="certificate verify failed"):
        await within(RedisFrontier.open(url.split("?")[0], job), 10)
