"""Several `crawl worker` processes on one Redis job, against a local site of three hosts."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import pytest

from crawler.demo_site import GeneratedBody, SiteSpec, site_in_thread
from storage import Outcome
from tests.support.redis_server import RedisServer
from tests.workers.support import (
    by_url,
    crawl,
    crawl_env,
    duplicates,
    expected_crawl,
    get_counts,
    records,
    start_crawl,
    stop,
    wait_all,
    wait_for,
)

PER_HOST = 3


def check_outcomes(found: list, expected: dict) -> None:
    grouped = by_url(found)
    for url, want in expected.items():
        (record,) = grouped[url]
        if want == "skipped":
            assert record.outcome is Outcome.SKIPPED, url
            assert "robots.txt" in (record.error or ""), url
        else:
            assert record.status == want, (url, record.status, record.error)


@pytest.mark.timeout(400)
@pytest.mark.parametrize("redis_version", ["debian", "6.2"])
def test_three_workers_fetch_every_page_once_within_per_host_limits(
    workdir: Path, redis_version: str, request: pytest.FixtureRequest
) -> None:
    # Debian's Redis (7) and 6.2, the oldest the frontier supports.
    fixture = "clean_redis" if redis_version == "debian" else "clean_redis_62"
    clean_redis: RedisServer = request.getfixturevalue(fixture)
    out = workdir / "out"
    spec = SiteSpec(pages=2000, hosts=3)
    # Every answer is held back 10 ms, so the workers' requests overlap at the server and its
    # count of concurrent requests per host shows whether the limit held.
    with site_in_thread(spec, latency=0.01, log_requests=True) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text("\n".join(served.seeds) + "\n")
        common = ["--redis", clean_redis.url, "--job", "e2e", "--out", out]
        seeded = crawl("run", seeds, *common, "--workers", "0", "--per-host", PER_HOST, cwd=workdir)
        assert seeded.returncode == 0, seeded.stderr
        assert "3 new seed(s)" in seeded.stderr
        workers = [
            start_crawl(
                "worker", *common, "--concurrency", "16", "--per-host", PER_HOST,
                "--no-progress", cwd=workdir, log=workdir / f"worker-{i}.log",
            )
            for i in range(3)
        ]  # fmt: skip
        try:
            codes = wait_all(workers)
        finally:
            for worker in workers:
                stop(worker)
        logs = "".join((workdir / f"worker-{i}.log").read_text() for i in range(3))
        assert codes == [0, 0, 0], logs
        found = records(out)
        expected = expected_crawl(served.site)
        assert duplicates(found) == {}
        assert {record.url for record in found} == expected.urls
        assert len(found) == len(expected.urls)
        check_outcomes(found, expected.outcomes)
        # The server saw each URL once (robots.txt once per host, fetched by one worker).
        counts = get_counts(served)
        assert {key: n for key, n in counts.items() if n != 1} == {}
        assert all(counts[(host, "/robots.txt")] == 1 for host in range(3))
        assert not any(path.startswith("/private/") for _, path in counts)
        assert max(served.server.max_active) <= PER_HOST, served.server.max_active
    status = crawl("status", "--redis", clean_redis.url, "--job", "e2e", "--json", cwd=workdir)
    assert status.returncode == 0, status.stderr
    assert '"finished": true' in status.stdout


@pytest.mark.timeout(500)
def test_a_killed_worker_loses_nothing_and_its_big_download_resumes_with_range(
    workdir: Path, clean_redis: RedisServer
) -> None:
    out = workdir / "out"
    size = 200 * 1000 * 1000
    spec = SiteSpec(pages=300, hosts=3, big_files=(size,))
    env = crawl_env(CRAWL_LEASE_SECONDS="4")
    # 25 MB/s: the 200 MB file takes about 8 s, long enough to kill its worker half way.
    with site_in_thread(spec, rate=25e6, latency=0.005, log_requests=True) as served:
        big = served.site.hosts[0].routes["/files/big-0.bin"]
        assert isinstance(big, GeneratedBody)
        seeds = workdir / "seeds.txt"
        seeds.write_text("\n".join(served.seeds) + "\n")
        common = ["--redis", clean_redis.url, "--job", "kill", "--out", out]
        seeded = crawl("run", seeds, *common, "--workers", "0", cwd=workdir, env=env)
        assert seeded.returncode == 0, seeded.stderr
        part = out / "files" / f"127.0.0.1+{served.site.hosts[0].port}" / "files" / "big-0.bin.part"
        first = start_crawl(
            "worker", *common, "--concurrency", "8", "--no-progress",
            cwd=workdir, env=env, log=workdir / "first.log",
        )  # fmt: skip
        others = []
        try:
            wait_for(lambda: part.exists() and part.stat().st_size >= size // 2, "half the file")
            first.send_signal(signal.SIGKILL)
            assert first.wait(timeout=30) == -signal.SIGKILL
            killed_at = part.stat().st_size
            assert killed_at < size
            others = [
                start_crawl(
                    "worker", *common, "--concurrency", "8", "--no-progress",
                    cwd=workdir, env=env, log=workdir / f"other-{i}.log",
                )
                for i in range(2)
            ]  # fmt: skip
            codes = wait_all(others)
        finally:
            for process in [first, *others]:
                stop(process)
        logs = "".join((workdir / f"other-{i}.log").read_text() for i in range(2))
        assert codes == [0, 0], logs
        found = records(out)
        expected = expected_crawl(served.site)
        stored = {r.url for r in found if r.outcome is not Outcome.FAILED}
        assert stored >= expected.urls - {served.seeds[0] + "files/big-0.bin"}
        # Only what the killed worker was fetching may have been fetched twice.
        survivors = [r for r in found if r.writer != found_writer_of(found, first.pid)]
        assert duplicates(survivors) == {}
        big_url = served.seeds[0] + "files/big-0.bin"
        (done,) = [r for r in by_url(found)[big_url] if r.outcome is Outcome.STORED]
        assert done.resumed_from is not None and done.resumed_from > 0
        assert done.resumed_from <= killed_at
        assert done.size == size
        assert done.sha256 == big.sha256()
        assert done.path is not None
        assert sha256_of(out / done.path) == big.sha256()
        ranges = [
            entry.range
            for entry in served.server.log or []
            if entry.path == "/files/big-0.bin" and entry.range
        ]
        assert ranges == [f"bytes={done.resumed_from}-"]
        assert not part.exists()


def found_writer_of(found: list, pid: int) -> str:
    """The writer id (host-pid) of the process with `pid`, as its records name it."""
    return next((r.writer for r in found if r.writer.endswith(f"-{pid}")), f"none-{pid}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
