"""Progress: counters, snapshots across processes, log lines, the live view and the summary."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from rich.console import Console

from workers.progress import (
    LATENCY_BUCKETS,
    CounterSnapshot,
    CrawlCounters,
    FetchResult,
    ProgressMode,
    Rates,
    choose_mode,
    live_view,
    new_reporter,
    progress_line,
    rates_between,
    status_class,
    summary_line,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_fetches(counters: CrawlCounters, host: str, count: int, size: int, status: int) -> None:
    for _ in range(count):
        counters.fetch_started(host)
        counters.add_bytes(size)
        counters.fetch_finished(host, FetchResult.DONE, status=status, seconds=0.02)


def test_counters_track_in_flight_per_host_and_outcomes() -> None:
    counters = CrawlCounters(clock=FakeClock())
    for host in ("a:1", "a:1", "b:2", "a:1", "c:3", "b:2"):
        counters.fetch_started(host)
    snapshot = counters.snapshot()
    assert snapshot.in_flight == 6
    assert snapshot.busiest == (("a:1", 3), ("b:2", 2), ("c:3", 1))
    counters.fetch_finished("a:1", FetchResult.DONE, status=200, seconds=0.2)
    counters.fetch_finished("c:3", FetchResult.FAILED, status=404, seconds=0.1)
    counters.fetch_finished("b:2", FetchResult.RETRIED, status=None, seconds=30)
    counters.fetch_skipped()
    snapshot = counters.snapshot()
    assert (snapshot.done, snapshot.failed, snapshot.retried, snapshot.skipped) == (1, 1, 1, 1)
    assert snapshot.in_flight == 3
    assert snapshot.busiest == (("a:1", 2), ("b:2", 1))
    assert snapshot.status_classes == (0, 1, 0, 1, 0, 1)
    assert sum(snapshot.latency_buckets) == 3
    assert snapshot.latency_sum == pytest.approx(30.3)


def test_latency_lands_in_the_first_bucket_that_holds_it() -> None:
    counters = CrawlCounters()
    for seconds in (0.005, 0.006, 1000.0):
        counters.fetch_started("h")
        counters.fetch_finished("h", FetchResult.DONE, status=200, seconds=seconds)
    buckets = counters.snapshot().latency_buckets
    assert buckets[LATENCY_BUCKETS.index(0.005)] == 1
    assert buckets[LATENCY_BUCKETS.index(0.01)] == 1
    assert buckets[-1] == 1


@pytest.mark.parametrize(
    ("status", "index"), [(101, 0), (200, 1), (304, 2), (404, 3), (599, 4), (None, 5), (700, 5)]
)
def test_status_classes(status: int | None, index: int) -> None:
    assert status_class(status) == index


def test_busiest_hosts_are_capped_and_ordered() -> None:
    counters = CrawlCounters()
    for number in range(8):
        for _ in range(number % 3 + 1):
            counters.fetch_started(f"h{number}")
    busiest = counters.snapshot().busiest
    assert len(busiest) == 5
    assert busiest[:3] == (("h2", 3), ("h5", 3), ("h1", 2))


def test_snapshots_travel_as_dicts_and_combine_across_processes() -> None:
    clock = FakeClock()
    one, two = CrawlCounters(clock=clock), CrawlCounters(clock=clock)
    run_fetches(one, "a", 3, 100, 200)
    run_fetches(two, "b", 2, 50, 500)
    one.fetch_started("a")
    two.fetch_started("a")
    one.set_queued(40)
    two.set_queued(37)
    travelled = [
        CounterSnapshot.from_dict(json.loads(json.dumps(c.snapshot().to_dict())))
        for c in (one, two)
    ]
    assert travelled[0] == one.snapshot()
    total = CounterSnapshot.combine(travelled)
    assert (total.done, total.bytes, total.in_flight, total.queued) == (5, 400, 2, 40)
    assert total.status_classes == (0, 3, 0, 0, 2, 0)
    assert total.busiest == (("a", 2),)


def test_rates_are_per_interval() -> None:
    clock = FakeClock()
    counters = CrawlCounters(clock=clock)
    clock.now += 10
    run_fetches(counters, "a", 100, 10_000, 200)
    first = counters.snapshot()
    assert rates_between(None, first) == Rates(10.0, 0.1)
    clock.now += 5
    run_fetches(counters, "a", 50, 100_000, 200)
    assert rates_between(first, counters.snapshot()) == Rates(10.0, 1.0)


def test_no_progress_means_summary_only_and_terminals_get_the_live_view() -> None:
    assert choose_mode(False, TtyStream()) is ProgressMode.OFF
    assert choose_mode(None, TtyStream()) is ProgressMode.LIVE
    assert choose_mode(True, io.StringIO()) is ProgressMode.LOG
    assert choose_mode(None, io.StringIO()) is ProgressMode.LOG


def make_reporter(log_format: str = "text", **options: object) -> tuple:
    clock = FakeClock()
    counters = CrawlCounters(clock=clock)
    stream = io.StringIO()
    reporter = new_reporter(counters, stream=stream, log_format=log_format, interval=5, **options)
    return clock, counters, stream, reporter


def test_log_lines_come_every_interval_with_rates_of_that_interval() -> None:
    clock, counters, stream, reporter = make_reporter()
    assert reporter.mode is ProgressMode.LOG
    run_fetches(counters, "127.0.0.1:8001", 40, 25_000, 200)
    clock.now += 4
    assert reporter.tick() is False
    clock.now += 1
    counters.set_queued(1234)
    counters.fetch_started("127.0.0.1:8001")
    assert reporter.tick() is True
    assert reporter.tick() is False  # nothing more until the next interval
    line = stream.getvalue()
    assert line.count("\n") == 1
    assert "40 done, 0 failed" in line
    assert "1 in flight, 1,234 queued" in line
    assert "8.0 pages/s, 0.20 MB/s" in line
    assert "busiest: 127.0.0.1:8001 (1)" in line
    clock.now += 5
    run_fetches(counters, "b", 10, 0, 200)
    reporter.tick()
    assert "2.0 pages/s, 0.00 MB/s" in stream.getvalue().splitlines()[1]


def test_json_log_lines_parse() -> None:
    clock, counters, stream, reporter = make_reporter("json")
    run_fetches(counters, "a", 10, 1000, 200)
    counters.fetch_started("a")
    clock.now += 5
    reporter.tick()
    record = json.loads(stream.getvalue())
    assert record["event"] == "progress"
    assert (record["done"], record["in_flight"], record["pages_per_s"]) == (10, 1, 2.0)
    assert record["busiest"] == [{"host": "a", "in_flight": 1}]


def test_summary_is_printed_once_with_averages() -> None:
    clock, counters, stream, reporter = make_reporter()
    run_fetches(counters, "a", 90, 1_000_000, 200)
    for _ in range(10):
        counters.fetch_started("a")
        counters.fetch_finished("a", FetchResult.FAILED, status=404, seconds=0.1)
    clock.now += 20
    summary = reporter.finish()
    reporter.finish()
    assert stream.getvalue() == summary + "\n"
    assert summary.startswith("crawl finished in 20.0 s: 90 done, 10 failed")
    assert "90.0 MB; 5.0 pages/s, 4.50 MB/s on average" in summary
    assert "2xx 90, 4xx 10" in summary


def test_interrupted_summary_says_so_in_json() -> None:
    clock, counters, stream, reporter = make_reporter("json")
    run_fetches(counters, "a", 3, 10, 200)
    clock.now += 1
    record = json.loads(reporter.finish(interrupted=True))
    assert record["event"] == "summary" and record["interrupted"] is True
    assert record["status_classes"]["2xx"] == 3
    assert json.loads(stream.getvalue()) == record


def test_after_the_summary_no_more_progress_lines() -> None:
    clock, _, stream, reporter = make_reporter()
    reporter.finish()
    clock.now += 100
    assert reporter.tick() is False
    assert stream.getvalue().count("\n") == 1


def test_off_mode_prints_only_the_summary() -> None:
    clock, counters, stream, reporter = make_reporter(progress=False)
    run_fetches(counters, "a", 1, 1, 200)
    clock.now += 60
    assert reporter.tick() is False
    reporter.finish()
    assert stream.getvalue().startswith("crawl finished")


def test_live_view_shows_rates_counts_and_hosts() -> None:
    snapshot = CounterSnapshot(
        at=10, started_at=0, in_flight=7, queued=900, done=1234, failed=5, busiest=(("h:1", 7),)
    )
    console = Console(file=io.StringIO(), force_terminal=True, width=120, color_system=None)
    console.print(live_view(snapshot, Rates(123.4, 5.67)))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for expected in ("pages/s", "123.4", "5.67", "1,234", "900", "busiest hosts", "h:1"):
        assert expected in text


def test_live_mode_draws_on_a_terminal_and_ends_with_the_summary() -> None:
    clock = FakeClock()
    counters = CrawlCounters(clock=clock)
    stream = TtyStream()
    reporter = new_reporter(counters, stream=stream, interval=5)
    assert reporter.mode is ProgressMode.LIVE
    run_fetches(counters, "a", 5, 10, 200)
    clock.now += 1
    assert reporter.tick() is True
    assert "pages/s" in stream.getvalue()
    summary = reporter.finish()
    assert stream.getvalue().endswith(summary + "\n")


async def test_run_reports_until_cancelled() -> None:
    counters = CrawlCounters()
    stream = io.StringIO()
    reporter = new_reporter(counters, stream=stream, interval=0.01)
    task = asyncio.create_task(reporter.run())
    while stream.getvalue().count("\n") < 2:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert all(line.startswith("progress: ") for line in stream.getvalue().splitlines())


def test_progress_and_summary_lines_are_single_lines() -> None:
    snapshot = CounterSnapshot(at=5, started_at=0, busiest=(("h", 1),))
    for log_format in ("text", "json"):
        assert "\n" not in progress_line(snapshot, Rates(1, 1), log_format)
        assert "\n" not in summary_line(snapshot, log_format)
