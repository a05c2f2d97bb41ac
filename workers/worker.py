"""One worker: lease → fetch → store → extract → ack, with `concurrency` fetches at once.

Leases are taken in batches and prefetched while the current batch runs, so fetch tasks never
wait on the frontier when there is work. While a fetch streams, its lease is renewed, so a
two-hour download keeps its URL while a killed worker's URLs come back within a lease.

Stopping (`stop()`, called on SIGINT/SIGTERM): no more leases; tasks not started are handed
back untouched; in-flight fetches get `grace_s` to finish, then are cancelled (their `.part`
files stay for the next attempt) and handed back too.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawler.extract import extract_links_from_body, is_html
from crawler.frontier import Frontier, Outcome, Task
from crawler.robots import Robots
from storage import DownloadError, FetchRecord, Store, download
from storage import Outcome as StoreOutcome
from workers.outcomes import Action, Verdict, classify_error, classify_record
from workers.progress import CrawlCounters, FetchResult

log = logging.getLogger("crawl.worker")

__all__ = ["Worker", "WorkerExit", "WorkerOptions"]

# Pages larger than this are stored but not parsed for links: a crawler reading a 1 GB
# "HTML" file into memory is how crawlers die.
MAX_PARSE_BYTES = 16 << 20
IDLE_POLL_MIN_S = 0.02
IDLE_POLL_MAX_S = 1.0


class WorkerExit(enum.IntEnum):
    FINISHED = 0
    INTERRUPTED = 130


@dataclass(slots=True)
class WorkerOptions:
    name: str
    concurrency: int = 64
    lease_batch: int = 64
    max_depth: int | None = None
    max_size: int | None = None
    honor_nofollow: bool = False
    renew_s: float = 20.0
    grace_s: float = 10.0
    headers: Mapping[str, str] = field(default_factory=dict)


class Worker:
    def __init__(
        self,
        frontier: Frontier,
        session: Any,
        store: Store,
        options: WorkerOptions,
        *,
        robots: Robots | None = None,
        counters: CrawlCounters | None = None,
    ) -> None:
        self.frontier = frontier
        self.session = session
        self.store = store
        self.options = options
        self.robots = robots
        self.counters = counters if counters is not None else CrawlCounters()
        self._queue: asyncio.Queue[Task] = asyncio.Queue()
        self._in_flight: dict[str, Task] = {}
        self._fetchers: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._work_ready = asyncio.Event()

    # --- lifecycle ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop leasing and wind down (see the module docstring)."""
        self._stopping.set()
        self._work_ready.set()

    async def run(self) -> WorkerExit:
        """Fetch until the frontier is finished (FINISHED) or `stop()` was called (INTERRUPTED)."""
        renewer = asyncio.create_task(self._renew_loop(), name="renew-leases")
        fetchers = [
            asyncio.create_task(self._fetch_loop(), name=f"fetch-{i}")
            for i in range(self.options.concurrency)
        ]
        try:
            finished = await self._lease_loop()
        finally:
            exit_code = await self._wind_down(fetchers)
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        if finished and exit_code is WorkerExit.FINISHED:
            return WorkerExit.FINISHED
        return WorkerExit.INTERRUPTED

    async def _lease_loop(self) -> bool:
        """Keep the queue fed; True when the frontier says the job is finished."""
        idle = IDLE_POLL_MIN_S
        capacity = self.options.concurrency + self.options.lease_batch
        while not self._stopping.is_set():
            room = capacity - self._queue.qsize() - len(self._in_flight)
            if room < max(1, self.options.lease_batch // 2):
                # Enough work queued: wait until fetchers have drained some of it.
                self._work_ready.clear()
                await self._work_ready.wait()
                continue
            tasks = await self.frontier.lease(
                min(room, self.options.lease_batch), self.options.name
            )
            if tasks:
                idle = IDLE_POLL_MIN_S
                for task in tasks:
                    self._queue.put_nowait(task)
                continue
            if not self._in_flight and self._queue.empty() and await self.frontier.is_finished():
                return True
            # Nothing leasable now (hosts waiting out their delays, or other workers hold the
            # rest): poll with a growing pause so an idle worker does not hammer the frontier.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), idle)
            idle = min(idle * 2, IDLE_POLL_MAX_S)
        return False

    async def _wind_down(self, fetchers: list[asyncio.Task[None]]) -> WorkerExit:
        unstarted: list[Task] = []
        while not self._queue.empty():
            unstarted.append(self._queue.get_nowait())
        if unstarted:
            await self._hand_back(unstarted)
        for _ in fetchers:
            self._queue.put_nowait(_STOP)
        _done, pending = await asyncio.wait(fetchers, timeout=self.options.grace_s)
        if not pending:
            return WorkerExit.FINISHED if not self._stopping.is_set() else WorkerExit.INTERRUPTED
        for fetcher in pending:
            fetcher.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        left = list(self._in_flight.values())
        self._in_flight.clear()
        if left:
            await self._hand_back(left)
        return WorkerExit.INTERRUPTED

    async def _hand_back(self, tasks: list[Task]) -> None:
        try:
            await self.frontier.release(tasks)
        except Exception as exc:  # the leases expire anyway: nothing is lost
            log.warning(
                "could not hand back %d tasks (%s); their leases will expire", len(tasks), exc
            )

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.renew_s)
            if not self._in_flight:
                continue
            ids = list(self._in_flight)
            try:
                kept = await self.frontier.renew(ids)
            except Exception as exc:
                log.warning("lease renewal failed: %s", exc)
                continue
            lost = len(ids) - len(kept)
            if lost:
                log.warning(
                    "%d leases were lost before renewal; those URLs go to other workers", lost
                )

    # --- one fetch ----------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        while True:
            task = await self._queue.get()
            if task is _STOP:
                return
            self._in_flight[task.id] = task
            try:
                await self._process(task)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug in our own code must not kill the worker: the lease expires and the URL
                # is tried again (and ends dead after max attempts), with the error logged.
                log.exception("unexpected error on %s", task.url)
            finally:
                self._in_flight.pop(task.id, None)
                self._work_ready.set()

    async def _process(self, task: Task) -> None:
        if self.robots is not None:
            decision = await self.robots.check(task.url)
            if not decision.allowed:
                await self._skip(task, decision.reason, decision.retry_in)
                return
        counters = self.counters
        counters.fetch_started(task.host)
        started = time.monotonic()
        result = FetchResult.FAILED
        status: int | None = None
        try:
            try:
                record = await download(
                    self.session,
                    task.url,
                    self.store,
                    headers=self.options.headers,
                    max_size=self.options.max_size,
                    meta={"depth": task.depth, "parent": task.parent, "attempt": task.attempts + 1},
                )
                verdict = classify_record(record)
            except DownloadError as exc:
                record = exc.record
                verdict = classify_error(exc.__cause__ or exc)
            status = record.status
            result = _RESULTS[verdict.action]
            counters.add_bytes(record.received)
            await self._settle(task, record, verdict)
        finally:
            counters.fetch_finished(
                task.host, result, status=status, seconds=time.monotonic() - started
            )

    async def _settle(self, task: Task, record: FetchRecord, verdict: Verdict) -> None:
        if verdict.action is Action.RETRY:
            await self.frontier.retry(task, verdict.delay, verdict.reason, status=verdict.status)
        elif verdict.action is Action.FAIL:
            await self.frontier.fail(task, verdict.reason)
        else:
            links = await self._links(task, record)
            await self.frontier.ack(task, Outcome.DONE, links)

    async def _links(self, task: Task, record: FetchRecord) -> list[str]:
        max_depth = self.options.max_depth
        if max_depth is not None and task.depth >= max_depth:
            return []
        if record.outcome is not StoreOutcome.STORED or record.path is None:
            return []
        if not is_html(record.content_type):
            return []
        if record.size is not None and record.size > MAX_PARSE_BYTES:
            return []
        body = await asyncio.to_thread(_read_small, self.store.absolute(record.path))
        return extract_links_from_body(
            body,
            record.final_url or task.url,
            record.content_type,
            honor_nofollow=self.options.honor_nofollow,
        )

    async def _skip(self, task: Task, reason: str, retry_in: float | None) -> None:
        if retry_in is not None:
            await self.frontier.retry(task, retry_in, reason)
            return
        self.counters.fetch_skipped()
        self.store.records.append(
            FetchRecord(
                url=task.url,
                outcome=StoreOutcome.SKIPPED,
                error=reason,
                fetched_at=time.time(),
                writer=self.store.writer_id,
                meta={"depth": task.depth, "parent": task.parent},
            )
        )
        await self.frontier.ack(task, Outcome.SKIPPED, reason=reason)


_RESULTS = {
    Action.DONE: FetchResult.DONE,
    Action.RETRY: FetchResult.RETRIED,
    Action.FAIL: FetchResult.FAILED,
}


def _read_small(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(MAX_PARSE_BYTES)


# A sentinel put on the queue to end a fetch loop.
_STOP: Any = object()
