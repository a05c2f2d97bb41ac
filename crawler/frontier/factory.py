"""`open_frontier`: the one way the rest of crawl gets a frontier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import FrontierBase
from .settings import FrontierSettings

__all__ = ["job_exists", "open_frontier"]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")


async def open_frontier(
    url_or_path: str | Path,
    job: str,
    settings: FrontierSettings | None = None,
    **redis_options: Any,
) -> FrontierBase:
    """A Redis frontier for redis://, rediss:// (TLS) or unix:// URLs (redis+cluster:// or
    rediss+cluster:// for a Redis Cluster, any node's address), else a SQLite file.

    `settings` None joins an existing job with its stored settings (or creates one with the
    defaults); given settings are stored for a new job, and for an existing one replace the
    stored ones except the job-defining fields (partitions, dedupe, Bloom sizing, query
    sorting), which stay as the job was created. `redis_options` go to the Redis client
    (e.g. ``ssl_ca_certs=`` for rediss://).
    """
    target = str(url_or_path)
    if target.startswith(REDIS_SCHEMES):
        from .redis_backend import RedisFrontier

        return await RedisFrontier.open(target, job, settings, **redis_options)
    if redis_options:
        raise TypeError(f"Redis options given for a SQLite frontier: {sorted(redis_options)}")
    from .sqlite_backend import SqliteFrontier

    return await SqliteFrontier.open(target, job, settings)


async def job_exists(url_or_path: str | Path, job: str, **redis_options: Any) -> bool:
    """Whether `job` exists at `url_or_path` (a Redis URL or a SQLite file), without creating
    it as `open_frontier` would: for commands that only join or read a job."""
    target = str(url_or_path)
    if target.startswith(REDIS_SCHEMES):
        from .redis_backend import RedisFrontier

        return await RedisFrontier.job_exists(target, job, **redis_options)
    import asyncio

    from .sqlite_store import stored_job

    def held() -> bool:
        return Path(target).is_file() and stored_job(target) == job

    return await asyncio.to_thread(held)
