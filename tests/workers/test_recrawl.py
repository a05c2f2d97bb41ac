"""`crawl run --recrawl`: a new pass over a finished crawl, against a local site that answers
If-None-Match as a real server does. Unchanged pages come back 304 and keep their files (their
links are followed from those files), a changed page is stored anew."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from crawler.demo_site import SiteSpec, site_in_thread
from crawler.demo_site.resources import Body
from crawler.frontier import open_frontier
from storage import Outcome
from tests.workers.support import by_url, crawl, records

PAGES = 60


def run_args(seeds: Path, out: Path, *more: str) -> tuple[str | Path, ...]:
    return ("run", seeds, "--out", out, "--workers", "1", "--no-robots", "--no-progress", *more)


def test_a_recrawl_revalidates_every_page_and_stores_only_what_changed(workdir: Path) -> None:
    out, seeds = workdir / "out", workdir / "seeds.txt"
    with site_in_thread(SiteSpec(pages=PAGES, hosts=2)) as served:
        seeds.write_text("\n".join(served.seeds) + "\n")
        first = crawl(*run_args(seeds, out), cwd=workdir)
        assert first.returncode == 0, first.stderr
        pages = served.site.page_urls()
        first_pass = by_url(records(out))
        assert set(pages) <= set(first_pass)

        # One page changes between the passes: its ETag with it.
        changed = pages[7]
        host = next(h for h in served.site.hosts if changed.startswith(h.origin))
        path = changed.removeprefix(host.origin)
        old = host.routes[path]
        assert isinstance(old, Body)
        new_body = old.data.replace(b"</body>", b"<p>edited</p></body>")
        host.routes[path] = Body(new_body, old.content_type)

        again = crawl(*run_args(seeds, out, "--recrawl"), cwd=workdir)
        assert again.returncode == 0, again.stderr
        both = by_url(records(out))

    for url in pages:
        assert len(both[url]) == 2, url  # every page was fetched again, links included
        latest = both[url][-1]
        if url == changed:
            assert (latest.status, latest.outcome) == (200, Outcome.STORED)
            assert (out / latest.path).read_bytes() == new_body
        else:
            assert (latest.status, latest.outcome) == (304, Outcome.NOT_MODIFIED), url
            earlier = both[url][0]
            assert (latest.path, latest.sha256) == (earlier.path, earlier.sha256)
            assert (out / latest.path).stat().st_size == earlier.size
            assert dict(latest.request_headers).get("If-None-Match") == earlier.etag


def test_recrawl_refuses_a_crawl_that_is_not_finished(workdir: Path) -> None:
    out, seeds = workdir / "out", workdir / "seeds.txt"
    seeds.write_text("http://127.0.0.1:9/\n")
    queued = crawl("run", seeds, "--out", out, "--workers", "0", "--no-progress", cwd=workdir)
    assert queued.returncode == 0, queued.stderr
    refused = crawl(*run_args(seeds, out, "--recrawl"), cwd=workdir)
    assert refused.returncode == 2
    assert "--recrawl: the crawl of job 'default'" in refused.stderr
    assert "is not finished; run without --recrawl to resume it" in refused.stderr
    assert not (out / "records").exists() or records(out) == []


def test_recrawl_of_a_new_folder_is_a_first_crawl(workdir: Path) -> None:
    out, seeds = workdir / "out", workdir / "seeds.txt"
    with site_in_thread(SiteSpec(pages=20, hosts=1)) as served:
        seeds.write_text(served.seeds[0] + "\n")
        done = crawl(*run_args(seeds, out, "--recrawl"), cwd=workdir)
        pages = served.site.page_urls()
    assert done.returncode == 0, done.stderr
    found = by_url(records(out))
    assert all([r.outcome for r in found[url]] == [Outcome.STORED] for url in pages)


def test_mirror_recrawl_checks_each_file_for_a_newer_version(workdir: Path) -> None:
    out = workdir / "out"
    with site_in_thread(SiteSpec(pages=4, hosts=1)) as served:
        url = served.site.hosts[0].origin + "/files/data.bin"
        for more in ((), ("--recrawl",)):
            done = crawl("mirror", url, "--out", out, "--no-progress", *more, cwd=workdir)
            assert done.returncode == 0, done.stderr
    first, second = by_url(records(out))[url]
    assert (first.status, first.outcome) == (200, Outcome.STORED)
    assert (second.status, second.outcome) == (304, Outcome.NOT_MODIFIED)
    assert (out / second.path).stat().st_size == first.size == 65536


def test_a_recrawl_of_a_redis_job_keeps_its_settings(workdir: Path, clean_redis: Any) -> None:
    """Clearing a Redis job drops its stored settings with it: the new pass must run with the
    job's own (here 3 per host, 6 attempts), not the defaults."""
    out, seeds = workdir / "out", workdir / "seeds.txt"
    redis_args = ("--redis", clean_redis.url, "--job", "again", "--per-host", "3")
    with site_in_thread(SiteSpec(pages=30, hosts=1)) as served:
        seeds.write_text(served.seeds[0] + "\n")
        for more in ((), ("--recrawl",)):
            done = crawl(*run_args(seeds, out, *redis_args, "--retries", "5", *more), cwd=workdir)
            assert done.returncode == 0, done.stderr
        pages = served.site.page_urls()
        assert served.server.max_active[0] <= 3
    found = by_url(records(out))
    assert all(
        [r.outcome for r in found[url]] == [Outcome.STORED, Outcome.NOT_MODIFIED] for url in pages
    )
    stored = asyncio.run(_stored_settings(clean_redis.url, "again"))
    assert (stored.per_host_limit, stored.max_attempts) == (3, 6)


async def _stored_settings(url: str, job: str) -> Any:
    frontier = await open_frontier(url, job)
    try:
        return frontier.settings
    finally:
        await frontier.close()
