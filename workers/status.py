"""`crawl status`: a crawl's state read from its frontier, as plain data."""

from __future__ import annotations

import asyncio
import collections
import re
import time
from pathlib import Path
from typing import Any

from crawler.config import Settings
from crawler.frontier import FinalRecord, job_exists, open_frontier
from workers.job import frontier_target

__all__ = ["crawl_status", "top_reasons"]

# How long `crawl status` watches the counters to tell the rates.
RATE_SAMPLE_S = 1.0
# Tasks that ended unfetched read for the reasons shown (a sample when there are more).
FAILURES_READ = 10_000
_EXCEPTION_NAME = re.compile(r"([A-Z][A-Za-z]*(?:Error|Exception|Mismatch|Timeout)[A-Za-z]*):")


async def crawl_status(settings: Settings, *, sample_s: float = RATE_SAMPLE_S) -> dict[str, Any]:
    """Counters of the job, its rates and its busiest hosts. Raises FileNotFoundError for an
    OUT that holds no crawl (instead of creating an empty one).

    Rates are measured: the counters are read twice, `sample_s` apart (not when the job is
    finished or `sample_s` is 0), so they are those of every worker on every machine now.
    """
    target = frontier_target(settings)
    if settings.redis is None and not await asyncio.to_thread(Path(target).exists):
        raise FileNotFoundError(f"no crawl in {settings.out} ({target} does not exist)")
    if settings.redis is not None and not await job_exists(target, settings.job):
        # Opening it would create it (and call an empty job finished).
        raise FileNotFoundError(f"no job {settings.job!r} at {settings.redis}")
    frontier = await open_frontier(target, settings.job)
    try:
        stats = await frontier.stats()
        rates = None
        if sample_s > 0 and not stats.finished:
            began = time.monotonic()
            await asyncio.sleep(sample_s)
            later = await frontier.stats()
            rates = _rates(stats, later, time.monotonic() - began)
            stats = later
        busiest = await frontier.busiest_hosts(10)
        budget = frontier.settings.max_pages
        ended = await frontier.failures(FAILURES_READ)
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
        # Per second over the sample (None: finished, or not sampled).
        "done_per_s": None if rates is None else rates[0],
        "settled_per_s": None if rates is None else rates[1],
        "busiest_hosts": [(host.host, host.queued) for host in busiest],
        # Why URLs were not fetched, most common first: (state, reason, count).
        "top_reasons": top_reasons(ended),
    }


def top_reasons(ended: list[FinalRecord], n: int = 8) -> list[tuple[str, str, int]]:
    """The commonest ways tasks ended skipped, failed or dead. An exception's message names
    the URL's host and more, so exceptions are grouped by their name only ("SomeError")."""
    counts = collections.Counter(
        (record.state.value, _reason_kind(record.reason)) for record in ended
    )
    return [(state, reason, count) for (state, reason), count in counts.most_common(n)]


def _reason_kind(reason: str) -> str:
    exception = _EXCEPTION_NAME.match(reason)
    if exception is not None:
        return exception.group(1)
    return reason if len(reason) <= 100 else reason[:97] + "..."


def _rates(before: Any, after: Any, seconds: float) -> tuple[float, float]:
    """(done, settled: done + skipped + failed + dead) per second between two stats reads."""

    def settled(stats: Any) -> int:
        return int(stats.done + stats.skipped + stats.failed + stats.dead)

    seconds = max(seconds, 1e-9)
    done = (after.done - before.done) / seconds
    return round(done, 1), round((settled(after) - settled(before)) / seconds, 1)
