"""The worker's own policies, run in this process against a real SQLite frontier and a local
site: links sent once, redirects as tasks or followed, the start gate of `crawl run`."""

from __future__ import annotations

import collections
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from crawler.config import Settings
from crawler.demo_site import SiteSpec, site_in_thread
from crawler.frontier import open_frontier
from storage import Outcome, Store
from tests.support.ports import free_port
from tests.workers.support import by_url, crawl, records
from workers import worker as worker_module
from workers.job import frontier_settings
from workers.process import GC_THRESHOLDS, _crawl_gc, make_session
from workers.supervisor import (
    GATE_OPEN,
    START_FD_ENV,
    _Child,
    _open_pidfd,
    _wait_for_an_exit,
    wait_at_gate,
)
from workers.worker import Worker, WorkerExit, WorkerOptions


class CountingFrontier:
    """A real frontier that also counts every link handed to `ack`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sent: collections.Counter[str] = collections.Counter()
        self.depths: dict[str, list[int]] = collections.defaultdict(list)  # in the order sent

    async def ack(
        self, task: Any, outcome: Any = None, links: Sequence[Any] = (), **kw: Any
    ) -> bool:
        for link in links:
            url = link if isinstance(link, str) else link.url
            self.sent[url] += 1
            keeps = not isinstance(link, str) and link.keeps_depth
            self.depths[url].append(task.depth if keeps else task.depth + 1)
        return await self.inner.ack(task, outcome, links, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def crawl_in_process(
    tmp_path: Path, seeds: list[str], *, on_frontier: Any = None, **options: Any
) -> CountingFrontier:
    settings = Settings(out=tmp_path / "out", robots=False, per_host=4, **options)
    frontier = await open_frontier(
        tmp_path / "out" / "frontier.sqlite", "unit", frontier_settings(settings)
    )
    await frontier.add(seeds)
    if on_frontier is not None:
        on_frontier(frontier)
    counting = CountingFrontier(frontier)
    session = make_session(settings)
    store = Store(settings.out, writer_id="unit")
    try:
        worker = Worker(
            counting,  # type: ignore[arg-type]
            session,
            store,
            WorkerOptions(
                name="unit",
                concurrency=8,
                max_depth=settings.max_depth,
                max_redirects=settings.max_redirects,
            ),
        )
        assert await worker.run() is WorkerExit.FINISHED
    finally:
        await session.close()
        store.close()
        await frontier.close()
    return counting


async def test_a_worker_hands_each_link_to_the_frontier_once(tmp_path: Path) -> None:
    with site_in_thread(SiteSpec(pages=150, hosts=2)) as served:
        counting = await crawl_in_process(tmp_path, served.seeds)
        found = records(tmp_path / "out")
    assert counting.sent, "no links were sent"
    # Once, or again only nearer a seed (the frontier may lower a queued task's depth).
    for url, depths in counting.depths.items():
        assert depths == sorted(set(depths), reverse=True), (url, depths)
    assert sum(counting.sent.values()) < 1.1 * len(counting.sent)
    # Every page's links were found and followed all the same.
    assert {r.url for r in found} >= set(served.site.page_urls())


async def test_a_page_is_on_record_before_the_frontier_calls_it_done(tmp_path: Path) -> None:
    """Records are written in batches; each batch before the commit of the acks it backs."""
    commits: list[int] = []
    missing: list[str] = []

    def check_commits(frontier: Any) -> None:
        real_commit = frontier._commit

        async def commit(adds: Any, settles: Any, out_of_scope: int) -> Any:
            on_disk = {r.url for r in records(tmp_path / "out")}
            settled = {item.parent.url for item in settles if item.parent is not None}
            missing.extend(settled - on_disk)
            commits.append(len(settles))
            return await real_commit(adds, settles, out_of_scope)

        frontier._commit = commit

    with site_in_thread(SiteSpec(pages=120, hosts=2)) as served:
        await crawl_in_process(tmp_path, served.seeds, on_frontier=check_commits)
        found = records(tmp_path / "out")
    assert missing == [], "acked before its record was written"
    assert sum(commits) == len(found) >= 120
    assert max(commits) > 1  # several pages' records went out in one batch


async def test_small_pages_are_parsed_from_the_bytes_storage_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_back: list[Path] = []
    read_small = worker_module._read_small

    def counting_read(path: Path) -> bytes:
        read_back.append(path)
        return read_small(path)

    monkeypatch.setattr(worker_module, "_read_small", counting_read)
    with site_in_thread(SiteSpec(pages=60, hosts=1)) as served:
        await crawl_in_process(tmp_path, served.seeds)
        found = records(tmp_path / "out")
    assert {r.url for r in found} >= set(served.site.page_urls())
    assert read_back == []


async def test_a_redirect_becomes_a_link_with_its_hop_count(tmp_path: Path) -> None:
    with site_in_thread(SiteSpec(pages=10, hosts=1)) as served:
        seed = served.seeds[0]
        counting = await crawl_in_process(tmp_path, [seed + "chain/1"])
        grouped = by_url(records(tmp_path / "out"))
    assert [r.status for r in grouped[seed + "chain/1"]] == [302]
    assert [r.status for r in grouped[seed + "chain/2"]] == [307]
    assert [r.status for r in grouped[seed]] == [200]
    assert counting.sent[seed + "chain/2"] == 1


async def test_at_the_depth_limit_a_fetch_follows_redirects_itself(tmp_path: Path) -> None:
    with site_in_thread(SiteSpec(pages=10, hosts=1)) as served:
        seed = served.seeds[0]
        await crawl_in_process(tmp_path, [seed + "moved"], max_depth=0)
        found = records(tmp_path / "out")
    (moved,) = found
    assert moved.url == seed + "moved"
    assert (moved.status, moved.outcome) == (200, Outcome.STORED)
    assert [(hop.status, hop.location) for hop in moved.redirects] == [(301, "/sec1/page1.html")]
    assert moved.final_url == seed + "sec1/page1.html"


def test_mirror_follows_a_redirect_to_the_file(workdir: Path) -> None:
    with site_in_thread(SiteSpec(pages=10, hosts=2)) as served:
        seed = served.seeds[0]
        done = crawl("mirror", seed + "chain/1", "--out", workdir / "out", cwd=workdir)
        assert done.returncode == 0, done.stderr
    (record,) = records(workdir / "out")
    assert [hop.status for hop in record.redirects] == [302, 307]
    assert record.final_url == served.seeds[1]
    assert record.outcome is Outcome.STORED


@pytest.mark.parametrize(("max_redirects", "reaches_other_host"), [(1, False), (2, True)])
async def test_a_redirect_chain_ends_after_max_redirects_hops(
    tmp_path: Path, max_redirects: int, reaches_other_host: bool
) -> None:
    with site_in_thread(SiteSpec(pages=10, hosts=2)) as served:
        seed, other = served.seeds
        await crawl_in_process(
            tmp_path,
            [seed + "chain/1"],
            max_redirects=max_redirects,
            max_depth=3,
            allow_domains=("127.0.0.1",),  # both hosts in scope
        )
        urls = {r.url for r in records(tmp_path / "out")}
    # chain/1 -> chain/2 is one hop; chain/2 -> the other host's home is the second.
    assert {seed + "chain/1", seed + "chain/2"} <= urls
    assert (other in urls) is reaches_other_host


# --- the start gate ---------------------------------------------------------------------------


def test_the_supervisor_wakes_as_soon_as_a_child_exits() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    child = _Child(0, process, pidfd=_open_pidfd(process.pid))
    try:
        assert child.pidfd is not None  # Linux: an exit makes the pidfd readable
        started = time.monotonic()
        _wait_for_an_exit([child], 120.0)
        # Woken by the exit, not by the end of the 120 s wait.
        assert time.monotonic() - started < 60
        assert process.wait(timeout=10) == 0
    finally:
        child.close_pidfd()


def test_a_worker_tunes_the_cycle_collector_only_while_it_runs() -> None:
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with _crawl_gc():
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > frozen  # start-up objects are left out of collections
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_child_without_a_gate_goes_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(START_FD_ENV, raising=False)
    assert wait_at_gate() is True


@pytest.mark.parametrize(("written", "expected"), [(GATE_OPEN, True), (b"", False)])
def test_a_child_waits_for_the_gate_to_open_or_close(
    monkeypatch: pytest.MonkeyPatch, written: bytes, expected: bool
) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, written)
    os.close(write_end)
    monkeypatch.setenv(START_FD_ENV, str(read_end))
    assert wait_at_gate() is expected
    assert START_FD_ENV not in os.environ
    with pytest.raises(OSError):
        os.fstat(read_end)  # closed by the gate


def test_a_crawl_whose_seeding_fails_stops_its_workers_and_says_why(workdir: Path) -> None:
    out = workdir / "out"
    out.mkdir()
    (out / "frontier.sqlite").write_bytes(b"not a database, " * 10)
    seeds = workdir / "seeds.txt"
    seeds.write_text("http://127.0.0.1:9/\n")
    done = crawl("run", seeds, "--out", out, "--workers", "2", "--no-progress", cwd=workdir)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: cannot use {out}/frontier.sqlite as a frontier file: file is not a database"
    ]
    assert not (out / "records").exists()


async def test_urls_held_back_by_an_unreachable_robots_txt_are_on_record(tmp_path: Path) -> None:
    """Each wait is an attempt with a record saying why; the last one says the URL was given
    up, and counts as failed (the frontier calls it dead)."""
    from crawler.robots import Robots
    from workers.process import robots_fetcher
    from workers.progress import CrawlCounters

    settings = Settings(out=tmp_path / "out", retries=2)  # 3 attempts
    frontier = await open_frontier(
        tmp_path / "out" / "frontier.sqlite", "unit", frontier_settings(settings)
    )
    origin = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    await frontier.add([f"{origin}/page"])
    session = make_session(settings)
    store = Store(settings.out, writer_id="unit")
    counters = CrawlCounters()
    robots = Robots(
        frontier, robots_fetcher(session), user_agent="crawl-test", unreachable_ttl=0.05
    )
    try:
        worker = Worker(
            frontier,
            session,
            store,
            WorkerOptions(name="unit", concurrency=2),
            robots=robots,
            counters=counters,
        )
        assert await worker.run() is WorkerExit.FINISHED
        stats = await frontier.stats()
    finally:
        await session.close()
        store.close()
        await frontier.close()
    found = records(tmp_path / "out")
    assert [r.outcome for r in found] == [Outcome.SKIPPED] * 3
    assert [r.meta["attempt"] for r in found] == [1, 2, 3]
    cause = f"{origin}/robots.txt unreachable (ClientConnectorError: Cannot connect to host"
    assert all(r.url == f"{origin}/page" and r.error.startswith(cause) for r in found)
    assert [r.error.rpartition("; ")[2] for r in found] == [
        "tried again in 0.05 s",
        "tried again in 0.05 s",
        "given up after 3 attempts",
    ]
    assert (stats.dead, stats.done) == (1, 0)
    assert (counters.retried, counters.failed, counters.skipped) == (2, 1, 0)


def test_a_crawl_of_an_unreachable_host_says_what_failed(workdir: Path) -> None:
    """With robots.txt on (the default) and off, the user sees every attempt and its error in
    the records and the summary, not an empty export."""
    seeds = workdir / "seeds.txt"
    url = f"http://127.0.0.1:{free_port()}/"
    seeds.write_text(url + "\n")
    for name, extra in (("robots", ()), ("no-robots", ("--no-robots", "--retries", "1"))):
        out = workdir / name
        args = ("run", seeds, "--out", out, "--workers", "1", "--no-progress")
        done = crawl(*args, "--retries", "0", *extra, cwd=workdir)
        assert done.returncode == 0, done.stderr
        exported = crawl("export", out, "--format", "jsonl", "--failed", cwd=workdir)
        rows = [json.loads(line) for line in exported.stdout.splitlines()]
        assert rows and all(row["url"] == url for row in rows)
        assert all("ClientConnectorError: Cannot connect to host" in row["error"] for row in rows)
        said = done.stdout + done.stderr
        assert " 0 done, 1 failed," in said
        if name == "robots":
            assert [row["outcome"] for row in rows] == ["skipped"]
            assert rows[0]["error"].endswith("; given up after 1 attempt")
        else:
            # --retries given twice: the last one counts (1), so two fetches, one retry.
            assert [row["outcome"] for row in rows] == ["failed", "failed"]
            assert " 1 retried," in said


def test_a_dead_host_is_given_up_on_the_network_retry_schedule(workdir: Path) -> None:
    """robots.txt of a host that refuses connections holds its URLs back 1 s, then 2 s (not a
    fixed minute each), so the crawl ends about as soon as with --no-robots."""
    seeds = workdir / "seeds.txt"
    url = f"http://127.0.0.1:{free_port()}/"
    seeds.write_text(url + "\n")
    out = workdir / "out"
    args = ("run", seeds, "--out", out, "--workers", "1", "--no-progress", "--retries", "2")
    done = crawl(*args, cwd=workdir)
    assert done.returncode == 0, done.stderr
    exported = crawl("export", out, "--format", "jsonl", "--failed", cwd=workdir)
    errors = [json.loads(line)["error"] for line in exported.stdout.splitlines()]
    assert [error.rpartition("; ")[2] for error in errors] == [
        "tried again in 1 s",
        "tried again in 2 s",
        "given up after 3 attempts",
    ]


async def test_an_untyped_page_is_parsed_when_its_bytes_start_as_html(tmp_path: Path) -> None:
    from crawler.demo_site.resources import Body

    with site_in_thread(SiteSpec(pages=3, hosts=1)) as served:
        routes = served.site.hosts[0].routes
        home = routes["/"]
        assert isinstance(home, Body)
        extra = b'<a href="/untyped">u</a><a href="/blob">b</a><a href="/big">g</a></body>'
        routes["/"] = Body(home.data.replace(b"</body>", extra), home.content_type)
        routes["/untyped"] = Body(b"<!DOCTYPE html><p><a href='/sniffed'>s</a></p>", "")
        routes["/sniffed"] = Body(b"<html><body>ok</body></html>", "text/html")
        routes["/blob"] = Body(b"\x00\x01\x02 not a page <a href='/never'>n</a>", "")
        # Larger than what is read back inline: sniffed from its first bytes, then read whole.
        padding = b"<p>" + b"x" * (300 << 10) + b"</p>"
        routes["/big"] = Body(b"<html><body>" + padding + b"<a href='/deep'>d</a>", "")
        routes["/deep"] = Body(b"<html><body>ok</body></html>", "text/html")
        await crawl_in_process(tmp_path, served.seeds[:1])
        origin = served.site.hosts[0].origin
    found = by_url(records(tmp_path / "out"))
    assert found[f"{origin}/untyped"][0].content_type is None
    assert f"{origin}/sniffed" in found
    assert f"{origin}/blob" in found and f"{origin}/never" not in found
    assert f"{origin}/deep" in found


async def test_a_link_found_again_nearer_a_seed_is_sent_again(tmp_path: Path) -> None:
    """The frontier lowers a queued task's depth when a link reaches it by a shorter path
    (tests/frontier/test_conformance_depth.py); the worker's cache of links it sent must let
    such a link through, or --max-depth would count the first path found."""
    from crawler.frontier import Link

    settings = Settings(out=tmp_path / "out")
    frontier = await open_frontier(tmp_path / "out" / "frontier.sqlite", "unit")
    session = make_session(settings)
    store = Store(settings.out, writer_id="unit")
    try:
        worker = Worker(frontier, session, store, WorkerOptions(name="unit"))
        first = ["http://h.test/x", "http://h.test/y"]
        assert worker._unseen(first, 3) == first
        worker._remember(first, 3)
        assert worker._unseen(first, 3) == []  # the same depth: known
        assert worker._unseen(first, 4) == []  # deeper: known
        assert worker._unseen(["http://h.test/x"], 2) == ["http://h.test/x"]
        worker._remember(["http://h.test/x"], 2)
        assert worker._unseen(["http://h.test/x"], 2) == []
        # A redirect's target keeps its page's depth: from a page at depth 0 it is at 0 < 2.
        redirect = Link("http://h.test/y", keeps_depth=True)
        assert worker._unseen([redirect], 1) == [redirect]
        worker._remember([redirect], 1)
        assert worker._unseen(["http://h.test/y"], 1) == []
    finally:
        await session.close()
        store.close()
        await frontier.close()
