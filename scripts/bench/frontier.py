"""Frontier throughput: lease+ack per second for both backends, and Redis round trips per URL.

    python scripts/bench/frontier.py [--urls 60000] [--hosts 1000] [--batches 1,16,128]
                                     [--rounds 3] [--loops 1]

Starts its own redis-server on a free loopback port (no persistence) and uses a temporary
SQLite file. For each round, batch size and backend (interleaved, so a busy machine slows
all of them alike) it fills a fresh job with URLs spread over `--hosts` hosts, then times a
loop of lease(batch) -> ack of every task (ack_many; plain ack for a batch of 1) until the
job is drained. The best round is reported.

Round trips are counted on our side of the socket (each command or pipeline written to Redis
is one), and the server's INFO commandstats tells how many script calls and Redis commands
that was. The reference row "floor" is bare Redis doing the least a queue can: one ZPOPMIN of
`batch` members and one HDEL of them per batch, no leases, no politeness, no accounting: it
shows what the frontier's guarantees cost on top of the raw store.

Target (issue 6): at least 20,000 lease+ack/s on one local Redis with batches of 128, and one
round trip per batch for the lease and one for the acks.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from crawler.frontier import (
    Ack,
    FrontierBase,
    FrontierSettings,
    RedisFrontier,
    SqliteFrontier,
)

SETTINGS = FrontierSettings(per_host_limit=4, lease_seconds=600)
TARGET_PER_S = 20_000


class RoundTrips:
    """Counts writes to Redis sockets in this process: one per command or pipeline."""

    count = 0

    @classmethod
    def install(cls) -> None:
        original = AbstractConnection.send_packed_command

        async def send(conn, command, check_health=True):  # type: ignore[no-untyped-def]
            cls.count += 1
            return await original(conn, command, check_health)

        AbstractConnection.send_packed_command = send  # type: ignore[method-assign]


@dataclass
class Run:
    backend: str
    batch: int
    urls: int
    seconds: float
    adds_per_s: float
    lease_trips: int = 0
    ack_trips: int = 0
    batches: int = 0
    script_calls: int = 0
    commands: int = 0

    @property
    def per_s(self) -> float:
        return self.urls / self.seconds


class RedisProcess:
    def __init__(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.dir = tempfile.TemporaryDirectory(prefix="crawl-bench-redis-")
        self.port = _free_port()
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir.name, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_for_port(self.port)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.dir.cleanup()


def urls_for(count: int, hosts: int, tag: str) -> list[str]:
    return [f"http://h{i % hosts}.bench.test/{tag}/{i}" for i in range(count)]


async def fill(frontier: FrontierBase, urls: list[str]) -> float:
    started = time.perf_counter()
    for i in range(0, len(urls), 10_000):
        await frontier.add(urls[i : i + 10_000])
    return len(urls) / (time.perf_counter() - started)


async def drain(frontier: FrontierBase, batch: int, loops: int, run: Run) -> None:
    async def loop(worker: str) -> None:
        while True:
            before = RoundTrips.count
            tasks = await frontier.lease(batch, worker)
            run.lease_trips += RoundTrips.count - before
            if not tasks:
                return
            run.batches += 1
            before = RoundTrips.count
            if batch == 1:
                ok = [await frontier.ack(tasks[0])]
            else:
                ok = await frontier.ack_many([Ack(t) for t in tasks])
            run.ack_trips += RoundTrips.count - before
            assert all(ok)
            run.urls += len(tasks)

    await asyncio.gather(*(loop(f"w{i}") for i in range(loops)))


async def command_counts(client: aioredis.Redis) -> tuple[int, int]:
    stats = await client.info("commandstats")
    scripts = sum(v["calls"] for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))
    return scripts, sum(v["calls"] for v in stats.values())


async def bench_redis(server: RedisProcess, urls: list[str], batch: int, loops: int) -> Run:
    frontier = await RedisFrontier.open(server.url, f"b{uuid.uuid4().hex[:8]}", SETTINGS)
    probe = aioredis.Redis.from_url(server.url)
    try:
        adds = await fill(frontier, urls)
        run = Run("redis", batch, 0, 0.0, adds)
        scripts0, commands0 = await command_counts(probe)
        started = time.perf_counter()
        await drain(frontier, batch, loops, run)
        run.seconds = time.perf_counter() - started
        scripts1, commands1 = await command_counts(probe)
        # minus the INFO call of command_counts itself
        run.script_calls, run.commands = scripts1 - scripts0, commands1 - commands0 - 1
        await frontier.clear()
        return run
    finally:
        await probe.aclose()
        await frontier.close()


async def bench_sqlite(folder: Path, urls: list[str], batch: int, loops: int) -> Run:
    path = folder / f"{uuid.uuid4().hex[:8]}.sqlite"
    frontier = await SqliteFrontier.open(path, "bench", SETTINGS)
    try:
        adds = await fill(frontier, urls)
        run = Run("sqlite", batch, 0, 0.0, adds)
        started = time.perf_counter()
        await drain(frontier, batch, loops, run)
        run.seconds = time.perf_counter() - started
        return run
    finally:
        await frontier.close()
        remove_sqlite(path)


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def bench_floor(server: RedisProcess, urls: list[str], batch: int, loops: int) -> Run:
    """Bare Redis: a ZSET of ids and a HASH of bodies, ZPOPMIN + HDEL per batch."""
    client = aioredis.Redis.from_url(server.url)
    queue, bodies = f"floor:{uuid.uuid4().hex[:8]}", f"floor-b:{uuid.uuid4().hex[:8]}"
    try:
        started = time.perf_counter()
        for i in range(0, len(urls), 10_000):
            chunk = urls[i : i + 10_000]
            async with client.pipeline(transaction=False) as pipe:
                pipe.zadd(queue, {u: n for n, u in enumerate(chunk, i)})
                pipe.hset(bodies, mapping={u: u for u in chunk})
                await pipe.execute()
        run = Run("floor", batch, 0, 0.0, len(urls) / (time.perf_counter() - started))

        async def loop() -> None:
            while True:
                before = RoundTrips.count
                popped = await client.zpopmin(queue, batch)
                run.lease_trips += RoundTrips.count - before
                if not popped:
                    return
                run.batches += 1
                before = RoundTrips.count
                await client.hdel(bodies, *(member for member, _ in popped))
                run.ack_trips += RoundTrips.count - before
                run.urls += len(popped)

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(loops)))
        run.seconds = time.perf_counter() - started
        await client.delete(queue, bodies)
        return run
    finally:
        await client.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=60_000, help="URLs per run at batch 128")
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--batches", default="1,16,128")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds")
    parser.add_argument("--loops", type=int, default=1, help="concurrent lease/ack loops")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    RoundTrips.install()
    server = RedisProcess()
    folder = tempfile.TemporaryDirectory(prefix="crawl-bench-sqlite-")
    best: dict[tuple[str, int], Run] = {}
    benches: dict[str, Callable[[list[str], int], Awaitable[Run]]] = {
        "redis": lambda urls, b: bench_redis(server, urls, b, args.loops),
        "sqlite": lambda urls, b: bench_sqlite(Path(folder.name), urls, b, args.loops),
        "floor": lambda urls, b: bench_floor(server, urls, b, args.loops),
    }
    try:
        for round_ in range(args.rounds):
            for batch in batches:
                # small batches are slow: fewer URLs keep every run to a few seconds
                count = max(2_000, args.urls * min(batch, 16) // 128) if batch < 128 else args.urls
                urls = urls_for(count, args.hosts, f"r{round_}b{batch}")
                for name, bench in benches.items():
                    run = await bench(urls, batch)
                    key = (name, batch)
                    if key not in best or run.per_s > best[key].per_s:
                        best[key] = run
                    print(f"  round {round_ + 1} {name:>6} batch {batch:>3}: "
                          f"{run.per_s:>9,.0f} lease+ack/s", file=sys.stderr)  # fmt: skip
    finally:
        server.close()
        folder.cleanup()
    report(best, batches, args)


def report(best: dict[tuple[str, int], Run], batches: list[int], args: argparse.Namespace) -> None:
    print(
        f"\nfrontier lease+ack, {args.hosts} hosts, per_host_limit {SETTINGS.per_host_limit}, "
        f"{args.loops} loop(s), best of {args.rounds}\n"
    )
    print(
        f"{'backend':>8} {'batch':>5} {'URLs':>7} {'lease+ack/s':>12} {'adds/s':>9} "
        f"{'RT/URL':>7} {'lease RT/batch':>14} {'ack RT/batch':>12} {'scripts/batch':>13} "
        f"{'cmds/URL':>8} {'vs floor':>8}"
    )
    for batch in batches:
        for name in ("redis", "sqlite", "floor"):
            run = best[(name, batch)]
            floor = best[("floor", batch)]
            trips = run.lease_trips + run.ack_trips
            redis_side = name != "sqlite"
            cells = [
                f"{name:>8}", f"{batch:>5}", f"{run.urls:>7}", f"{run.per_s:>12,.0f}",
                f"{run.adds_per_s:>9,.0f}",
                f"{trips / run.urls:>7.3f}" if redis_side else f"{'-':>7}",
                f"{run.lease_trips / run.batches:>14.2f}" if redis_side else f"{'-':>14}",
                f"{run.ack_trips / run.batches:>12.2f}" if redis_side else f"{'-':>12}",
                f"{run.script_calls / run.batches:>13.2f}" if name == "redis" else f"{'-':>13}",
                f"{run.commands / run.urls:>8.1f}" if name == "redis" else f"{'-':>8}",
                f"{run.per_s / floor.per_s:>8.2f}",
            ]  # fmt: skip
            print(" ".join(cells))
    redis_128 = best.get(("redis", 128))
    if redis_128 is not None:
        verdict = "met" if redis_128.per_s >= TARGET_PER_S else "NOT met"
        print(
            f"\ntarget >= {TARGET_PER_S:,} lease+ack/s on Redis at batch 128: {verdict} "
            f"({redis_128.per_s:,.0f}/s, {redis_128.per_s / best[('sqlite', 128)].per_s:.1f}x "
            f"SQLite); round trips per batch: lease "
            f"{redis_128.lease_trips / redis_128.batches:.2f}, "
            f"ack {redis_128.ack_trips / redis_128.batches:.2f}"
        )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


if __name__ == "__main__":
    asyncio.run(main())
