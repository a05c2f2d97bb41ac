"""`RedisFrontier`: the frontier many machines share, on one Redis (6.2+) or a Cluster.

Every step that touches several keys is one Lua script on one partition (redis_scripts.py),
with keys from redis_keys.py. A lease is one EVALSHA; a batch of acks is one EVALSHA per
touched partition, pipelined, so one round trip either way (with the default single
partition, one script call). Links found on a page are enqueued in the same script call as the
page's ack when they share its partition; links of other partitions go earlier in the same
pipeline, so an ack never lands without its links (docs/frontier.md).

Connection trouble is retried by redis-py with jittered exponential backoff: an outage
shorter than `RIDE_OUT_SECONDS` (a restart) is ridden out, and the scripts are loaded again
when the restarted server lost them; a server that stays away longer makes the call raise
`FrontierUnavailable` naming it, after at most about twice that. A LEASE or COMMIT resent
after a lost reply (the script ran, the connection dropped before its answer) is answered
from what the first run did, kept under the call's id for `CALL_MEMORY_MS`: no task is leased
twice over to strand until its deadline, no ack reported unsettled, no link counted twice.
Refused credentials and an untrusted TLS certificate are not retried: they raise
`FrontierConfigError` at once, as do refused commands (an ACL user without EVALSHA).
Error replies of a server that cannot write now (OOM at maxmemory, MISCONF, READONLY, BUSY)
raise `FrontierUnavailable` saying so: callers try again later.

A job carries an incarnation token, in its config and in every partition's meta, which each
script and `is_finished` check: a job wiped under the crawl (Redis restarted without
persistence, flushed) raises `FrontierJobLost` instead of passing for finished with nothing
queued, or being rebuilt, partially, from the links of pages in flight.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ParamSpec, TypeVar

import msgpack
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import AuthenticationError, NoPermissionError, NoScriptError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from crawler.urls import canonical_parts

from .admission import Admitted, partition_of, unpack_body
from .base import CommitResult, FrontierBase, Settle
from .bloom import bloom_shape
from .errors import FrontierConfigError, FrontierError, FrontierJobLost, FrontierUnavailable
from .redis_keys import JobKeys, PartitionKeys
from .redis_scripts import (
    COMMIT,
    JOB_LOST_CODE,
    LEASE,
    RECOVER,
    RENEW,
    SCRIPTS,
    SET_DELAY,
    Script,
)
from .settings import FrontierSettings
from .task import FinalRecord, FinalState, FrontierStats, HostBacklog, Task

__all__ = ["RedisFrontier", "redis_client"]

P = ParamSpec("P")
R = TypeVar("R")

PRIORITY_SHIFT = 41  # score = -priority * 2^41 + arrival; exact in a double (see task.py)
RECLAIM_PER_LEASE = 1000
_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
_FINAL_STATES = {b"S": FinalState.SKIPPED, b"F": FinalState.FAILED, b"X": FinalState.DEAD}

# Retries back off 0.05, 0.1, 0.2, 0.4, then 0.5 s (each with up to as much again of jitter):
# eight of them wait between 2.75 and 5.5 s in all. So an outage shorter than RIDE_OUT_SECONDS
# (a restart, a failover) never reaches the caller, and a call never waits much past
# 2 * RIDE_OUT_SECONDS for a server that is gone before it raises FrontierUnavailable.
RETRIES = 8
RIDE_OUT_SECONDS = 2.75


def redis_client(url: str, **options: Any) -> aioredis.Redis:
    """A client for redis://, rediss:// (TLS) and unix:// URLs, passwords included, that
    retries dropped connections (a server restart) for a few seconds before giving up.

    redis+cluster:// and rediss+cluster:// name any node of a Redis Cluster: the client is a
    `RedisCluster`, which finds the others and sends each partition's keys to its node."""
    options.setdefault("socket_connect_timeout", 5)
    options.setdefault("socket_timeout", 30)
    options.setdefault("health_check_interval", 30)
    options.setdefault("retry", _Retry())
    options.setdefault("retry_on_error", [RedisConnectionError])
    scheme, _, rest = url.partition("://")
    if scheme in CLUSTER_SCHEMES:
        from redis.asyncio.cluster import RedisCluster

        plain = f"{scheme.removesuffix('+cluster')}://{rest}"
        return RedisCluster.from_url(plain, **options)  # type: ignore[return-value]
    return aioredis.Redis.from_url(url, **options)


CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


class _Retry(Retry):
    """redis-py's retry loop (the same steps, written out because its signature changed
    between redis-py 5 and 8), minus what no retry can fix: refused credentials and an
    untrusted TLS certificate. Timeouts are not among the retried errors either: a server that
    is up but silent for socket_timeout is reported, not waited on eight times over."""

    def __init__(self) -> None:
        backoff = EqualJitterBackoff(cap=1.0, base=0.05)
        super().__init__(backoff, RETRIES, supported_errors=(RedisConnectionError,))

    async def call_with_retry(  # type: ignore[override]
        self,
        do: Callable[[], Awaitable[R]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> R:
        self._backoff.reset()
        failures = 0
        while True:
            try:
                return await do()
            except self._supported_errors as error:
                if _hopeless(error) or (is_retryable is not None and not is_retryable(error)):
                    raise
                failures += 1
                await (fail(error, failures) if with_failure_count else fail(error))
                if failures > self._retries:
                    raise
                await asyncio.sleep(self._backoff.compute(failures))


def _hopeless(error: BaseException) -> bool:
    """Errors a retry cannot fix: the server refused our credentials or TLS certificate."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, AuthenticationError | ssl.SSLCertVerificationError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return "certificate verify failed" in str(error).lower()


def _store_error(where: str, job: str, exc: BaseException) -> Exception:
    if _hopeless(exc):
        message = f"redis at {where} refused the connection of job {job!r}: {exc}"
        return FrontierConfigError(message)
    return FrontierUnavailable(f"redis at {where} unreachable for job {job!r}: {exc}")


# Error replies that say the server cannot take writes now, not that the request is wrong:
# they pass (memory freed, a save that works again, a failover done), so callers try again.
_TRANSIENT_REPLIES = {
    "OOM": "is out of memory (maxmemory reached; free memory or raise maxmemory)",
    "MISCONF": "refuses writes (it cannot save its data; see its log)",
    "READONLY": "is a read-only replica (a failover in progress?)",
    "BUSY": "is busy running a script",
    "MASTERDOWN": "is a replica that lost its master",
    "TRYAGAIN": "asks to try again (a cluster reshard)",
    "CLUSTERDOWN": "is part of a cluster that is down",
}


def _reply_error(where: str, job: str, exc: ResponseError) -> FrontierError | None:
    """The frontier error an error reply of the server means; None for one that is a bug of
    ours (a script error), which is left to surface as it is.

    redis-py strips the reply's code from some exceptions (OutOfMemoryError, ReadOnlyError,
    NoPermissionError keep only the text), so their class tells as well as the code."""
    text = str(exc)
    code = text.split(" ", 1)[0]
    if JOB_LOST_CODE in text:
        return FrontierJobLost(
            f"job {job!r} is gone from redis at {where} (lost: the server was emptied under the "
            "crawl, restarted without persistence or flushed); it cannot go on: seed it again "
            "with `crawl run`, and run Redis with appendonly yes to keep jobs across restarts"
        )
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "OutOfMemoryError" in names:
        code = "OOM"
    elif "ReadOnlyError" in names:
        code = "READONLY"
    if code in _TRANSIENT_REPLIES:
        return FrontierUnavailable(
            f"redis at {where} {_TRANSIENT_REPLIES[code]}, for job {job!r}: {text}"
        )
    if isinstance(exc, NoPermissionError) or code in ("NOPERM", "NOAUTH", "WRONGPASS"):
        return FrontierConfigError(
            f"redis at {where} refused a command of job {job!r}: NOPERM {text} (its user needs "
            "the read, write and scripting commands on the job's keys: +@all ~crawl:*)"
        )
    return None


def _translated(where: str, job: str, exc: BaseException) -> BaseException:
    """What a call that failed with `exc` raises."""
    if isinstance(exc, _DOWN):
        return _store_error(where, job, exc)
    if isinstance(exc, ResponseError):
        return _reply_error(where, job, exc) or exc
    return exc


def _store_call(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn redis-py's connection errors (after its retries) into FrontierUnavailable, and
    error replies into the frontier errors they mean (see `_reply_error`)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (*_DOWN, ResponseError) as exc:
            self = args[0]
            error = _translated(self._where, self.job, exc)  # type: ignore[attr-defined]
            if error is exc:
                raise
            raise error from exc

    return wrapper


def _where(client: aioredis.Redis) -> str:
    """The server, for error messages ("host:port", a socket path, or a cluster's node)."""
    pool = getattr(client, "connection_pool", None)
    if pool is None:  # a RedisCluster client: it has nodes, not one pool
        node = getattr(client, "get_default_node", lambda: None)()
        return f"cluster {node.host}:{node.port}" if node is not None else "cluster"
    kwargs = pool.connection_kwargs
    return kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"


class RedisFrontier(FrontierBase):
    """The `Frontier` on Redis. Build it with `await RedisFrontier.open(url_or_client, job)`."""

    def __init__(
        self,
        client: aioredis.Redis,
        job: str,
        settings: FrontierSettings,
        *,
        dedupe_mode: str,
        owns_client: bool,
    ) -> None:
        super().__init__(job, settings)
        self._client = client
        self._owns_client = owns_client
        self._cluster = not hasattr(client, "connection_pool")  # a RedisCluster client
        self._job_keys = JobKeys(job)
        self._parts = [PartitionKeys(job, p) for p in range(settings.partitions)]
        self._dedupe_mode = dedupe_mode
        self._bloom = bloom_shape(
            max(1, settings.bloom_capacity // settings.partitions), settings.bloom_error_rate
        )
        self._cursor = 0
        self._where = _where(client)
        # The job's incarnation (see `_mark_partitions`); '' checks nothing.
        self._token = ""

    @classmethod
    async def open(
        cls,
        target: str | aioredis.Redis,
        job: str,
        settings: FrontierSettings | None = None,
        **redis_options: Any,
    ) -> RedisFrontier:
        """Connect, create the job or join it (stored job-defining settings win)."""
        owns = isinstance(target, str)
        client = redis_client(target, **redis_options) if isinstance(target, str) else target
        keys = JobKeys(job)
        try:
            settings, mode, token = await _create_or_join(client, keys, settings)
            frontier = cls(client, job, settings, dedupe_mode=mode, owns_client=owns)
            frontier._token = token
            await frontier._prepare()
        except (*_DOWN, ResponseError) as exc:
            if owns:
                await client.aclose()
            error = _translated(_where(client), job, exc)
            if error is exc:
                raise
            raise error from exc
        except BaseException:
            if owns:
                await client.aclose()
            raise
        return frontier

    @classmethod
    async def job_exists(cls, target: str, job: str, **redis_options: Any) -> bool:
        """Whether `job` was created on this Redis (its settings are stored), read without
        writing anything: `open` would create it."""
        client = redis_client(target, **redis_options)
        try:
            return bool(await client.exists(JobKeys(job).config))
        except (*_DOWN, ResponseError) as exc:
            error = _translated(_where(client), job, exc)
            if error is exc:
                raise
            raise error from exc
        finally:
            await client.aclose()

    @property
    def dedupe_mode(self) -> str:
        """How this job dedupes: 'set' (exact), 'bf' (the server's BF.* Bloom filter) or
        'bits' (our own Bloom filter in SETBIT bitsets, on servers without BF.*)."""
        return self._dedupe_mode

    async def _prepare(self) -> None:
        if self._dedupe_mode == "bf":
            for part in self._parts:
                try:
                    await self._client.execute_command(
                        "BF.RESERVE",
                        part.seen,
                        self.settings.bloom_error_rate,
                        max(1, self.settings.bloom_capacity // len(self._parts)),
                    )
                except ResponseError as exc:
                    if "exists" not in str(exc).lower():
                        raise
        await self._mark_partitions()
        await self._load_scripts()

    async def _mark_partitions(self) -> None:
        """Make sure every partition carries the job's incarnation token, which each script
        and `is_finished` check: a partition without it was emptied under the crawl. Written
        only where missing (a job made before tokens existed, or a new one), so joining an
        existing job writes nothing (it then works on a server out of memory too)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for part in self._parts:
                pipe.hget(part.meta, "job")
            found = await pipe.execute()
        token = self._token.encode()
        if any(value not in (None, token) for value in found):
            raise FrontierJobLost(
                f"job {self.job!r} at redis {self._where}: its partitions belong to another "
                "run of the job than its settings (the job was emptied and created again "
                "while this one ran?)"
            )
        missing = [part for part, value in zip(self._parts, found, strict=True) if value is None]
        if missing:
            async with self._client.pipeline(transaction=False) as pipe:
                for part in missing:
                    pipe.hsetnx(part.meta, "job", token)
                await pipe.execute()

    async def _load_scripts(self) -> None:
        for script in SCRIPTS:
            await self._client.script_load(script.source)

    # ---- storage steps -------------------------------------------------------------------

    def _base_args(self, part: PartitionKeys, *, replayable: bool = False) -> list[Any]:
        """The arguments every script starts with (redis_scripts: P, job, call) and the
        per-host limit and max attempts. `replayable`: a fresh call id, so that a resend of
        the call after a lost reply gets the first run's reply instead of running again."""
        call = os.urandom(9).hex() if replayable else ""
        s = self.settings
        return [part.prefix, self._token, call, s.per_host_limit, s.max_attempts]

    def _head_args(self, part: PartitionKeys) -> list[Any]:
        """P, job and no call id: the head of the scripts that take no limit/attempts."""
        return [part.prefix, self._token, ""]

    @_store_call
    async def _commit(
        self, adds: list[Admitted], settles: list[Settle], out_of_scope: int
    ) -> CommitResult:
        adds_by: dict[int, list[Admitted]] = defaultdict(list)
        for row in adds:
            adds_by[row.partition].append(row)
        settles_by: dict[int, list[tuple[int, Settle]]] = defaultdict(list)
        for index, item in enumerate(settles):
            for p in self._partitions_of(item.id):
                settles_by[p].append((index, item))
        # Partitions with only links first: by the time an ack runs, its links are stored.
        order = [p for p in adds_by if p not in settles_by] + list(settles_by)
        if not order:
            order = [0]
        calls = []
        for position, p in enumerate(order):
            args = self._commit_args(
                self._parts[p],
                adds_by.get(p, []),
                [item for _, item in settles_by.get(p, [])],
                out_of_scope if position == 0 else 0,
            )
            calls.append((COMMIT, self._parts[p].script_keys, args))
        replies = await self._run_scripts(calls)
        result = CommitResult(settled=[False] * len(settles))
        for p, reply in zip(order, replies, strict=True):
            result.added += int(reply[0])
            result.duplicates += int(reply[1])
            for (index, _), ok in zip(settles_by.get(p, []), reply[2:], strict=True):
                result.settled[index] = result.settled[index] or bool(int(ok))
        return result

    def _commit_args(
        self, part: PartitionKeys, adds: list[Admitted], settles: list[Settle], out_of_scope: int
    ) -> list[Any]:
        s = self.settings
        args: list[Any] = [
            *self._base_args(part, replayable=True),
            int(s.backoff_base * 1000),
            int(s.backoff_max * 1000),
            self._dedupe_mode,
            out_of_scope,
            len(adds),
        ]
        bits = self._dedupe_mode == "bits"
        # One argument per row (layout in redis_scripts.COMMIT): encoding an argument costs
        # redis-py far more than joining a few bytes here.
        for row in adds:
            positions = self._bloom.script_arg(row.fp) if bits else ""
            head = f"{row.host}|{-row.priority << PRIORITY_SHIFT}|{positions}|".encode()
            args.append(b"".join((row.fp, head, row.body)))
        for item in settles:
            tail = f"{item.attempts}|{int(item.delay * 1000)}|{item.reason}".encode()
            args.append(b"".join((item.fp, item.kind.value.encode(), tail)))
        return args

    @_store_call
    async def _lease(self, n: int, worker: str) -> list[Task]:
        s = self.settings
        tasks: list[Task] = []
        count = len(self._parts)
        start = self._cursor
        self._cursor = (self._cursor + 1) % count
        lease_ms = int(s.lease_seconds * 1000)
        # The page budget is checked inside the script, exactly, where one partition holds
        # the job; over several, each script sees only its own counts, so the workers' own
        # check before each lease (workers.worker) is what bounds it there.
        budget = s.max_pages if s.max_pages is not None and count == 1 else -1
        for step in range(count):
            part = self._parts[(start + step) % count]
            args = [
                *self._base_args(part, replayable=True),
                n - len(tasks),
                lease_ms,
                int(s.per_host_delay * 1000),
                RECLAIM_PER_LEASE,
                worker,
                budget,
            ]
            (reply,) = await self._run_scripts([(LEASE, part.script_keys, args)])
            deadline = (int(reply[0]) + lease_ms) / 1000
            for i in range(1, len(reply), 2):
                if reply[i + 1]:  # None: the task row is gone (cleared meanwhile)
                    tasks.append(_task_from_row(reply[i], reply[i + 1], deadline))
            if len(tasks) >= n:
                break
        return tasks

    @_store_call
    async def _renew(self, leases: list[tuple[bytes, int]]) -> set[str]:
        by_part: dict[int, list[bytes]] = defaultdict(list)
        for fp, attempts in leases:
            for p in self._partitions_of(fp.hex()):
                by_part[p].append(fp + str(attempts).encode())
        lease_ms = int(self.settings.lease_seconds * 1000)
        calls = []
        for p, group in by_part.items():
            part = self._parts[p]
            calls.append((RENEW, part.script_keys, [*self._head_args(part), lease_ms, *group]))
        renewed: set[str] = set()
        for reply in await self._run_scripts(calls):
            deadline = (int(reply[0]) + lease_ms) / 1000
            for fp in reply[1:]:
                renewed.add(fp.hex())
                if fp.hex() in self._leased:
                    self._leased[fp.hex()].deadline = deadline
        return renewed

    def _partitions_of(self, task_id: str) -> Iterable[int]:
        """A task's partition, known when this process leased it; else ask all of them."""
        task = self._leased.get(task_id)
        if task is not None:
            return (partition_of(task.host, len(self._parts)),)
        return range(len(self._parts))

    async def _run_scripts(self, calls: list[tuple[Script, list[str], list[Any]]]) -> list[Any]:
        """Run script calls in one round trip; reload scripts a restarted server lost."""
        if len(calls) == 1:
            script, keys, args = calls[0]
            try:
                return [await self._client.evalsha(script.sha, len(keys), *keys, *args)]
            except NoScriptError:
                await self._load_scripts()
                return [await self._client.evalsha(script.sha, len(keys), *keys, *args)]
        if self._cluster:
            # A Cluster client refuses EVALSHA in a pipeline (each partition may live on
            # another node): one call after the other, in order, so links still land first.
            return [(await self._run_scripts([call]))[0] for call in calls]
        async with self._client.pipeline(transaction=False) as pipe:
            for script, keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            replies = await pipe.execute(raise_on_error=False)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            await self._load_scripts()
            for i in missing:
                script, keys, args = calls[i]
                replies[i] = await self._client.evalsha(script.sha, len(keys), *keys, *args)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    @_store_call
    async def _add_seed_hosts(self, hosts: set[str]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.sadd(self._job_keys.seed_hosts, *sorted(hosts))
            pipe.hincrby(self._job_keys.config, "scope_rev", 1)
            await pipe.execute()

    @_store_call
    async def _load_scope(self, known_revision: int) -> tuple[int, set[str] | None]:
        revision = int(await self._client.hget(self._job_keys.config, "scope_rev") or 0)
        if revision == known_revision:
            return revision, None
        members = await self._client.smembers(self._job_keys.seed_hosts)
        return revision, {m.decode() for m in members}

    async def _close_store(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # ---- the rest of the API -------------------------------------------------------------

    @_store_call
    async def stats(self) -> FrontierStats:
        async with self._client.pipeline(transaction=False) as pipe:
            for part in self._parts:
                pipe.hgetall(part.stats)
                pipe.hmget(part.meta, "paused", "job")
                pipe.hlen(part.backlog)
            replies = await pipe.execute()
        self._check_tokens([replies[i + 1][1] for i in range(0, len(replies), 3)])
        stats = FrontierStats()
        names = {
            b"queued": "queued", b"leased": "leased", b"done": "done", b"skipped": "skipped",
            b"failed": "failed", b"dead": "dead", b"added": "added", b"dupes": "duplicates",
            b"scope": "out_of_scope", b"retried": "retried", b"expired": "expired",
        }  # fmt: skip
        for i in range(0, len(replies), 3):
            counters, (paused, _), hosts = replies[i : i + 3]
            for raw, name in names.items():
                setattr(stats, name, getattr(stats, name) + int(counters.get(raw, 0)))
            stats.paused = stats.paused or paused == b"1"
            stats.hosts_with_backlog += int(hosts)
        return stats

    @_store_call
    async def is_finished(self) -> bool:
        # One partition is one HMGET, atomic. Several are read one after another, and an ack
        # in partition B whose link went to partition A (A's script runs first) could slip
        # between a read of A and a read of B and look like "all empty". Reading every
        # partition twice closes that: if the first read of B saw the ack, the second read of
        # A comes after the link was queued.
        rounds = 1 if len(self._parts) == 1 else 2
        async with self._client.pipeline(transaction=False) as pipe:
            for _ in range(rounds):
                for part in self._parts:
                    pipe.hmget(part.stats, "queued", "leased")
            for part in self._parts:
                pipe.hget(part.meta, "job")
            replies = await pipe.execute()
        counts, tokens = replies[: -len(self._parts)], replies[-len(self._parts) :]
        # Read after the counters: an emptied partition cannot pass for a finished one.
        self._check_tokens(tokens)
        return all(int(q or 0) == 0 and int(leased or 0) == 0 for q, leased in counts)

    def _check_tokens(self, tokens: list[bytes | None]) -> None:
        """Raise FrontierJobLost unless every partition still carries the job's token."""
        if self._token and any(t != self._token.encode() for t in tokens):
            error = ResponseError(f"{JOB_LOST_CODE} a partition no longer holds this job")
            raise _reply_error(self._where, self.job, error) or error

    async def pause(self) -> None:
        await self._set_paused(b"1")

    async def resume(self) -> None:
        await self._set_paused(b"0")

    @_store_call
    async def _set_paused(self, flag: bytes) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for part in self._parts:
                pipe.hset(part.meta, "paused", flag)
            await pipe.execute()

    @_store_call
    async def is_paused(self) -> bool:
        return await self._client.hget(self._parts[0].meta, "paused") == b"1"

    @_store_call
    async def set_host_delay(self, host: str, seconds: float) -> None:
        delay_ms = int(min(max(seconds, 0.0), self.settings.max_crawl_delay) * 1000)
        part = self._part_of_host(host)
        args = [*self._head_args(part), self.settings.per_host_limit, host, delay_ms]
        await self._run_scripts([(SET_DELAY, part.script_keys, args)])

    @_store_call
    async def robots_get(self, origin: str) -> bytes | None:
        return await self._client.get(self._part_of_origin(origin).robots(origin))

    @_store_call
    async def robots_put(self, origin: str, entry: bytes, ttl: float) -> None:
        part = self._part_of_origin(origin)
        # One MULTI: the entry appears and the claim (its job done) goes, so the next fetch
        # after the entry expires need not wait for a stale claim to time out.
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.set(part.robots(origin), entry, px=max(1, int(ttl * 1000)))
            pipe.delete(part.robots_claim(origin))
            await pipe.execute()

    @_store_call
    async def robots_claim(self, origin: str, holder: str, ttl: float) -> bool:
        key = self._part_of_origin(origin).robots_claim(origin)
        return bool(await self._client.set(key, holder, nx=True, px=max(1, int(ttl * 1000))))

    def _part_of_host(self, host: str) -> PartitionKeys:
        return self._parts[partition_of(host, len(self._parts))]

    def _part_of_origin(self, origin: str) -> PartitionKeys:
        return self._part_of_host(canonical_parts(origin).host_key)

    @_store_call
    async def failures(self, limit: int = 1000) -> list[FinalRecord]:
        records: list[FinalRecord] = []
        for part in self._parts:
            async for fp, row in self._client.hscan_iter(part.final, count=500):
                records.append(_final_from_row(fp, row))
                if len(records) >= limit:
                    return records
        return records

    @_store_call
    async def busiest_hosts(self, n: int = 10) -> list[HostBacklog]:
        backlog: list[HostBacklog] = []
        for part in self._parts:
            for host, queued in (await self._client.hgetall(part.backlog)).items():
                backlog.append(HostBacklog(host.decode(), int(queued)))
        backlog.sort(key=lambda b: (-b.queued, b.host))
        return backlog[:n]

    @_store_call
    async def recover_leases(self) -> int:
        calls = [(RECOVER, part.script_keys, self._base_args(part)) for part in self._parts]
        return sum(int(n) for n in await self._run_scripts(calls))

    @_store_call
    async def save_settings(self) -> FrontierSettings:
        # One round trip; not a MULTI (Cluster clients refuse those): two runs saving at
        # once leave one of their settings, which is all a transaction would give too.
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hget(self._job_keys.config, "settings")
            pipe.hset(self._job_keys.config, "settings", self.settings.pack())
            before, _ = await pipe.execute()
        return FrontierSettings.unpack(before) if before else self.settings

    @_store_call
    async def clear(self) -> None:
        for pattern in JobKeys.scan_patterns(self.job):
            batch: list[bytes] = []
            async for key in self._client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    await self._client.unlink(*batch)
                    batch.clear()
            if batch:
                await self._client.unlink(*batch)
        self._stored_seed_hosts.clear()
        self._admitter.scope.seed_hosts.clear()
        self._scope_revision = -1
        # The job is gone, by our own hand: this frontier may go on using the empty job
        # (which a later open creates anew, with a token of its own), unchecked.
        self._token = ""

    async def memory_used(self) -> int:
        """Bytes the Redis server uses (INFO memory), for the scale test and benchmark."""
        return int((await self._client.info("memory"))["used_memory"])


async def _create_or_join(
    client: aioredis.Redis, keys: JobKeys, settings: FrontierSettings | None
) -> tuple[FrontierSettings, str, str]:
    """Store the settings of a new job, or merge with a stored one; pick the dedupe mode;
    the job's incarnation token (made with the job: a job emptied and created again gets
    another, which tells the frontiers of the old one that theirs is gone).

    Each field is read first and written only when missing: joining an existing job writes
    nothing, so `crawl status` and workers can join on a server that refuses writes (OOM)."""
    wanted = settings or FrontierSettings()
    packed = await _get_or_set(client, keys.config, "settings", wanted.pack())
    stored = FrontierSettings.unpack(packed)
    merged = stored if settings is None else wanted.merged_with_stored(stored)
    if merged.dedupe == "exact":
        mode = "set"
    else:
        mode = (await client.hget(keys.config, "dedupe_mode") or b"").decode()
        if not mode:
            probed = await _bloom_mode(client)
            mode = (await _get_or_set(client, keys.config, "dedupe_mode", probed)).decode()
    if mode not in ("set", "bf", "bits"):
        raise FrontierConfigError(f"job {keys.prefix!r} has unknown dedupe mode {mode!r}")
    token = (await _get_or_set(client, keys.config, "token", os.urandom(8).hex())).decode()
    return merged, mode, token


async def _get_or_set(client: aioredis.Redis, key: str, field: str, value: str | bytes) -> bytes:
    """The hash field's value, set to `value` first if it has none (the first writer wins)."""
    found = await client.hget(key, field)
    if found is None:
        await client.hsetnx(key, field, value)
        found = await client.hget(key, field)
    return found


async def _bloom_mode(client: aioredis.Redis) -> str:
    """'bf' when the server has the BF.* commands (Redis 8, Redis Stack), else 'bits'."""
    try:
        await client.execute_command("BF.EXISTS", "crawl:bf-probe", b"x")
    except ResponseError:
        return "bits"
    return "bf"


def _task_from_row(fp: bytes, row: bytes, deadline: float) -> Task:
    attempts, _score, host, body = row.split(b"|", 3)
    return unpack_body(fp, body, host=host.decode(), attempts=int(attempts), deadline=deadline)


def _final_from_row(fp: bytes, row: bytes) -> FinalRecord:
    code, attempts, host, length, rest = row.split(b"|", 4)
    reason, body = rest[: int(length)], rest[int(length) :]
    url, depth, _priority, parent, _meta = msgpack.unpackb(body, raw=False)
    return FinalRecord(
        id=fp.hex(),
        url=url,
        state=_FINAL_STATES[code],
        reason=reason.decode("utf-8", "replace"),
        attempts=int(attempts),
        host=host.decode(),
        depth=depth,
        parent=parent,
    )
