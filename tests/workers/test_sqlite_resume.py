"""`crawl run` without Redis: the SQLite frontier in OUT, stopped with Ctrl-C and run again."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.demo_site import SiteSpec, site_in_thread
from storage import Outcome
from tests.workers.support import (
    by_url,
    crawl,
    crawl_env,
    duplicates,
    expected_crawl,
    get_counts,
    interrupt,
    record_count,
    records,
    start_crawl,
    stop,
    wait_all,
    wait_for,
)


@pytest.mark.timeout(400)
@pytest.mark.parametrize("group", [False, True], ids=["sigint-to-crawl", "ctrl-c-to-group"])
def test_an_interrupted_crawl_resumes_and_fetches_every_page_once(
    workdir: Path, group: bool
) -> None:
    out = workdir / "out"
    spec = SiteSpec(pages=2000, hosts=3)
    # Slow answers (30 ms) keep the crawl going long enough to interrupt it half way; a long
    # grace lets every fetch in flight finish, so none is cut and fetched again.
    env = crawl_env(CRAWL_GRACE_SECONDS="60")
    with site_in_thread(spec, latency=0.03, log_requests=True) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text("\n".join(served.seeds) + "\n")
        args = ["run", seeds, "--out", out, "--workers", "2", "--per-host", "4", "--no-progress"]
        first = start_crawl(
            *args, cwd=workdir, env=env, log=workdir / "first.log", new_session=True
        )
        try:
            wait_for(lambda: record_count(out) >= 300, "300 records")
            interrupt(first, group=group)
            (code,) = wait_all([first])
        finally:
            stop(first)
        log = (workdir / "first.log").read_text()
        assert code == 130, log
        assert "interrupted: state saved" in log
        assert "crawl stopped after" in log
        partial = records(out)
        expected = expected_crawl(served.site)
        assert duplicates(partial) == {}
        assert len(partial) < len(expected.urls)

        second = crawl(*args, cwd=workdir, env=env)
        assert second.returncode == 0, second.stderr
        assert "0 new seed(s), 3 already known" in second.stderr
        found = records(out)
        assert duplicates(found) == {}
        assert {record.url for record in found} == expected.urls
        assert {key: n for key, n in get_counts(served).items() if n != 1} == {}
    status = crawl("status", out, "--json", cwd=workdir)
    assert status.returncode == 0, status.stderr
    assert '"finished": true' in status.stdout
    assert '"leased": 0' in status.stdout


@pytest.mark.timeout(300)
def test_a_crawl_that_ends_cuts_no_fetch_and_leaves_no_part_files(workdir: Path) -> None:
    out = workdir / "out"
    with site_in_thread(SiteSpec(pages=200, hosts=2, big_files=(3_000_000,))) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text("\n".join(served.seeds) + "\n")
        done = crawl("run", seeds, "--out", out, "--workers", "1", "--no-progress", cwd=workdir)
        assert done.returncode == 0, done.stderr
        found = by_url(records(out))
        big = found[served.seeds[0] + "files/big-0.bin"]
        assert [r.outcome for r in big] == [Outcome.STORED], (big[0].error, done.stderr)
        assert big[0].size == 3_000_000
    assert list(out.rglob("*.part")) == []
    assert "crawl finished in" in done.stderr
