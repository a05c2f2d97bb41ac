"""Fixtures of the end-to-end tests: a scratch folder to run `crawl` in, a clean Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.redis_server import RedisServer


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Where `crawl` runs (no crawl.toml unless a test writes one) and writes OUT."""
    return tmp_path


@pytest.fixture
def clean_redis(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The session's redis-server, emptied before and after the test."""
    yield from _emptied(redis_server)


@pytest.fixture
def clean_redis_62(redis_62_server: RedisServer) -> Iterator[RedisServer]:
    """The session's redis-server 6.2 (the oldest supported), emptied before and after."""
    yield from _emptied(redis_62_server)


def _emptied(redis_server: RedisServer) -> Iterator[RedisServer]:
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
        yield redis_server
        client.flushall()
    finally:
        client.close()
