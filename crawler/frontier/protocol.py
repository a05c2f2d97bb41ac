"""The contract every frontier backend meets (SQLite embedded, Redis for many machines).

Guarantees a caller may rely on, whatever the backend:

- A URL is enqueued at most once per job (canonical URL fingerprint), and only when in scope.
- `lease` never hands out a task that is leased and whose lease is live; a lease is live until
  its deadline, which `renew` pushes back. An expired lease returns its task to its host's
  queue with `attempts + 1` when the next `lease` call runs (any worker's); after
  `max_attempts` the task is dead with its last reason. So a killed worker loses no URL.
- Per host: at most `per_host_limit` tasks leased at once, lease starts at least the host's
  delay apart (settings, robots `Crawl-delay`, and 429/503 backoff), order by (priority desc,
  arrival). A waiting host never holds up another host.
- `ack`/`retry`/`fail` of a task that is no longer leased (its lease was reclaimed) return
  False and change nothing: the task will be fetched again, never counted twice.
- Concurrent single calls are group-committed: one round trip / transaction per batch.
- `is_finished()` is True once no queue and no lease holds anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from .settings import FrontierSettings
from .task import (
    Ack,
    AddResult,
    FinalRecord,
    FrontierStats,
    HostBacklog,
    Link,
    Outcome,
    Task,
)

__all__ = ["Frontier"]


@runtime_checkable
class Frontier(Protocol):
    job: str
    settings: FrontierSettings

    async def add(self, seeds: Iterable[str | Link]) -> AddResult:
        """Enqueue seed URLs (depth 0); with default scope their hosts become allowed hosts."""

    async def lease(self, n: int, worker: str) -> list[Task]:
        """Up to n tasks from hosts that may start a request now, each leased to `worker`."""

    async def renew(self, task_ids: Iterable[str | Task]) -> set[str]:
        """Extend the leases of these tasks; returns the ids that were still leased. A lease
        that expired and was taken by another worker is not this caller's to extend."""

    async def ack(
        self,
        task: str | Task,
        outcome: Outcome = Outcome.DONE,
        links: Sequence[str | Link] = (),
        *,
        reason: str = "",
    ) -> bool:
        """Finish a task (done or skipped with a reason) and enqueue its new in-scope links."""

    async def ack_many(self, acks: Iterable[Ack]) -> list[bool]:
        """Several acks in one round trip / transaction."""

    async def retry(
        self,
        task: str | Task,
        delay: float | None = None,
        reason: str = "",
        *,
        status: int | None = None,
    ) -> bool:
        """Put a task back with attempts + 1, not before `delay` seconds (exponential backoff
        with jitter when None). With status 429 or 503 the whole host waits instead: `delay`
        is its Retry-After, or the host's next exponential backoff step when None."""

    async def fail(self, task: str | Task, reason: str) -> bool:
        """Finish a task as failed for good (a 404, a body too large...)."""

    async def release(self, tasks: Iterable[str | Task]) -> int:
        """Hand leased tasks back untouched (no attempt counted), e.g. on a graceful stop."""

    def before_settling(self, hook: Callable[[], object]) -> None:
        """Call `hook()` (once per hook, however often given) before each commit that ends
        leases (acks, retries, failures, releases): a worker writes what must be on disk before
        the frontier calls a task done, such as its buffered records."""

    async def stats(self) -> FrontierStats:
        """Counters of the job, summed over partitions."""

    async def is_finished(self) -> bool:
        """True when no queue and no lease holds anything: workers may stop."""

    async def pause(self) -> None:
        """Stop handing out leases (for every worker of the job) until `resume`."""

    async def resume(self) -> None:
        """Hand out leases again after `pause`."""

    async def is_paused(self) -> bool:
        """Whether the job is paused."""

    async def set_host_delay(self, host: str, seconds: float) -> None:
        """A host's own least delay between starts (robots Crawl-delay), capped by settings."""

    async def robots_get(self, origin: str) -> bytes | None:
        """The cached robots.txt entry of an origin (opaque bytes), if any and not expired."""

    async def robots_put(self, origin: str, entry: bytes, ttl: float) -> None:
        """Cache an origin's robots.txt entry for `ttl` seconds, for every worker."""

    async def robots_claim(self, origin: str, holder: str, ttl: float) -> bool:
        """True for the one caller that should fetch this origin's robots.txt now."""

    async def failures(self, limit: int = 1000) -> list[FinalRecord]:
        """Tasks that ended skipped, failed or dead, with their reasons."""

    async def busiest_hosts(self, n: int = 10) -> list[HostBacklog]:
        """The n hosts with the most queued tasks."""

    async def recover_leases(self) -> int:
        """Expire every lease now (only when no other worker of the job is alive)."""

    async def save_settings(self) -> FrontierSettings:
        """Make this frontier's settings the job's, for every process that opens the job from
        now on (its job-defining fields are the stored ones already); returns those stored
        before. Processes that have the job open keep the settings they opened it with."""

    async def clear(self) -> None:
        """Delete the whole job from the store."""

    async def close(self) -> None:
        """Flush pending acks and close the connection to the store."""

    async def __aenter__(self) -> Self:
        """The frontier itself; `close` on exit."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the frontier."""
