"""Redis going away in the middle of a crawl: workers wait it out and the crawl still finishes."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.demo_site import SiteSpec, site_in_thread
from tests.support.redis_server import RedisServer
from tests.workers.support import (
    crawl,
    duplicates,
    expected_crawl,
    record_count,
    records,
    start_crawl,
    stop,
    wait_all,
    wait_for,
)


@pytest.mark.timeout(400)
def test_a_redis_restart_mid_crawl_loses_nothing_and_workers_finish_by_themselves(
    workdir: Path, own_redis_server: RedisServer
) -> None:
    out = workdir / "out"
    spec = SiteSpec(pages=600, hosts=2)
    # Slow answers keep the crawl going long enough to take Redis away half way through.
    with site_in_thread(spec, latency=0.02) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text("\n".join(served.seeds) + "\n")
        common = ["--redis", own_redis_server.url, "--job", "restart", "--out", out]
        seeded = crawl("run", seeds, *common, "--workers", "0", cwd=workdir)
        assert seeded.returncode == 0, seeded.stderr
        workers = [
            start_crawl(
                "worker", *common, "--concurrency", "8", "--per-host", "4", "--no-progress",
                cwd=workdir, log=workdir / f"worker-{i}.log",
            )
            for i in range(2)
        ]  # fmt: skip
        try:
            wait_for(lambda: record_count(out) >= 100, "the first hundred pages")
            # Longer than the frontier's own reconnect attempts, so the workers see the
            # outage as FrontierUnavailable and have to wait it out themselves.
            own_redis_server.stop()
            for worker in workers:
                assert worker.poll() is None, "a worker died when Redis went away"
            wait_for(
                lambda: any(
                    "frontier unavailable" in (workdir / f"worker-{i}.log").read_text()
                    for i in range(2)
                ),
                "the worker to notice the outage",
                timeout=60,
            )
            own_redis_server.start()
            codes = wait_all(workers)
        finally:
            for worker in workers:
                stop(worker)
        logs = "".join((workdir / f"worker-{i}.log").read_text() for i in range(2))
        assert codes == [0, 0], logs
        found = records(out)
        expected = expected_crawl(served.site)
        assert {record.url for record in found} == expected.urls
        # A page whose ack was lost with the outage may be fetched again, never more.
        assert all(n <= 2 for n in duplicates(found).values()), duplicates(found)
