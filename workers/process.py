"""One worker process: its event loop, `ClientSession`, `Store`, robots policy and signals.

`run_worker_process(settings)` is what `crawl worker` runs (and what `crawl run` starts N of).
It returns the process exit code: 0 when the job is finished, 130 when interrupted (leases
handed back, records flushed).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from crawler.config import Settings
from crawler.config.values import NO_PROXY, PROXY_FROM_ENV
from crawler.content_types import accepts
from crawler.frontier import (
    Frontier,
    FrontierError,
    FrontierJobLost,
    FrontierUnavailable,
    job_exists,
    open_frontier,
)
from crawler.http import (
    AbstractCookieJar,
    ClientConnectorCertificateError,
    ClientSession,
    ClientTimeout,
    CookieJar,
    DummyCookieJar,
    ServerFingerprintMismatch,
    TCPConnector,
)
from crawler.http.tls import trusting_context
from storage import RateLimit, Store
from workers.job import PROGRESS_DIR, SETTINGS_ENV, frontier_settings, frontier_target
from workers.messages import say
from workers.progress import CrawlCounters, ProgressReporter
from workers.worker import Worker, WorkerExit, WorkerOptions

if TYPE_CHECKING:
    from crawler.robots import Robots

log = logging.getLogger("crawl.worker")

__all__ = [
    "SETTINGS_ENV",
    "frontier_settings",
    "frontier_target",
    "make_session",
    "run_worker_process",
]

ROBOTS_BYTES = 512 * 1024
# How often a worker reads the frontier's backlog for its progress counters.
BACKLOG_EVERY_S = 1.0
# Cycle collection while a worker runs (see `_crawl_gc`): generation 0, 1, 2 thresholds.
GC_THRESHOLDS = (10_000, 20, 20)


def make_session(settings: Settings, *, concurrency: int | None = None) -> ClientSession:
    """The session every fetch of a worker shares: one bounded pool, our headers, no cookies.

    `timeout` bounds connecting and each wait for bytes, not the whole transfer: a large file
    that keeps arriving is not cut, a server that stalls is.
    """
    limit = concurrency or settings.concurrency
    connector = TCPConnector(
        limit=limit, limit_per_host=settings.per_host, ssl=tls_setting(settings)
    )
    headers = {"User-Agent": settings.user_agent, **dict(settings.headers)}
    timeout = ClientTimeout(
        total=None,
        connect=settings.timeout,
        sock_connect=settings.timeout,
        sock_read=settings.timeout,
    )
    explicit_proxy = settings.proxy not in (PROXY_FROM_ENV, NO_PROXY)
    return ClientSession(
        connector=connector,
        headers=headers,
        timeout=timeout,
        cookie_jar=cookie_jar(settings),
        auto_decompress=True,
        proxy=settings.proxy if explicit_proxy else None,
        # The environment's proxies (and, as with every trust_env client, ~/.netrc's
        # credentials) apply unless the user chose a proxy or none.
        trust_env=settings.proxy == PROXY_FROM_ENV,
    )


def cookie_jar(settings: Settings) -> AbstractCookieJar:
    """No cookies (the default: every fetch stands alone), or a jar of this process's own,
    filled from --load-cookies. IP-address hosts keep cookies too: a crawl of a site on its
    address is still that site."""
    if not settings.cookies and settings.load_cookies is None:
        return DummyCookieJar()
    jar = CookieJar(unsafe=True)
    if settings.load_cookies is not None:
        from crawler.cookie_file import load_cookie_file

        loaded = load_cookie_file(settings.load_cookies, jar)
        log.info("%d cookie(s) loaded from %s", loaded, settings.load_cookies)
    return jar


def tls_setting(settings: Settings) -> bool | ssl.SSLContext:
    """How fetches verify TLS: the system's trust store (True), plus `ca_file`, or not at all."""
    if not settings.verify_tls:
        return False
    if settings.ca_file is None:
        return True
    return trusting_context(str(settings.ca_file))


def robots_fetcher(session: ClientSession):  # type: ignore[no-untyped-def]
    """`Robots`' fetcher: GET /robots.txt with our session, following redirects."""
    from crawler.robots import UntrustedOrigin  # only crawls that obey robots.txt load it

    async def fetch(url: str) -> tuple[int, bytes]:
        try:
            async with session.get(url) as resp:
                # read(n) gives what has arrived, up to n: a file longer than one network read
                # would lose its later rules. Read on to its end, or one byte past the limit
                # (so that `Robots` knows the file goes on, and keeps only whole lines).
                pieces: list[bytes] = []
                got = 0
                while got <= ROBOTS_BYTES:
                    piece = await resp.content.read(ROBOTS_BYTES + 1 - got)
                    if not piece:
                        break
                    pieces.append(piece)
                    got += len(piece)
                return resp.status, b"".join(pieces)
        except (ClientConnectorCertificateError, ServerFingerprintMismatch) as error:
            raise UntrustedOrigin(str(error)) from error

    return fetch


def run_worker_process(settings: Settings, *, index: int = 0, report: bool = False) -> int:
    """Run one worker until the job is finished or a signal stops it; returns the exit code.

    `report`: show this process's own progress and summary (`crawl worker`, run by a user or
    a container); the workers `crawl run` starts report to it instead.
    """
    with _crawl_gc():
        try:
            import uvloop  # type: ignore[import-not-found]
        except ImportError:
            return asyncio.run(_main(settings, index, report))
        return uvloop.run(_main(settings, index, report))


@contextlib.contextmanager
def _crawl_gc() -> Iterator[None]:
    """The cycle collector tuned for a crawl, and put back as it was afterwards.

    A fetch allocates hundreds of short-lived objects that reference counting frees; with the
    default thresholds the collector still runs a few times a second and, now and then, walks
    every object the process has (modules, classes, the frontier's caches), about 5% of a
    worker's time. What exists at start-up is frozen out of those walks, and young objects are
    looked at after GC_THRESHOLDS[0] more of them instead of 700.
    """
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


async def _open_job(settings: Settings) -> Frontier:
    """The job's frontier, which `crawl run` seeded (or `crawl worker` found) before this
    process started. Opening it would create it if it were gone: a worker restarted after its
    Redis lost the data (a restart without persistence, a FLUSHALL) would then find an empty
    job, call it finished and exit 0, with the pages it had queued never fetched."""
    target = frontier_target(settings)
    if not await job_exists(target, settings.job):
        where = "its Redis" if settings.redis else str(target)
        raise FrontierJobLost(
            f"job {settings.job!r} is no longer in {where} (a restart without persistence, "
            "a FLUSHALL, a deleted file?); the crawl is not finished: seed it again"
        )
    return await open_frontier(target, settings.job)


async def _main(settings: Settings, index: int, report: bool) -> int:
    try:
        frontier: Frontier = await _open_job(settings)
    except FrontierUnavailable as error:
        # One line, not a traceback; the supervisor starts the worker again (an outage).
        log.error("worker %d cannot reach the frontier: %s", index, error)
        return 1
    except FrontierError as error:
        # No restart cures it: the supervisor stops the others too (see EXIT_FRONTIER_FAILED).
        log.error("stopping: %s", error)
        return WorkerExit.FRONTIER_FAILED
    name = f"{socket.gethostname()}-{os.getpid()}"
    counters = CrawlCounters()
    reporter = _own_reporter(settings, counters) if report else None
    metrics = None
    if settings.metrics_port is not None:
        # prometheus_client is imported only by workers that serve metrics.
        from workers.metrics import metrics_port_for, serve_metrics

        port = metrics_port_for(settings.metrics_port, index)
        if port is not None:
            try:
                metrics = serve_metrics(counters, port, worker=str(index), job=settings.job)
            except (OSError, OverflowError) as error:
                # The crawl is the job, metrics a view of it: a port in use (or past 65535,
                # the base port + this worker's index) costs the view, not the crawl, nor a
                # restart loop of a worker that would fail the same way each time.
                log.error("worker %d serves no metrics: port %d: %s", index, port, error)
            else:
                # Said once at the start, so a scraper can be pointed at it; with port 0 the
                # port chosen is known nowhere else.
                say(
                    f"worker {index} serves metrics at http://{socket.gethostname()}:"
                    f"{metrics.port}/metrics",
                    settings.log_format,
                    "metrics",
                    worker=index,
                    port=metrics.port,
                )
    store = Store(
        settings.out,
        writer_id=name,
        fsync=settings.fsync.value,
        warc=settings.warc,
        warc_max_size=settings.warc_max_size,
    )
    session = make_session(settings)
    robots: Robots | None = None
    if settings.robots:
        # Imported only when asked for: --no-robots then pays neither protego's import nor a
        # check per fetch.
        from crawler.robots import Robots

        robots = Robots(frontier, robots_fetcher(session), user_agent=settings.user_agent)
    worker = Worker(
        frontier,
        session,
        store,
        WorkerOptions(
            name=name,
            concurrency=settings.concurrency,
            lease_batch=settings.lease_batch,
            # The job's (saved by the `crawl run` that seeded it), as the frontier's scope
            # is: this process's own flag may differ on another machine.
            max_depth=frontier.settings.scope.max_depth,
            max_size=settings.max_size,
            honor_nofollow=settings.honor_nofollow,
            user_agent=settings.user_agent,
            max_redirects=settings.max_redirects,
            renew_s=settings.renew_seconds or settings.lease_seconds / 3,
            grace_s=settings.grace_seconds,
            rate_limit=None if settings.limit_rate is None else RateLimit(settings.limit_rate),
            accept=accepts(settings.accept_types) if settings.accept_types else None,
        ),
        robots=robots,
        counters=counters,
    )
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal() -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            # Second signal: leave now. Leases expire and other workers take the URLs.
            os._exit(WorkerExit.INTERRUPTED)
        worker.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    snapshots = asyncio.create_task(_publish_snapshots(counters, settings.out, name))
    backlog = asyncio.create_task(_track_backlog(frontier, counters))
    reports = asyncio.create_task(reporter.run()) if reporter is not None else None
    code = WorkerExit.INTERRUPTED
    try:
        code = await worker.run()
    finally:
        for task in (snapshots, backlog, reports):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        disk_failed = code is WorkerExit.DISK_FAILED
        with contextlib.suppress(OSError) if disk_failed else contextlib.nullcontext():
            _write_snapshot(counters, settings.out, name)
        if reporter is not None:
            reporter.finish(interrupted=code is not WorkerExit.FINISHED)
        await session.close()
        await frontier.close()
        try:
            store.close()
        except OSError as exc:
            if not disk_failed:
                raise
            # Records of fetches handed back: those URLs are fetched (and recorded) again.
            log.warning("records not written: %s", exc)
        if metrics is not None:
            metrics.close()
    return int(code)


def _own_reporter(settings: Settings, counters: CrawlCounters) -> ProgressReporter:
    """Progress of this process alone: log lines (or a live view on a terminal) and a summary,
    where a container's log or the user's terminal shows them."""
    return ProgressReporter(
        counters.snapshot,
        progress=settings.progress,
        log_format=settings.log_format,
        interval=settings.progress_interval,
        stream=sys.stderr if not sys.stdout.isatty() else sys.stdout,
    )


async def _track_backlog(frontier: Frontier, counters: CrawlCounters) -> None:
    """Each second, the frontier's backlog (URLs queued, by every worker of the job) into the
    counters, for the progress view's "queued"."""
    while True:
        await asyncio.sleep(BACKLOG_EVERY_S)
        try:
            stats = await frontier.stats()
        except Exception as exc:  # an outage: the worker's own calls report and ride it out
            log.debug("backlog not read: %s", exc)
            continue
        counters.set_queued(stats.queued)


async def _publish_snapshots(counters: CrawlCounters, out: Path, name: str) -> None:
    """Each second, this process's counters to OUT/.progress/<name>.json for `crawl run`'s view."""
    while True:
        await asyncio.sleep(1.0)
        _write_snapshot(counters, out, name)


def _write_snapshot(counters: CrawlCounters, out: Path, name: str) -> None:
    folder = Path(out) / PROGRESS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{name}.json.tmp"
    tmp.write_text(json.dumps(counters.snapshot().to_dict()))
    os.replace(tmp, folder / f"{name}.json")


def main() -> None:
    """`python -m workers.process`: one worker with the settings `crawl run` put in the env."""
    from crawler.config import settings_from_mapping

    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise SystemExit(f"{SETTINGS_ENV} is not set; use `crawl worker` to start a worker by hand")
    settings = settings_from_mapping(json.loads(raw), source=SETTINGS_ENV)
    from workers.supervisor import wait_at_gate

    if not wait_at_gate():
        raise SystemExit(0)  # `crawl run` could not seed the job: nothing to do
    from workers.messages import configure_logging

    configure_logging(settings.log_format)
    code = run_worker_process(settings, index=int(os.environ.get("CRAWL_WORKER_INDEX", "0")))
    # Everything was closed and written by now (records, frontier, sockets): the interpreter's
    # teardown of every module would only keep the supervisor waiting, tens of ms per worker.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
