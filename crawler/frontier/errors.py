"""Errors a frontier raises; each message names the store, job or setting involved."""

from __future__ import annotations

__all__ = ["FrontierConfigError", "FrontierError", "FrontierJobLost", "FrontierUnavailable"]


class FrontierError(Exception):
    """Base class of frontier errors."""


class FrontierUnavailable(FrontierError, ConnectionError):
    """The store (Redis server, SQLite file) could not be reached after retries.

    Nothing is lost: leased tasks expire back into their queues, and the same call can be
    made again once the store is back.
    """


class FrontierConfigError(FrontierError, ValueError):
    """A job, URL or setting the frontier cannot work with (bad job name, wrong file...)."""


class FrontierJobLost(FrontierError):
    """The job's state vanished from the store under a running crawl: a Redis restarted
    without persistence, a FLUSHALL, a failover to an empty replica.

    Not retryable: an emptied job has nothing queued and nothing leased, so carrying on would
    call it finished (or crawl a partial job seeded only by the links of pages in flight)
    with the pages it had queued missing. The crawl must be seeded again.
    """
