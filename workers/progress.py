"""Crawl progress: counters that workers bump cheaply, and a reporter that shows them.

Workers own one `CrawlCounters` per process and call `fetch_started`, `add_bytes` (per chunk) and
`fetch_finished`; those are a few integer additions, no locks, no I/O. Anything that shows
progress reads a `CounterSnapshot` (`counters.snapshot()`); snapshots of several processes
combine into one (`CounterSnapshot.combine`) after travelling as plain dicts (`to_dict`).

`ProgressReporter` turns snapshots into output: a live `rich` table when the stream is a
terminal, a log line every `interval` seconds otherwise (text or JSON), and a summary at the end.
"""

from __future__ import annotations

import bisect
import enum
import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TextIO

from crawler.config import LogFormat

if TYPE_CHECKING:  # rich is imported when a live view is shown: worker processes never need it
    from rich.console import Group
    from rich.live import Live

# Upper bounds (seconds) of the fetch latency histogram; the last bucket is +Inf.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip
STATUS_CLASSES: tuple[str, ...] = ("1xx", "2xx", "3xx", "4xx", "5xx", "error")
BUSIEST_SHOWN = 5


class FetchResult(enum.StrEnum):
    """What became of one fetch, as far as progress is concerned."""

    DONE = "done"  # stored (any HTTP status that is final: 200, 404, ...)
    FAILED = "failed"  # given up: final error, or retries exhausted
    RETRIED = "retried"  # handed back to the frontier to try again later
    SKIPPED = "skipped"  # not fetched: robots.txt, out of scope, too large before the body


@dataclass(frozen=True, slots=True)
class CounterSnapshot:
    """Counters at one moment; `at` is a `time.monotonic()` reading of the process that took it."""

    at: float
    started_at: float
    in_flight: int = 0
    queued: int = 0
    done: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    bytes: int = 0
    status_classes: tuple[int, ...] = (0,) * len(STATUS_CLASSES)
    latency_buckets: tuple[int, ...] = (0,) * (len(LATENCY_BUCKETS) + 1)
    latency_sum: float = 0.0
    busiest: tuple[tuple[str, int], ...] = ()

    @property
    def finished(self) -> int:
        """Fetches that reached an end (done or failed): what pages/s counts."""
        return self.done + self.failed

    @property
    def elapsed(self) -> float:
        return max(0.0, self.at - self.started_at)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (msgpack/JSON), for sending to a supervisor."""
        result = asdict(self)
        result["busiest"] = [list(pair) for pair in self.busiest]
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CounterSnapshot:
        values = dict(data)
        for name in ("status_classes", "latency_buckets"):
            values[name] = tuple(values[name])
        values["busiest"] = tuple((str(host), int(n)) for host, n in values.get("busiest", ()))
        return cls(**values)

    @classmethod
    def combine(cls, snapshots: Iterable[CounterSnapshot]) -> CounterSnapshot:
        """One snapshot for several processes: counts add up; `queued` (the frontier's backlog,
        which every process sees whole) is the largest reported; times span them all."""
        items = list(snapshots)
        if not items:
            now = time.monotonic()
            return cls(at=now, started_at=now)
        hosts: dict[str, int] = {}
        for item in items:
            for host, count in item.busiest:
                hosts[host] = hosts.get(host, 0) + count
        return cls(
            at=max(item.at for item in items),
            started_at=min(item.started_at for item in items),
            in_flight=sum(item.in_flight for item in items),
            queued=max(item.queued for item in items),
            done=sum(item.done for item in items),
            failed=sum(item.failed for item in items),
            retried=sum(item.retried for item in items),
            skipped=sum(item.skipped for item in items),
            bytes=sum(item.bytes for item in items),
            status_classes=tuple(map(sum, zip(*(i.status_classes for i in items), strict=True))),
            latency_buckets=tuple(map(sum, zip(*(i.latency_buckets for i in items), strict=True))),
            latency_sum=sum(item.latency_sum for item in items),
            busiest=_top(hosts),
        )


def _top(hosts: dict[str, int]) -> tuple[tuple[str, int], ...]:
    # Most in flight first, ties by name, so the display does not flicker between equals.
    return tuple(sorted(hosts.items(), key=lambda pair: (-pair[1], pair[0]))[:BUSIEST_SHOWN])


def status_class(status: int | None) -> int:
    """Index into STATUS_CLASSES: 100-199 -> 0 ... 500-599 -> 4; None or nonsense -> "error"."""
    if status is None or not 100 <= status <= 599:
        return len(STATUS_CLASSES) - 1
    return status // 100 - 1


class CrawlCounters:
    """The live counters of one worker process. Not thread-safe: update from the event loop."""

    __slots__ = (
        "bytes",
        "clock",
        "done",
        "failed",
        "host_in_flight",
        "in_flight",
        "latency_buckets",
        "latency_sum",
        "queued",
        "retried",
        "skipped",
        "started_at",
        "status_classes",
    )

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started_at = clock()
        self.in_flight = 0
        self.queued = 0
        self.done = 0
        self.failed = 0
        self.retried = 0
        self.skipped = 0
        self.bytes = 0
        self.status_classes = [0] * len(STATUS_CLASSES)
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.host_in_flight: dict[str, int] = {}

    def fetch_started(self, host: str) -> None:
        self.in_flight += 1
        self.host_in_flight[host] = self.host_in_flight.get(host, 0) + 1

    def add_bytes(self, count: int) -> None:
        """Body bytes received, as they arrive (so MB/s moves during long downloads)."""
        self.bytes += count

    def fetch_finished(
        self, host: str, result: FetchResult, *, status: int | None = None, seconds: float = 0.0
    ) -> None:
        """End of a fetch begun with `fetch_started(host)`. `status` is the final HTTP status
        (None when there was no response), `seconds` the fetch's duration."""
        self.fetch_abandoned(host)
        self._count(result)
        if result is not FetchResult.SKIPPED:
            self.status_classes[status_class(status)] += 1
            self.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self.latency_sum += seconds

    def fetch_abandoned(self, host: str) -> None:
        """End of a fetch cut off unsettled (the crawl was stopping): its URL goes back to the
        frontier untried, so it counts as nothing but no longer in flight."""
        self.in_flight -= 1
        left = self.host_in_flight.get(host, 0) - 1
        if left > 0:
            self.host_in_flight[host] = left
        else:
            self.host_in_flight.pop(host, None)

    def fetch_skipped(self, result: FetchResult = FetchResult.SKIPPED) -> None:
        """A URL settled without a request (robots.txt, scope): no fetch_started before it.
        `result`: SKIPPED when it is left out for good, RETRIED when it waits (its robots.txt
        was unreachable), FAILED when that wait would have been its last attempt."""
        self._count(result)

    def _count(self, result: FetchResult) -> None:
        if result is FetchResult.DONE:
            self.done += 1
        elif result is FetchResult.FAILED:
            self.failed += 1
        elif result is FetchResult.RETRIED:
            self.retried += 1
        else:
            self.skipped += 1

    def set_queued(self, count: int) -> None:
        """The frontier's backlog, as last reported by its `stats()`."""
        self.queued = count

    def snapshot(self) -> CounterSnapshot:
        return CounterSnapshot(
            at=self.clock(),
            started_at=self.started_at,
            in_flight=self.in_flight,
            queued=self.queued,
            done=self.done,
            failed=self.failed,
            retried=self.retried,
            skipped=self.skipped,
            bytes=self.bytes,
            status_classes=tuple(self.status_classes),
            latency_buckets=tuple(self.latency_buckets),
            latency_sum=self.latency_sum,
            busiest=_top(self.host_in_flight),
        )


# --- reporting ---------------------------------------------------------------------------------


class ProgressMode(enum.StrEnum):
    LIVE = "live"  # rich table redrawn in place
    LOG = "log"  # a line every interval
    OFF = "off"  # the summary only


def choose_mode(progress: bool | None, stream: TextIO) -> ProgressMode:
    """`--no-progress` -> OFF; otherwise LIVE on a terminal and LOG lines elsewhere."""
    if progress is False:
        return ProgressMode.OFF
    isatty = getattr(stream, "isatty", None)
    return ProgressMode.LIVE if isatty is not None and isatty() else ProgressMode.LOG


@dataclass(frozen=True, slots=True)
class Rates:
    pages_per_second: float
    megabytes_per_second: float


def rates_between(earlier: CounterSnapshot | None, later: CounterSnapshot) -> Rates:
    """Rates over the time between two snapshots (since the start when there is no earlier)."""
    if earlier is None:
        earlier = CounterSnapshot(at=later.started_at, started_at=later.started_at)
    seconds = later.at - earlier.at
    if seconds <= 0:
        return Rates(0.0, 0.0)
    pages = (later.finished - earlier.finished) / seconds
    megabytes = (later.bytes - earlier.bytes) / seconds / 1e6
    return Rates(max(0.0, pages), max(0.0, megabytes))


def _busiest_text(snapshot: CounterSnapshot) -> str:
    return ", ".join(f"{host} ({count})" for host, count in snapshot.busiest) or "-"


def progress_line(snapshot: CounterSnapshot, rates: Rates, log_format: LogFormat | str) -> str:
    """One progress log line, text or JSON."""
    if LogFormat(log_format) is LogFormat.JSON:
        return json.dumps(
            {
                "event": "progress",
                "elapsed_s": round(snapshot.elapsed, 3),
                "done": snapshot.done,
                "failed": snapshot.failed,
                "retried": snapshot.retried,
                "skipped": snapshot.skipped,
                "in_flight": snapshot.in_flight,
                "queued": snapshot.queued,
                "bytes": snapshot.bytes,
                "pages_per_s": round(rates.pages_per_second, 1),
                "mb_per_s": round(rates.megabytes_per_second, 2),
                "busiest": [{"host": host, "in_flight": n} for host, n in snapshot.busiest],
            }
        )
    return (
        f"progress: {snapshot.done:,} done, {snapshot.failed:,} failed, "
        f"{snapshot.retried:,} retried, {snapshot.skipped:,} skipped, "
        f"{snapshot.in_flight:,} in flight, {snapshot.queued:,} queued | "
        f"{rates.pages_per_second:,.1f} pages/s, {rates.megabytes_per_second:,.2f} MB/s | "
        f"busiest: {_busiest_text(snapshot)}"
    )


def summary_line(
    snapshot: CounterSnapshot, log_format: LogFormat | str, *, interrupted: bool = False
) -> str:
    """The end-of-crawl summary, text or JSON; averages over the whole run."""
    rates = rates_between(None, snapshot)
    if LogFormat(log_format) is LogFormat.JSON:
        return json.dumps(
            {
                "event": "summary",
                "interrupted": interrupted,
                "elapsed_s": round(snapshot.elapsed, 3),
                "done": snapshot.done,
                "failed": snapshot.failed,
                "retried": snapshot.retried,
                "skipped": snapshot.skipped,
                "bytes": snapshot.bytes,
                "pages_per_s": round(rates.pages_per_second, 1),
                "mb_per_s": round(rates.megabytes_per_second, 2),
                "status_classes": dict(zip(STATUS_CLASSES, snapshot.status_classes, strict=True)),
            }
        )
    verb = "stopped after" if interrupted else "finished in"
    classes = ", ".join(
        f"{name} {count:,}"
        for name, count in zip(STATUS_CLASSES, snapshot.status_classes, strict=True)
        if count
    )
    return (
        f"crawl {verb} {snapshot.elapsed:,.1f} s: {snapshot.done:,} done, "
        f"{snapshot.failed:,} failed, {snapshot.retried:,} retried, {snapshot.skipped:,} skipped; "
        f"{snapshot.bytes / 1e6:,.1f} MB; {rates.pages_per_second:,.1f} pages/s, "
        f"{rates.megabytes_per_second:,.2f} MB/s on average"
        + (f" | statuses: {classes}" if classes else "")
    )


def live_view(snapshot: CounterSnapshot, rates: Rates) -> Group:
    """The live display: totals and rates, then the busiest hosts."""
    from rich.console import Group
    from rich.table import Table

    totals = Table(title="crawl", show_header=True, header_style="bold")
    for column in ("pages/s", "MB/s", "in flight", "queued", "done", "failed", "retried"):
        totals.add_column(column, justify="right")
    totals.add_row(
        f"{rates.pages_per_second:,.1f}",
        f"{rates.megabytes_per_second:,.2f}",
        f"{snapshot.in_flight:,}",
        f"{snapshot.queued:,}",
        f"{snapshot.done:,}",
        f"{snapshot.failed:,}",
        f"{snapshot.retried:,}",
    )
    hosts = Table(title="busiest hosts", show_header=True, header_style="bold")
    hosts.add_column("host")
    hosts.add_column("in flight", justify="right")
    for host, count in snapshot.busiest:
        hosts.add_row(host, f"{count:,}")
    return Group(totals, hosts)


class ProgressReporter:
    """Shows snapshots from `source` on `stream` until stopped, then the summary.

    Drive it with `await reporter.run()` in a task (cancel it, then `finish()`), or call
    `tick()` from any loop of your own: it emits only when a report is due. `clock` must be the
    clock the snapshots are taken with.
    """

    def __init__(
        self,
        source: Callable[[], CounterSnapshot],
        *,
        progress: bool | None = None,
        log_format: LogFormat | str = LogFormat.TEXT,
        interval: float = 5.0,
        stream: TextIO | None = None,
        mode: ProgressMode | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.stream = stream if stream is not None else sys.stdout
        self.mode = mode if mode is not None else choose_mode(progress, self.stream)
        self.log_format = LogFormat(log_format)
        self.interval = interval if self.mode is not ProgressMode.LIVE else min(interval, 1.0)
        self.clock = clock
        self._previous: CounterSnapshot | None = None
        self._next_due = clock() + self.interval
        self._live: Live | None = None
        self._finished = False

    def tick(self) -> bool:
        """Report now if a report is due; True when something was shown."""
        if self.mode is ProgressMode.OFF or self._finished or self.clock() < self._next_due:
            return False
        self.report()
        return True

    def report(self) -> None:
        """Show the current state (a log line, or a redraw of the live view)."""
        snapshot = self.source()
        rates = rates_between(self._previous, snapshot)
        self._previous = snapshot
        self._next_due = self.clock() + self.interval
        if self.mode is ProgressMode.LOG:
            self._write(progress_line(snapshot, rates, self.log_format))
        elif self.mode is ProgressMode.LIVE:
            view = live_view(snapshot, rates)
            if self._live is None:
                from rich.console import Console
                from rich.live import Live

                console = Console(file=self.stream)
                self._live = Live(view, console=console, auto_refresh=False, transient=True)
                self._live.start()
            self._live.update(view, refresh=True)

    async def run(self) -> None:
        """Report every interval until cancelled."""
        import asyncio  # here: `crawl run` imports this module before it starts its workers

        while True:
            await asyncio.sleep(max(0.0, self._next_due - self.clock()))
            self.tick()

    def finish(self, *, interrupted: bool = False) -> str:
        """Close the live view and print the summary (once); returns the summary."""
        if self._live is not None:
            self._live.stop()
            self._live = None
        snapshot = self.source()
        summary = summary_line(snapshot, self.log_format, interrupted=interrupted)
        if not self._finished:
            self._finished = True
            self._write(summary)
        return summary

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


def new_reporter(counters: CrawlCounters, **options: Any) -> ProgressReporter:
    """A reporter over one process's counters, with its clock."""
    return ProgressReporter(counters.snapshot, clock=counters.clock, **options)
