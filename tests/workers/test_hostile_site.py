"""One crawl of a site that misbehaves: 429 with Retry-After, 503s, redirect chains and loops,
a robots.txt that disallows a folder, and links that try to climb out of OUT."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crawler.demo_site import HOSTILE_HREFS, ServedSite, SiteSpec, site_in_thread
from storage import FetchRecord, Outcome
from tests.workers.support import (
    Expected,
    by_url,
    crawl,
    expected_crawl,
    get_counts,
    records,
)


@dataclass
class Crawled:
    served: ServedSite
    out: Path
    workdir: Path
    found: list[FetchRecord]
    expected: Expected
    stderr: str

    def url(self, path: str, host: int = 0) -> str:
        return self.served.site.hosts[host].origin + path

    def history(self, path: str, host: int = 0) -> list[FetchRecord]:
        """The records of one URL, oldest first."""
        return sorted(by_url(self.found)[self.url(path, host)], key=lambda r: r.fetched_at)


@pytest.fixture(scope="module")
def crawled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crawled]:
    workdir = tmp_path_factory.mktemp("hostile")
    out = workdir / "out"
    with site_in_thread(SiteSpec(pages=60, hosts=2, faults=True), log_requests=True) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text("\n".join(served.seeds) + "\n")
        done = crawl(
            "run", seeds, "--out", out, "--workers", "1", "--per-host", "2", "--no-progress",
            cwd=workdir,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        yield Crawled(served, out, workdir, records(out), expected_crawl(served.site), done.stderr)


def test_every_expected_url_has_records_and_ends_as_expected(crawled: Crawled) -> None:
    grouped = by_url(crawled.found)
    assert set(grouped) == crawled.expected.urls
    for url, want in crawled.expected.outcomes.items():
        last = max(grouped[url], key=lambda r: r.fetched_at)
        if want == "skipped":
            assert last.outcome is Outcome.SKIPPED, url
        else:
            assert last.status == want, (url, last.status, last.error)
    retried = {url for url, found in grouped.items() if len(found) > 1}
    assert retried == {crawled.url("/flaky/429"), crawled.url("/flaky/503")}


def test_a_429_is_retried_after_its_retry_after(crawled: Crawled) -> None:
    first, second = crawled.history("/flaky/429")
    assert (first.status, first.outcome) == (429, Outcome.HTTP_ERROR)
    assert first.header("Retry-After") == "1"
    assert (second.status, second.outcome) == (200, Outcome.STORED)
    # The whole host waited out the Retry-After (1 s) before this URL was asked for again.
    assert second.fetched_at - first.fetched_at >= 0.9
    assert second.meta["attempt"] == 2


def test_503s_are_retried_with_backoff_until_the_page_recovers(crawled: Crawled) -> None:
    history = crawled.history("/flaky/503")
    assert [r.status for r in history] == [503, 503, 200]
    assert [r.meta["attempt"] for r in history] == [1, 2, 3]
    assert history[-1].outcome is Outcome.STORED
    assert history[-1].path is not None
    assert b"Recovered" in (crawled.out / history[-1].path).read_bytes()


def test_each_hop_of_a_redirect_chain_is_recorded_with_its_location(crawled: Crawled) -> None:
    (first,) = crawled.history("/chain/1")
    (second,) = crawled.history("/chain/2")
    assert (first.status, first.header("Location")) == (302, "/chain/2")
    assert (second.status, second.header("Location")) == (307, crawled.served.seeds[1])
    assert first.outcome is second.outcome is Outcome.NOT_STORED
    assert first.path is None
    assert second.meta["parent"] == first.url
    (moved,) = crawled.history("/moved")
    assert moved.status == 301
    (target,) = by_url(crawled.found)[crawled.url(moved.header("Location") or "")]
    assert target.status == 200


def test_a_redirect_loop_ends_after_one_round(crawled: Crawled) -> None:
    (a,) = crawled.history("/loop/a")
    (b,) = crawled.history("/loop/b")
    assert (a.status, a.header("Location"), b.status, b.header("Location")) == (
        302, "/loop/b", 302, "/loop/a",
    )  # fmt: skip
    counts = get_counts(crawled.served)
    assert counts[(0, "/loop/a")] == counts[(0, "/loop/b")] == 1


def test_robots_txt_keeps_the_crawler_out_of_a_folder(crawled: Crawled) -> None:
    for host in range(2):
        (skipped,) = crawled.history("/private/secret.html", host)
        assert skipped.outcome is Outcome.SKIPPED
        assert skipped.error == f"disallowed by {crawled.served.seeds[host]}robots.txt"
        assert skipped.status is None
    counts = get_counts(crawled.served)
    assert not [path for _, path in counts if path.startswith("/private/")]
    assert counts[(0, "/robots.txt")] == counts[(1, "/robots.txt")] == 1


def test_hostile_links_stay_inside_out(crawled: Crawled) -> None:
    (page,) = crawled.history("/escape.html")
    assert page.status == 200
    hostile = [r for r in crawled.found if r.meta.get("parent") == page.url]
    assert len(hostile) >= len(HOSTILE_HREFS) - 2  # some spellings are the same URL
    files = (crawled.out / "files").resolve()
    for record in hostile:
        assert record.status == 404, record.url
        assert record.outcome is Outcome.HTTP_ERROR
    for record in crawled.found:
        if record.path is not None:
            assert (crawled.out / record.path).resolve().is_relative_to(files), record.path
    for path in crawled.out.rglob("*"):
        assert path.resolve().is_relative_to(crawled.out.resolve()), path
    # Nothing was written next to OUT.
    assert sorted(p.name for p in crawled.workdir.iterdir()) == ["out", "seeds.txt"]
    assert {p.name for p in crawled.out.iterdir()} <= {
        "files", "records", "state", "tmp", "frontier.sqlite", "frontier.sqlite-wal",
        "frontier.sqlite-shm", ".progress",
    }  # fmt: skip


def test_status_counts_the_crawl_and_export_lists_what_failed(crawled: Crawled) -> None:
    status = crawl("status", crawled.out, "--json", cwd=crawled.workdir)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["job"] == "default"
    assert report["finished"] is True
    assert report["skipped"] == 2
    assert report["retried"] == 3  # one 429 and two 503s
    failed_urls = {u for u, w in crawled.expected.outcomes.items() if w == 404}
    assert report["failed"] == len(failed_urls)
    assert report["done"] == len(crawled.expected.urls) - len(failed_urls) - 2
