"""One worker: lease → fetch → store → extract → ack, with `concurrency` fetches at once.

Leases are taken in batches and a few tasks are kept queued beyond `concurrency`, so fetch tasks
rarely wait on the frontier; when the frontier comes up short (host slots taken), the lease loop
asks again once fetches were acknowledged, not on a timer. While a fetch streams, its lease is
renewed, so a two-hour download keeps its URL while a killed worker's URLs come back within a
lease.

Redirects are tasks of their own: a 3xx is recorded as it came and its Location goes to the
frontier as a link, so the target is fetched once, under its own host's politeness limits and
only when in scope (see `Worker._follows_redirects` for the exception). A refresh (a `Refresh`
header of a 2xx response, or an HTML page's `<meta http-equiv="refresh">`) is a redirect too:
its target goes to the frontier the same way, at the page's depth, unless it is
MAX_REFRESH_DELAY_S or more away. Links this worker has already handed to the frontier are not
sent again (a bounded in-memory set): most links of a site are repeats, and each costs the
frontier a canonicalization and a lookup.

A frontier outage (`FrontierUnavailable`: Redis restarting, say) does not end the worker: each
frontier call waits and tries again until the store is back, so a fetched page is acknowledged
once it can be, instead of being fetched again after its lease expires. Leases of tasks still
waiting for a fetcher are renewed like those in flight, and a task whose lease was lost while it
waited (an outage longer than a lease) is dropped, not fetched a second time. A frontier error
that no wait cures (`FrontierJobLost`: the job was wiped from Redis; `FrontierConfigError`)
stops the worker with one line and `WorkerExit.FRONTIER_FAILED`.

Stopping (`stop()`, called on SIGINT/SIGTERM): no more leases; tasks not started are handed
back untouched; in-flight fetches get `grace_s` to finish, then are cancelled (their `.part`
files stay for the next attempt) and handed back too.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from crawler.extract import (
    extract_page_from_body,
    extract_refresh_from_body,
    is_html,
    resolve_link,
)
from crawler.frontier import Frontier, FrontierError, FrontierUnavailable, Link, Outcome, Task
from crawler.refresh import Refresh, parse_refresh
from crawler.robots_header import forbids_following
from crawler.sitemaps import SitemapKind
from storage import DownloadError, FetchRecord, RateLimit, Store, fetch_page
from storage import Outcome as StoreOutcome
from workers.outcomes import (
    DISK_ADVICE,
    Action,
    Verdict,
    classify_error,
    classify_record,
    disk_failure,
)
from workers.progress import CrawlCounters, FetchResult
from workers.sitemap_tasks import sitemap_kind, sitemap_links, sitemap_task_link

if TYPE_CHECKING:
    from crawler.robots import Robots

log = logging.getLogger("crawl.worker")
T = TypeVar("T")

__all__ = ["Worker", "WorkerExit", "WorkerOptions"]

# Pages larger than this are stored but not parsed for links: a crawler reading a 1 GB
# "HTML" file into memory is how crawlers die.
MAX_PARSE_BYTES = 16 << 20
INLINE_READ_BYTES = 256 << 10
# An untyped body is HTML when its first bytes say so (browsers sniff about this much).
SNIFF_BYTES = 1024
# A refresh this many seconds away or more is not followed: a page shown for minutes before it
# moves on is a page of its own (a "this site has moved" notice, a live score reloading), not a
# redirect. Scrapy's METAREFRESH_MAXDELAY, compared as Scrapy does (a delay of 99 is followed).
MAX_REFRESH_DELAY_S = 100
# Links remembered as already handed to the frontier (about 100 bytes each).
SEEN_LINKS_MAX = 500_000
_NEVER_SENT = 1 << 62  # the depth of a link not sent yet: deeper than any
IDLE_POLL_MIN_S = 0.02
IDLE_POLL_MAX_S = 0.25
# While the frontier's store is down (a Redis restart), calls are tried again this often.
OUTAGE_RETRY_MIN_S = 0.5
OUTAGE_RETRY_MAX_S = 10.0


class WorkerExit(enum.IntEnum):
    FINISHED = 0
    INTERRUPTED = 130
    DISK_FAILED = 75  # the output folder could not be written: URLs handed back (see _halt)
    # The frontier failed in a way no retry fixes (its job was wiped from Redis, its user may
    # not run scripts): see `_frontier_failed`. EX_UNAVAILABLE, sysexits.h.
    FRONTIER_FAILED = 69


@dataclass(slots=True)
class WorkerOptions:
    name: str
    concurrency: int = 64
    lease_batch: int = 64
    max_depth: int | None = None
    max_size: int | None = None
    honor_nofollow: bool = False
    user_agent: str = ""  # its product token scopes X-Robots-Tag directives
    max_redirects: int = 10
    renew_s: float = 20.0
    grace_s: float = 10.0
    headers: Mapping[str, str] = field(default_factory=dict)
    rate_limit: RateLimit | None = None  # shared by every fetch of the process
    accept: Callable[[str | None], bool] | None = None  # Content-Types kept (--accept-type)


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
        # Leased and waiting in `_queue` for a fetcher: their leases are renewed too (a queue
        # behind slow downloads, or a Redis outage, can hold them past a lease), and those
        # found lost meanwhile are dropped instead of fetched (another worker has them).
        self._waiting: dict[str, Task] = {}
        self._lost: set[str] = set()
        self._stopping = asyncio.Event()
        self._work_ready = asyncio.Event()
        # URL -> the smallest depth it was handed to the frontier at: a link found again
        # nearer a seed goes again, so the frontier can lower a queued task's depth (see
        # docs/frontier.md, "depth") and --max-depth counts the shortest path.
        self._seen_links: dict[str, int] = {}
        # Per host, when this worker may start its next request there (robots.txt Crawl-delay).
        self._host_next_start: dict[str, float] = {}
        self._advised_hosts: set[str] = set()  # hosts whose failure advice was logged
        self._halted: str | None = None  # why the output folder cannot be written (see _halt)
        self._broken: FrontierError | None = None  # see _frontier_failed
        # Records are written a batch at a time, just before the frontier commits the acks
        # they belong to: a page the frontier calls done always has its record, and a batch of
        # pages costs one write instead of one each.
        store.records.hold()
        frontier.before_settling(self._write_records)

    # --- lifecycle ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop leasing and wind down (see the module docstring)."""
        self._stopping.set()
        self._work_ready.set()

    def _write_records(self) -> None:
        # Halted, nothing is settled but hand-backs, which need no record on disk: the held
        # records would only fail again (the disk is full) and keep the URLs from going back.
        if self._halted is None:
            self.store.records.flush()

    async def _halt(self, task: Task, reason: str) -> None:
        """The output folder cannot be written (disk full, read-only): no URL is to blame and
        every fetch would fail alike, so stop the worker, and hand `task` back untried (no
        attempt counted) like every URL still in progress. Run again once there is room."""
        if self._halted is None:
            self._halted = reason
            log.error(
                "stopping: cannot write under %s (%s); %s",
                self.store.out_dir, reason, DISK_ADVICE,
            )  # fmt: skip
            self.stop()
        await self._hand_back([task])

    def _frontier_failed(self, error: FrontierError) -> None:
        """The frontier raised an error that waiting does not cure (FrontierJobLost: the job
        was wiped from Redis; FrontierConfigError: refused commands). Going on would fetch
        pages nobody can record as done, or call a wiped job finished: stop, say why once, and
        exit with FRONTIER_FAILED (not a crash: a supervisor must not restart us into it)."""
        if self._broken is None:
            self._broken = error
            log.error("stopping: %s", error)
            self.stop()

    async def run(self) -> WorkerExit:
        """Fetch until the frontier is finished (FINISHED) or `stop()` was called (INTERRUPTED);
        FRONTIER_FAILED when the frontier failed for good (see `_frontier_failed`)."""
        renewer = asyncio.create_task(self._renew_loop(), name="renew-leases")
        fetchers = [
            asyncio.create_task(self._fetch_loop(), name=f"fetch-{i}")
            for i in range(self.options.concurrency)
        ]
        finished = False
        try:
            try:
                finished = await self._lease_loop()
            except FrontierUnavailable as error:
                # Raised only once stopping (see _through_outage): an interrupted run, not a
                # crash; the leases held expire back into their queues.
                log.warning("stopping while the frontier is unavailable: %s", error)
            except FrontierError as error:
                self._frontier_failed(error)
        finally:
            exit_code = await self._wind_down(fetchers)
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            if self._halted is None:
                self.store.records.flush()  # those of fetches whose acks did not go through
        if self._halted is not None:
            return WorkerExit.DISK_FAILED
        if self._broken is not None:
            return WorkerExit.FRONTIER_FAILED
        if finished and exit_code is WorkerExit.FINISHED:
            return WorkerExit.FINISHED
        return WorkerExit.INTERRUPTED

    async def _lease_loop(self) -> bool:
        """Keep the queue fed; True when the frontier says the job is finished.

        A few tasks beyond `concurrency` are kept queued so fetchers never wait on the frontier,
        but only a few: a queued task holds one of its host's slots that another worker could
        be fetching with.
        """
        idle = IDLE_POLL_MIN_S
        prefetch = max(1, min(self.options.lease_batch, self.options.concurrency // 4))
        capacity = self.options.concurrency + prefetch
        while not self._stopping.is_set():
            room = capacity - self._queue.qsize() - len(self._in_flight)
            if room < max(1, prefetch // 2):
                # Enough work queued: wait until fetchers have drained some of it.
                self._work_ready.clear()
                await self._work_ready.wait()
                continue
            # Cleared before asking, so a fetch that ends while we ask wakes the wait below.
            self._work_ready.clear()
            asked = min(room, self.options.lease_batch)
            left = await self._pages_left()
            if left is not None and left < asked:
                if left <= 0:
                    if not self._in_flight and self._queue.empty():
                        return True  # the job's page budget is spent: we are done
                    # Ours still run; one may come back for a retry and need a lease again.
                    await _wait(self._work_ready, idle)
                    idle = min(idle * 2, IDLE_POLL_MAX_S)
                    continue
                asked = left
            tasks = await self._through_outage(self.frontier.lease, asked, self.options.name)
            busy = bool(self._in_flight) or not self._queue.empty()
            if tasks:
                idle = IDLE_POLL_MIN_S
                for task in tasks:
                    self._waiting[task.id] = task
                    self._queue.put_nowait(task)
                if len(tasks) < asked and busy:
                    # The frontier had fewer: host slots are taken, mostly by our own fetches.
                    # Ask again once one of them was acknowledged (acks that arrive meanwhile
                    # make the next lease a batch), not in a loop.
                    await _wait(self._work_ready, idle)
                continue
            if busy:
                # Our own fetches hold host slots and bring new links: ask again as soon as
                # one has been acknowledged, or after a while for other workers' URLs.
                await _wait(self._work_ready, idle)
            else:
                if await self._through_outage(self.frontier.is_finished):
                    return True
                # Nothing leasable now (hosts waiting out their delays, or other workers hold
                # the rest): poll with a growing pause so an idle worker does not hammer the
                # frontier.
                await _wait(self._stopping, idle)
            idle = min(idle * 2, IDLE_POLL_MAX_S)
        return False

    async def _pages_left(self) -> int | None:
        """How many more URLs the job's page budget (`max_pages`) lets us lease; None: no
        budget. Finished URLs and those leased (by any worker) count. The frontier's lease
        enforces the budget exactly; this read, just before each lease, tells the worker when
        it is spent (so it ends instead of polling) and bounds a Redis job of several
        partitions, whose scripts each see one partition's counts."""
        budget = self.frontier.settings.max_pages
        if budget is None:
            return None
        stats = await self._through_outage(self.frontier.stats)
        return budget - (stats.done + stats.failed + stats.dead + stats.leased)

    async def _wind_down(self, fetchers: list[asyncio.Task[None]]) -> WorkerExit:
        unstarted: list[Task] = []
        while not self._queue.empty():
            task = self._queue.get_nowait()
            self._waiting.pop(task.id, None)
            if task.id not in self._lost:
                unstarted.append(task)
        self._lost.clear()
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

    async def _through_outage(self, call: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        """`call(*args, **kw)`, tried again while the frontier is unavailable.

        Gives up (raising) only once the worker is stopping: the leases it holds then expire
        back into their queues, so nothing is lost.
        """
        pause = OUTAGE_RETRY_MIN_S
        while True:
            try:
                return await call(*args, **kw)
            except FrontierUnavailable as exc:
                if self._stopping.is_set():
                    raise
                log.warning("frontier unavailable (%s); trying again in %.1f s", exc, pause)
                await _wait(self._stopping, pause)
                pause = min(pause * 2, OUTAGE_RETRY_MAX_S)
            except FrontierError as exc:
                self._frontier_failed(exc)
                raise

    async def _hand_back(self, tasks: list[Task]) -> None:
        if self._broken is not None:
            return  # the frontier refuses us: the leases expire (or are gone with the job)
        try:
            await self.frontier.release(tasks)
        except Exception as exc:  # the leases expire anyway: nothing is lost
            log.warning(
                "could not hand back %d tasks (%s); their leases will expire", len(tasks), exc
            )

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.renew_s)
            if not self._in_flight and not self._waiting:
                continue
            ids = [*self._in_flight, *self._waiting]
            try:
                kept = await self.frontier.renew(ids)
            except FrontierError as exc:
                if not isinstance(exc, FrontierUnavailable):
                    self._frontier_failed(exc)
                    return
                log.warning("lease renewal failed: %s", exc)
                continue
            except Exception as exc:
                log.warning("lease renewal failed: %s", exc)
                continue
            for task_id in [t for t in self._waiting if t not in kept and t in ids]:
                del self._waiting[task_id]
                self._lost.add(task_id)  # not to be started: see _still_ours
            lost = len(ids) - len(kept)
            if lost:
                log.warning(
                    "%d leases were lost before renewal; those URLs go to other workers", lost
                )

    # --- one fetch ----------------------------------------------------------------------------

    async def _still_ours(self, task: Task) -> bool:
        """Whether the lease on `task`, just taken off the queue, is still this worker's.

        A task whose lease a renewal found lost, or that waited past its deadline (Redis was
        down longer than a lease, say, when the renewals failed), may be another worker's by
        now: fetching it too would fetch and record the page twice. The deadline is the
        store's clock, so one read as past on a skewed machine only costs a renewal."""
        self._waiting.pop(task.id, None)
        if task.id in self._lost:
            self._lost.discard(task.id)
            return False
        if time.time() < task.deadline:
            return True
        try:
            kept = await self._through_outage(self.frontier.renew, [task])
        except FrontierError:
            return False  # stopping, or the frontier failed for good: not to be fetched
        if task.id in kept:
            return True
        log.info("%s: its lease expired while it waited; another worker fetches it", task.url)
        return False

    async def _fetch_loop(self) -> None:
        while True:
            task = await self._queue.get()
            if task is _STOP:
                return
            if not await self._still_ours(task):
                self._work_ready.set()
                continue
            if self._halted is not None:
                await self._hand_back([task])  # leased before the halt: back, untried
                continue
            self._in_flight[task.id] = task
            cancelled = False
            try:
                await self._process(task)
            except asyncio.CancelledError:
                # Cut off at the end of the grace period: left in flight, so that `_wind_down`
                # hands it back (its lease would otherwise hold it from every worker).
                cancelled = True
                raise
            except Exception as exc:
                if self._broken is not None and isinstance(exc, FrontierError):
                    continue  # said once by _frontier_failed; the worker is stopping
                if isinstance(exc, FrontierUnavailable) and self._stopping.is_set():
                    # Stopped while the store is down (see _through_outage): not a bug.
                    log.warning(
                        "%s: not settled, the frontier is unavailable; its lease expires and "
                        "it is fetched again",
                        task.url,
                    )
                    continue
                disk = disk_failure(exc)
                if disk is not None:  # writing a record or an ack's records: see _halt
                    await self._halt(task, f"{type(disk).__name__}: {disk}")
                    continue
                # A bug in our own code must not kill the worker: the lease expires and the URL
                # is tried again (and ends dead after max attempts), with the error logged.
                log.exception("unexpected error on %s", task.url)
            finally:
                if not cancelled:
                    self._in_flight.pop(task.id, None)
                self._work_ready.set()

    async def _process(self, task: Task) -> None:
        if self.robots is not None:
            decision = await self._through_outage(self.robots.check, task.url)
            if not decision.allowed:
                await self._skip(task, decision.reason, decision.retry_in)
                return
            if decision.delay and not await self._spaced(task, decision.delay):
                return
        counters = self.counters
        counters.fetch_started(task.host)
        started = time.monotonic()
        result: FetchResult | None = FetchResult.FAILED
        status: int | None = None
        body: bytes | None = None
        meter = _ByteMeter(counters)
        try:
            try:
                record, body = await fetch_page(
                    self.session,
                    task.url,
                    self.store,
                    headers=self.options.headers,
                    max_size=self.options.max_size,
                    allow_redirects=self._follows_redirects(task),
                    meta={"depth": task.depth, "parent": task.parent, "attempt": task.attempts + 1},
                    rate_limit=self.options.rate_limit,
                    # A robots.txt or sitemap read for its URLs is kept whatever its type.
                    accept=self.options.accept if sitemap_kind(task) is None else None,
                    progress=meter,
                )
                verdict = classify_record(record)
            except DownloadError as exc:
                record = exc.record
                cause = exc.__cause__ or exc
                verdict = classify_error(cause)
                if verdict.unexpected:
                    log.warning("unexpected error fetching %s", task.url, exc_info=cause)
                elif (
                    verdict.advice
                    and verdict.action is not Action.HALT  # said once by _halt, for all hosts
                    and task.host not in self._advised_hosts
                ):
                    self._advised_hosts.add(task.host)
                    log.warning("%s: %s; %s", task.host, verdict.reason, verdict.advice)
            status = record.status
            result = _RESULTS[verdict.action]
            if verdict.action is Action.HALT:
                await self._halt(task, verdict.reason)
                return
            if result is FetchResult.RETRIED and self._last_attempt(task):
                result = FetchResult.FAILED  # the frontier gives this URL up: it counts as failed
            meter.settle(record.received)
            await self._settle(task, record, verdict, body)
        except asyncio.CancelledError:
            result = None  # handed back by `_wind_down`: neither failed nor retried
            raise
        finally:
            if result is None:
                counters.fetch_abandoned(task.host)
            else:
                counters.fetch_finished(
                    task.host, result, status=status, seconds=time.monotonic() - started
                )

    async def _settle(
        self, task: Task, record: FetchRecord, verdict: Verdict, body: bytes | None = None
    ) -> None:
        if self._halted is not None:
            # Its record cannot be trusted to reach the disk: the URL goes back, untried.
            await self._hand_back([task])
            return
        if verdict.action is Action.RETRY:
            await self._through_outage(
                self.frontier.retry, task, verdict.delay, verdict.reason, status=verdict.status
            )
        elif verdict.action is Action.FAIL:
            await self._through_outage(self.frontier.fail, task, verdict.reason)
        elif verdict.action is Action.SKIP:
            await self._through_outage(
                self.frontier.ack, task, Outcome.SKIPPED, reason=verdict.reason
            )
        else:
            depth = task.depth + 1  # of its links (a redirect's or refresh's keeps the page's)
            links = self._unseen(await self._links(task, record, body), depth)
            # Remembered before the ack goes out, so concurrent acks do not carry them again;
            # forgotten if it fails (a lost lease may have dropped them): the page is fetched
            # again, and its links sent again, by whichever worker gets it next.
            urls = self._remember(links, depth)
            acked = False
            try:
                acked = await self._through_outage(self.frontier.ack, task, Outcome.DONE, links)
            finally:
                if not acked:
                    for url in urls:
                        self._seen_links.pop(url, None)

    def _unseen(self, links: list[str | Link], depth: int) -> list[str | Link]:
        """Links this worker has not handed to the frontier before at `depth` or less (a
        `keeps_depth` Link is at `depth - 1`, its page's).

        Most links of a site point to pages every other page links to as well; the frontier
        would canonicalize and look each one up only to find it known.
        """
        seen = self._seen_links
        never = _NEVER_SENT
        return [
            link
            for link in links
            if (
                seen.get(link, never) > depth
                if type(link) is str
                else seen.get(link.url, never) > depth - link.keeps_depth
            )
        ]

    def _remember(self, links: list[str | Link], depth: int) -> list[str]:
        seen = self._seen_links
        if len(seen) + len(links) > SEEN_LINKS_MAX:
            seen.clear()  # a cache, not a record: forgetting costs only repeated lookups
        urls = []
        for link in links:
            if type(link) is str:
                seen[link] = depth
                urls.append(link)
            else:
                seen[link.url] = depth - link.keeps_depth
                urls.append(link.url)
        return urls

    async def _spaced(self, task: Task, delay: float) -> bool:
        """Wait for `task.host`'s Crawl-delay since this worker's last start there; False when
        the wait is too long to hold a lease through, and the task was handed back instead.

        The frontier spaces a host's leases once it knows the delay, but the tasks leased
        before its robots.txt was read (up to --per-host of them) are in hand already: they
        would go out at once, then the delay would apply only after.
        """
        delay = min(delay, self.frontier.settings.max_crawl_delay)
        now = time.monotonic()
        # A host first met here: its robots.txt, a request too, was most likely read just now.
        start = max(now, self._host_next_start.get(task.host, now + delay))
        wait = start - now
        if wait > self.frontier.settings.lease_seconds / 2:
            # The frontier holds it back until the host may be asked again.
            await self._through_outage(self.frontier.release, [task])
            return False
        spacing = self._host_next_start
        if len(spacing) > 10_000:  # hosts whose time has come need no entry
            for host in [host for host, at in spacing.items() if at <= now]:
                del spacing[host]
        spacing[task.host] = start + delay
        if wait > 0:
            await asyncio.sleep(wait)
        return True

    def _follows_redirects(self, task: Task) -> bool:
        """Whether the fetch itself follows redirects.

        A crawl hands a redirect's target to the frontier as a link instead (at the same
        depth: a redirect is not a link, so the depth limit never cuts it off), so it is
        fetched under its own host's politeness limits, only when in scope and allowed by
        robots.txt, and once however many URLs redirect to it. Only a job of listed URLs
        (depth 0, robots.txt not read: every `crawl mirror`, or `crawl run --max-depth 0
        --no-robots`) follows redirects in the fetch, as `wget URL` does: the user named the
        file, wherever it has moved to (often another host: a download mirror, a CDN).
        """
        robots = self.robots
        reads_robots = robots is not None and robots.enabled
        return self.options.max_depth == 0 and not reads_robots and sitemap_kind(task) is None

    async def _links(
        self, task: Task, record: FetchRecord, body: bytes | None = None
    ) -> list[str | Link]:
        """Links of a stored HTML page; `body` is its bytes when storage kept them (small
        pages), else the file is read back."""
        sitemap = sitemap_kind(task)
        redirected = record.status is not None and 300 <= record.status < 400
        if redirected and record.status != 304:
            return self._redirect_target(task, record, sitemap)
        if sitemap is not None:
            # Not limited by depth: what a sitemap lists is as deep as the sitemap.
            return await self._sitemap_links(task, record, body, sitemap)
        # A job of listed URLs follows redirects in the fetch and no refresh, as `wget URL`.
        wants_refresh = not self._follows_redirects(task)
        refresh: list[str | Link] = []
        if wants_refresh:
            declared = self._header_refresh(record)
            if declared is not None:
                # HTML processes the header before the page's <meta>s, and only the first
                # refresh of a document counts: with one in the header, a <meta> is ignored.
                wants_refresh = False
                refresh = self._refresh_target(task, declared, record.final_url or task.url)
        # Like a redirect's, a refresh's target keeps the page's depth: still followed here.
        wants_links = not self._at_max_depth(task)
        if not wants_links and not wants_refresh:
            return refresh
        # A 304 (a recrawl) kept the stored page: its links are followed from that file.
        if record.outcome not in _PARSED_OUTCOMES or record.path is None:
            return refresh
        content_type = record.content_type
        if content_type is not None and not is_html(content_type):
            return refresh
        # Page-level nofollow is about what the page says, its <meta> refresh included; a
        # Refresh header is the server's, followed as a Location is.
        if self.options.honor_nofollow and self._header_says_nofollow(record):
            return refresh
        if record.size is not None and record.size > MAX_PARSE_BYTES:
            return refresh
        if body is None:
            path = self.store.absolute(record.path)
            try:
                if record.size is not None and record.size <= INLINE_READ_BYTES:
                    # Just written, so in the page cache: reading it here beats a thread hop.
                    body = _read_small(path)
                else:
                    # Of a large untyped file only its first bytes are read, unless HTML.
                    if content_type is None and not is_html(None, _read_small(path, SNIFF_BYTES)):
                        return []
                    body = await asyncio.to_thread(_read_small, path)
            except OSError as exc:  # removed or replaced since (by hand, or another crawl)
                log.warning("%s: links not read from %s: %s", task.url, path, exc)
                return refresh
        if content_type is None and not is_html(None, body[:SNIFF_BYTES]):
            return refresh  # untyped (as a 304 usually is): HTML only if its bytes start as HTML
        page_url = record.final_url or task.url
        honor_nofollow = self.options.honor_nofollow
        if not wants_links:
            # At the depth limit: the page is parsed only when its bytes may hold a refresh.
            found = extract_refresh_from_body(
                body, page_url, content_type, honor_nofollow=honor_nofollow
            )
            return self._refresh_target(task, found) if found is not None else []
        page = extract_page_from_body(body, page_url, content_type, honor_nofollow=honor_nofollow)
        if wants_refresh and page.refresh is not None:
            # First, so that a target the page also links to is taken at the page's depth.
            refresh = self._refresh_target(task, page.refresh)
        return [*refresh, *page.links] if refresh else list(page.links)

    def _header_refresh(self, record: FetchRecord) -> Refresh | None:
        """The parsed `Refresh` header of a 2xx response (its first, as a browser takes it),
        or None when there is none or it does not parse."""
        status = record.status
        if status is None or not 200 <= status < 300:
            return None
        if record.outcome not in _PARSED_OUTCOMES and record.outcome is not StoreOutcome.NOT_STORED:
            return None  # cut short or failed: not a response the page was taken from
        value = record.header("refresh")
        return parse_refresh(value) if value else None

    def _refresh_target(
        self, task: Task, refresh: Refresh, base_url: str | None = None
    ) -> list[str | Link]:
        """The link to a refresh's target, handed to the frontier as a redirect's is; none when
        its delay is too long or the redirect budget is spent. `refresh.url` is resolved
        against `base_url` when given (a header's); a page's refresh comes resolved."""
        if refresh.url is None:
            return []  # a reload of the page itself
        if refresh.delay >= MAX_REFRESH_DELAY_S:
            log.info("%s: not following its refresh, %d s away", task.url, refresh.delay)
            return []
        target: str | None = refresh.url
        if base_url is not None:
            try:
                target = resolve_link(refresh.url, base_url)
            except ValueError:  # includes an undecodable header (UnicodeEncodeError)
                return []
        if target is None or target == base_url:
            return []
        # One budget with redirects (as Scrapy's REDIRECT_MAX_TIMES): a site that refreshes
        # to a new URL every time keeps the depth and would otherwise never be cut off.
        hops = self._redirect_hops(task)
        if hops > self.options.max_redirects:
            log.info("%s: not following its refresh, %d redirects already", task.url, hops - 1)
            return []
        meta = {"redirects": hops, "refresh": refresh.delay}
        return [Link(target, task.priority, meta, keeps_depth=True)]

    def _header_says_nofollow(self, record: FetchRecord) -> bool:
        values = [value for name, value in record.headers if name.lower() == "x-robots-tag"]
        if not values:
            return False
        return forbids_following(values, self.options.user_agent)

    def _at_max_depth(self, task: Task) -> bool:
        max_depth = self.options.max_depth
        return max_depth is not None and task.depth >= max_depth

    async def _sitemap_links(
        self, task: Task, record: FetchRecord, body: bytes | None, kind: SitemapKind
    ) -> list[str | Link]:
        if record.outcome not in _PARSED_OUTCOMES or record.path is None:
            return []
        path = self.store.absolute(record.path)
        return await sitemap_links(task, record.final_url or task.url, body, path, kind)

    def _redirect_target(
        self, task: Task, record: FetchRecord, sitemap: SitemapKind | None = None
    ) -> list[str | Link]:
        location = record.header("location")
        if not location:
            return []
        hops = self._redirect_hops(task)
        if hops > self.options.max_redirects:
            log.info("%s: not following its redirect, %d hops already", task.url, hops - 1)
            return []
        try:
            target = resolve_link(location, task.url)
        except ValueError:
            return []
        if target is None:
            return []
        if sitemap is not None:  # a sitemap that moved is still a sitemap
            return [sitemap_task_link(target, sitemap, redirects=hops)]
        return [Link(target, task.priority, {"redirects": hops}, keeps_depth=True)]

    @staticmethod
    def _redirect_hops(task: Task) -> int:
        """How many redirects (and refreshes) led to `task`'s URL, counting one more."""
        meta = task.meta if isinstance(task.meta, dict) else {}
        earlier = meta.get("redirects", 0)
        return (earlier if isinstance(earlier, int) else 0) + 1

    async def _skip(self, task: Task, reason: str, retry_in: float | None) -> None:
        """Settle a task that is not fetched (robots.txt), with a record saying why.

        `retry_in`: the URL waits and is tried again (its robots.txt was unreachable), an
        attempt like a failed fetch: on the last one the frontier gives the URL up, and the
        record says so.
        """
        meta = {"depth": task.depth, "parent": task.parent, "attempt": task.attempts + 1}
        if retry_in is None:
            error = reason
            self.counters.fetch_skipped()
        elif self._last_attempt(task):
            tries = task.attempts + 1
            error = f"{reason}; given up after {tries} attempt{'s' if tries != 1 else ''}"
            self.counters.fetch_skipped(FetchResult.FAILED)
        else:
            error = f"{reason}; tried again in {retry_in:g} s"
            self.counters.fetch_skipped(FetchResult.RETRIED)
        self.store.records.append(
            FetchRecord(
                url=task.url,
                outcome=StoreOutcome.SKIPPED,
                error=error,
                fetched_at=time.time(),
                writer=self.store.writer_id,
                meta=meta,
            )
        )
        if retry_in is not None:
            await self._through_outage(self.frontier.retry, task, retry_in, reason)
        else:
            await self._through_outage(self.frontier.ack, task, Outcome.SKIPPED, reason=reason)

    def _last_attempt(self, task: Task) -> bool:
        """Whether a retry of `task` now would be its last attempt (the frontier's verdict is
        then "dead", not "again later")."""
        return task.attempts + 1 >= self.frontier.settings.max_attempts


_PARSED_OUTCOMES = frozenset({StoreOutcome.STORED, StoreOutcome.NOT_MODIFIED})


_RESULTS = {
    Action.DONE: FetchResult.DONE,
    Action.RETRY: FetchResult.RETRIED,
    Action.FAIL: FetchResult.FAILED,
    Action.SKIP: FetchResult.SKIPPED,
    Action.HALT: FetchResult.RETRIED,  # handed back, to be fetched once there is room
}


async def _wait(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


def _read_small(path: Path, limit: int = 0) -> bytes:
    """The file's bytes, at most `limit` (default MAX_PARSE_BYTES), read with as many bytes
    asked for as it has: `read(n)` allocates n bytes up front, and 16 MB per page costs more
    than parsing it."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        want = min(os.fstat(fd).st_size, limit or MAX_PARSE_BYTES)
        pieces = []
        while want > 0:
            piece = os.read(fd, want)
            if not piece:
                break
            pieces.append(piece)
            want -= len(piece)
    finally:
        os.close(fd)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


class _ByteMeter:
    """A fetch's progress callback: body bytes into the counters as they arrive, so MB/s moves
    during a long download and an interrupted one still counts what came. The first report
    is the baseline (a resumed `.part`'s prefix did not arrive now); `settle` adds, at the
    end, whatever the reports did not cover."""

    __slots__ = ("counted", "counters", "last")

    def __init__(self, counters: CrawlCounters) -> None:
        self.counters = counters
        self.last: int | None = None
        self.counted = 0

    def __call__(self, size: int, _expected: int | None) -> None:
        last, self.last = self.last, size
        if last is not None and size > last:  # smaller: the body started over from zero
            self.counted += size - last
            self.counters.add_bytes(size - last)

    def settle(self, received: int) -> None:
        if received > self.counted:
            self.counters.add_bytes(received - self.counted)
            self.counted = received


# A sentinel put on the queue to end a fetch loop.
_STOP: Any = object()
