"""`--max-pages`: the crawl ends once that many URLs are fetched, keeps the rest queued, and a
later run with a higher limit (or none) goes on from there, fetching nothing twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crawler.demo_site import SiteSpec, site_in_thread
from tests.support.redis_server import RedisServer
from tests.workers.support import crawl, duplicates, expected_crawl, records

SPEC = SiteSpec(pages=150, hosts=2)


def budget_run(workdir: Path, seeds: Path, *args: str) -> str:
    done = crawl(
        "run", seeds, "--out", workdir / "out", "--no-robots", "--no-progress", *args,
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.mark.parametrize("frontier", ["sqlite", "redis"])
def test_one_worker_stops_at_the_budget_and_a_later_run_goes_on(
    workdir: Path, frontier: str, request: pytest.FixtureRequest
) -> None:
    extra: list[str] = ["--workers", "1"]
    status_args: list[str | Path] = [workdir / "out"]
    if frontier == "redis":
        server: RedisServer = request.getfixturevalue("clean_redis")
        extra += ["--redis", server.url, "--job", "budget"]
        status_args = ["--redis", server.url, "--job", "budget"]
    with site_in_thread(SPEC) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text("\n".join(served.seeds) + "\n")
        expected = expected_crawl(served.site, robots=False)
        assert len(expected.urls) > 120

        first = budget_run(workdir, seeds, *extra, "--max-pages", "40")
        assert len(records(workdir / "out")) == 40
        assert "stopped at --max-pages 40: " in first
        assert "still queued; run again with a higher --max-pages to go on" in first
        status = json.loads(crawl("status", *status_args, "--json", cwd=workdir).stdout)
        assert (status["max_pages"], status["max_pages_reached"]) == (40, True)
        assert status["done"] + status["failed"] + status["dead"] == 40  # the site has 404s
        assert status["queued"] > 0 and not status["finished"]

        second = budget_run(workdir, seeds, *extra, "--max-pages", "100")
        assert "max_pages 40 -> 100" in second
        found = records(workdir / "out")
        assert len(found) == 100 and duplicates(found) == {}

        last = budget_run(workdir, seeds, *extra)  # no limit: the rest of the site
        assert "max_pages 100 -> none" in last
        assert "stopped at --max-pages" not in last
        found = records(workdir / "out")
        assert duplicates(found) == {}
        assert {record.url for record in found} == expected.urls


@pytest.mark.parametrize("frontier", ["sqlite", "redis"])
def test_several_workers_stop_exactly_at_the_budget(
    workdir: Path, frontier: str, request: pytest.FixtureRequest
) -> None:
    # Three processes leasing at the same moments: the frontier checks the budget inside the
    # lease (SQLite's write transaction, the Redis script), so none of them goes past it.
    extra: list[str] = []
    if frontier == "redis":
        server: RedisServer = request.getfixturevalue("clean_redis")
        extra = ["--redis", server.url, "--job", "budget-shared"]
    with site_in_thread(SPEC) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text("\n".join(served.seeds) + "\n")
        budget_run(
            workdir, seeds, "--workers", "3", "--max-pages", "30", "--concurrency", "8",
            *extra,
        )  # fmt: skip
        found = records(workdir / "out")
        assert duplicates(found) == {}
        assert len(found) == 30


def test_a_bad_budget_is_a_usage_error(workdir: Path) -> None:
    seeds = workdir / "seeds.txt"
    seeds.write_text("http://127.0.0.1:1/\n")
    done = crawl("run", seeds, "--max-pages", "0", "--out", workdir / "out", cwd=workdir)
    assert done.returncode == 2
    assert "bad setting max_pages='0' from --max-pages: must be >= 1" in done.stderr
