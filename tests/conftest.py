"""Fixtures shared by every test package: real peers started on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.support.binaries import require_binary, require_redis_62
from tests.support.redis_cluster import RedisClusterServers
from tests.support.redis_server import RedisServer
from tests.support.tinyproxy import TinyProxy


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the whole test session (flush between tests yourself)."""
    server = RedisServer(require_binary("redis-server"))
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_62_server() -> Iterator[RedisServer]:
    """A real redis-server 6.2 (the oldest Redis supported) for the whole test session."""
    server = RedisServer(require_redis_62())
    server.start()
    try:
        with redis.Redis.from_url(server.url) as client:
            version = client.info("server")["redis_version"]
        assert version.startswith("6.2."), f"{server.binary} is Redis {version}, not 6.2"
        yield server
    finally:
        server.close()


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, with AOF on, for tests that stop or restart it."""
    server = RedisServer(require_binary("redis-server"), persist=True)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def volatile_redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own with no persistence at all: a restart empties it."""
    server = RedisServer(require_binary("redis-server"), persist=False)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def tinyproxy() -> Iterator[TinyProxy]:
    """A real tinyproxy of this test's own (its log shows what it was asked for)."""
    proxy = TinyProxy(require_binary("tinyproxy"))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A real Redis Cluster of three nodes for the whole test session."""
    cluster = RedisClusterServers(require_binary("redis-server"), require_binary("redis-cli"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.close()
