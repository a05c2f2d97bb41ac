"""The three stores every conformance test runs on: SQLite, fakeredis (with Lua), redis-server.

`backend.open(settings)` opens another frontier on the same job and store (another "worker"),
so multi-worker behaviour is tested the same way on each backend. Every test gets its own job
name (Redis) or file (SQLite); whatever a test opens is closed and cleared afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import fakeredis
import pytest

from crawler.frontier import FrontierBase, FrontierSettings, RedisFrontier, SqliteFrontier

BACKENDS = ("sqlite", "fakeredis", "redis")


@dataclass
class Backend:
    name: str
    job: str
    target: str | None  # what another process passes to open_frontier (None: in-process only)
    _open: Callable[[FrontierSettings | None, str], Awaitable[FrontierBase]]
    opened: list[FrontierBase] = field(default_factory=list)
    jobs: set[str] = field(default_factory=set)

    async def open(
        self, settings: FrontierSettings | None = None, *, job: str | None = None
    ) -> FrontierBase:
        job = job or self.job
        self.jobs.add(job)
        frontier = await self._open(settings, job)
        self.opened.append(frontier)
        return frontier


def new_job() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    job = new_job()
    clients: list[fakeredis.FakeAsyncRedis] = []
    if request.param == "sqlite":
        path = tmp_path / "frontier.sqlite"

        async def open_sqlite(settings: FrontierSettings | None, job: str) -> FrontierBase:
            return await SqliteFrontier.open(path, job, settings)

        made = Backend("sqlite", job, str(path), open_sqlite)
    elif request.param == "fakeredis":
        server = fakeredis.FakeServer()

        async def open_fake(settings: FrontierSettings | None, job: str) -> FrontierBase:
            client = fakeredis.FakeAsyncRedis(server=server)
            clients.append(client)
            return await RedisFrontier.open(client, job, settings)

        made = Backend("fakeredis", job, None, open_fake)
    else:
        redis_server = request.getfixturevalue("redis_server")

        async def open_real(settings: FrontierSettings | None, job: str) -> FrontierBase:
            return await RedisFrontier.open(redis_server.url, job, settings)

        made = Backend("redis", job, redis_server.url, open_real)
    try:
        yield made
    finally:
        for frontier in made.opened:
            await frontier.close()
        if made.name == "redis":
            for job in made.jobs:
                async with await RedisFrontier.open(made.target, job) as leftover:
                    await leftover.clear()
        for client in clients:
            await client.aclose()
