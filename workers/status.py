"""`crawl status`: a crawl's state read from its frontier, as plain data."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from crawler.config import Settings
from crawler.frontier import open_frontier
from workers.job import frontier_target

__all__ = ["crawl_status"]


async def crawl_status(settings: Settings) -> dict[str, Any]:
    """Counters of the job and its busiest hosts. Raises FileNotFoundError for an OUT that
    holds no crawl (instead of creating an empty one)."""
    target = frontier_target(settings)
    if settings.redis is None and not await asyncio.to_thread(Path(target).exists):
        raise FileNotFoundError(f"no crawl in {settings.out} ({target} does not exist)")
    frontier = await open_frontier(target, settings.job)
    try:
        stats = await frontier.stats()
        busiest = await frontier.busiest_hosts(10)
        budget = frontier.settings.max_pages
    finally:
        await frontier.close()
    used = stats.done + stats.failed + stats.dead + stats.leased
    return {
        "job": settings.job,
        "finished": stats.finished,
        "paused": stats.paused,
        # The job's --max-pages and whether it is spent (the crawl then ends with URLs queued).
        "max_pages": budget,
        "max_pages_reached": budget is not None and used >= budget,
        "queued": stats.queued,
        "leased": stats.leased,
        "done": stats.done,
        "skipped": stats.skipped,
        "failed": stats.failed,
        "dead": stats.dead,
        "retried": stats.retried,
        "expired_leases": stats.expired,
        "duplicates": stats.duplicates,
        "out_of_scope": stats.out_of_scope,
        "busiest_hosts": [(host.host, host.queued) for host in busiest],
    }
