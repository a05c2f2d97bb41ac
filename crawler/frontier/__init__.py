"""The crawl frontier: what is fetched, when, and by whom (DESIGN.md, "Frontier").

    frontier = await open_frontier("redis://host:6379/0" or "out/frontier.sqlite", "job")
    await frontier.add(["https://example.com/"])
    while not await frontier.is_finished():
        for task in await frontier.lease(64, worker="w1"):
            ...fetch task.url...
            await frontier.ack(task, links=found_urls)

`Frontier` is the protocol; `RedisFrontier` (many machines) and `SqliteFrontier` (embedded
default) meet it, proven by one conformance suite (tests/frontier).
"""

from .base import FrontierBase
from .errors import FrontierConfigError, FrontierError, FrontierJobLost, FrontierUnavailable
from .factory import job_exists, open_frontier
from .protocol import Frontier
from .settings import JOB_DEFINING, FrontierSettings
from .sqlite_backend import SqliteFrontier
from .task import (
    Ack,
    AddResult,
    FinalRecord,
    FinalState,
    FrontierStats,
    HostBacklog,
    Link,
    Outcome,
    Task,
)

__all__ = [
    "JOB_DEFINING",
    "Ack",
    "AddResult",
    "FinalRecord",
    "FinalState",
    "Frontier",
    "FrontierBase",
    "FrontierConfigError",
    "FrontierError",
    "FrontierJobLost",
    "FrontierSettings",
    "FrontierStats",
    "FrontierUnavailable",
    "HostBacklog",
    "Link",
    "Outcome",
    "RedisFrontier",
    "SqliteFrontier",
    "Task",
    "job_exists",
    "open_frontier",
]


def __getattr__(name: str) -> object:
    # The Redis client costs a worker tens of milliseconds to import: only for Redis jobs.
    if name == "RedisFrontier":
        from .redis_backend import RedisFrontier

        return RedisFrontier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
