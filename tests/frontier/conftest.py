"""The stores every conformance test runs on: SQLite, SQLite in a file of the older layout
(tasks keyed by fingerprint), fakeredis (with Lua), redis-server (Debian's 7, and 6.2, the oldest
supported, built by scripts/redis-6.2), redis-server over TLS with a password (rediss://), and
a Redis Cluster of three nodes (a `RedisCluster` client).

`backend.open(settings)` opens another frontier on the same job and store (another "worker"),
so multi-worker behaviour is tested the same way on each backend. Every test gets its own job
name (Redis) or file (SQLite); whatever a test opens is closed and cleared afterwards.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from redis.asyncio.cluster import RedisCluster

from crawler.frontier import FrontierBase, FrontierSettings, RedisFrontier, SqliteFrontier
from tests.support.binaries import require_binary
from tests.support.ports import wait_for_port
from tests.support.redis_server import RedisServer
from tests.support.tls_certs import TestPKI, make_pki

BACKENDS = (
    "sqlite",
    "sqlite-fp-keyed",
    "fakeredis",
    "redis",
    "redis-6.2",
    "redis-tls",
    "redis-cluster",
)
_REAL_REDIS = {
    "redis": "redis_server",
    "redis-6.2": "redis_62_server",
    "redis-tls": "tls_redis_server",
}
# How frontier files made before tasks were stored in queue order keep their tasks: a file
# created with this table keeps it (the schema only creates what is missing).
FP_KEYED_TASKS = """
CREATE TABLE tasks (
    fp BLOB PRIMARY KEY,
    host TEXT NOT NULL,
    state INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due REAL,
    worker TEXT,
    body BLOB,
    reason TEXT
) WITHOUT ROWID
"""
PASSWORD = "frontier-test-secret"


class TlsRedisServer(RedisServer):
    """redis-server that only speaks TLS (trustme certificates) and wants a password."""

    def __init__(self, binary: str, pki: TestPKI, password: str = PASSWORD) -> None:
        super().__init__(binary)
        self.pki = pki
        self.password = password
        self.ca_file = str(pki.write_ca_file(self.data_dir))

    @property
    def url(self) -> str:
        return f"rediss://:{self.password}@127.0.0.1:{self.port}/0"

    def url_with(self, password: str | None) -> str:
        auth = "" if password is None else f":{password}@"
        return f"rediss://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        cert, key = self.data_dir / "server.pem", self.data_dir / "server.key"
        self.pki.server_cert.cert_chain_pems[0].write_to_path(str(cert))
        self.pki.server_cert.private_key_pem.write_to_path(str(key))
        args = [
            self.binary,
            "--port", "0",  # no plain-text listener at all
            "--tls-port", str(self.port),
            "--tls-cert-file", str(cert),
            "--tls-key-file", str(key),
            "--tls-ca-cert-file", self.ca_file,
            "--tls-auth-clients", "no",
            "--requirepass", self.password,
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.port)


@pytest.fixture(scope="session")
def tls_redis_server() -> Iterator[TlsRedisServer]:
    server = TlsRedisServer(require_binary("redis-server"), make_pki())
    server.start()
    try:
        yield server
    finally:
        server.close()


@dataclass
class Backend:
    name: str
    job: str
    target: str | None  # what another process passes to open_frontier (None: in-process only)
    _open: Callable[[FrontierSettings | None, str], Awaitable[FrontierBase]]
    opened: list[FrontierBase] = field(default_factory=list)
    jobs: set[str] = field(default_factory=set)
    options: dict[str, Any] = field(default_factory=dict)  # Redis client options (TLS CA)

    async def open(
        self, settings: FrontierSettings | None = None, *, job: str | None = None
    ) -> FrontierBase:
        job = job or self.job
        self.jobs.add(job)
        frontier = await self._open(settings, job)
        self.opened.append(frontier)
        return frontier

    @property
    def is_redis(self) -> bool:
        return not self.name.startswith("sqlite")


def new_job() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    job = new_job()
    clients: list[fakeredis.FakeAsyncRedis | RedisCluster] = []
    if request.param.startswith("sqlite"):
        path = tmp_path / "frontier.sqlite"
        if request.param == "sqlite-fp-keyed":
            with contextlib.closing(sqlite3.connect(path)) as db:
                db.execute(FP_KEYED_TASKS)

        async def open_sqlite(settings: FrontierSettings | None, job: str) -> FrontierBase:
            return await SqliteFrontier.open(path, job, settings)

        made = Backend(request.param, job, str(path), open_sqlite)
    elif request.param == "fakeredis":
        server = fakeredis.FakeServer()

        async def open_fake(settings: FrontierSettings | None, job: str) -> FrontierBase:
            client = fakeredis.FakeAsyncRedis(server=server)
            clients.append(client)
            return await RedisFrontier.open(client, job, settings)

        made = Backend("fakeredis", job, None, open_fake)
    elif request.param == "redis-cluster":
        cluster = request.getfixturevalue("redis_cluster")

        async def open_cluster(settings: FrontierSettings | None, job: str) -> FrontierBase:
            client = RedisCluster(host=cluster.host, port=cluster.port)
            clients.append(client)
            return await RedisFrontier.open(client, job, settings)

        made = Backend("redis-cluster", job, None, open_cluster)
    else:
        redis_server = request.getfixturevalue(_REAL_REDIS[request.param])
        options = {"ssl_ca_certs": redis_server.ca_file} if request.param == "redis-tls" else {}

        async def open_real(settings: FrontierSettings | None, job: str) -> FrontierBase:
            return await RedisFrontier.open(redis_server.url, job, settings, **options)

        made = Backend(request.param, job, redis_server.url, open_real, options=options)
    try:
        yield made
    finally:
        for frontier in made.opened:
            await frontier.close()
        if made.name == "redis-cluster":
            for job in made.jobs:
                async with await made._open(None, job) as leftover:
                    await leftover.clear()
        elif made.name.startswith("redis"):
            for job in made.jobs:
                async with await RedisFrontier.open(made.target, job, **made.options) as leftover:
                    await leftover.clear()
        for client in clients:
            await client.aclose()
