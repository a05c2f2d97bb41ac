"""The `crawl` commands when Redis misbehaves: nothing listening, a job wiped by a restart
without persistence, a server out of memory, a worker told to stop while Redis is down.

Each must end in one clear line and an exit code (or a retry), never a traceback, a hang (every
process runs under a timeout) or "finished" for a crawl that is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from crawler.demo_site import SiteSpec, site_in_thread
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer
from tests.workers.support import (
    crawl,
    record_count,
    start_crawl,
    stop,
    wait_all,
    wait_for,
)

EXIT_FRONTIER_FAILED = 69


def one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.timeout(120)
def test_status_and_run_against_a_port_where_nothing_listens_say_so_in_one_line(
    workdir: Path,
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = crawl("status", "--redis", url, "--job", "j", cwd=workdir, timeout=60)
    assert done.returncode == 1
    assert "unreachable" in one_line_error(done.stderr)
    seeds = workdir / "seeds.txt"
    seeds.write_text("http://127.0.0.1:9/\n")
    for workers in ("0", "2"):
        ran = crawl(
            "run", seeds, "--redis", url, "--job", "j", "--out", workdir / "out",
            "--workers", workers, "--no-progress", cwd=workdir, timeout=60,
        )  # fmt: skip
        assert ran.returncode == 1, ran.stderr
        assert "Traceback" not in ran.stderr, ran.stderr
        assert f"redis at 127.0.0.1:{url.split(':')[2].split('/')[0]} unreachable" in ran.stderr


@pytest.mark.timeout(300)
def test_a_job_wiped_by_a_redis_restart_without_persistence_ends_the_crawl_with_an_error(
    workdir: Path, volatile_redis_server: RedisServer
) -> None:
    out = workdir / "out"
    spec = SiteSpec(pages=400, hosts=2)
    with site_in_thread(spec, latency=0.02) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text("\n".join(served.seeds) + "\n")
        common = ["--redis", volatile_redis_server.url, "--job", "wiped", "--out", out]
        log = workdir / "run.log"
        run = start_crawl(
            "run", seeds, *common, "--workers", "2", "--concurrency", "4", "--no-progress",
            cwd=workdir, log=log,
        )  # fmt: skip
        try:
            wait_for(lambda: record_count(out) >= 40, "the first pages", timeout=120)
            volatile_redis_server.restart()  # the job is gone
            (code,) = wait_all([run], timeout=120)
        finally:
            stop(run)
        said = log.read_text()
        assert code == EXIT_FRONTIER_FAILED, said
        assert "Traceback" not in said, said
        assert "is gone from redis" in said, said
        assert "the crawl is not finished" in said, said
        assert "restarting it" not in said, "a worker was restarted into the emptied job"
        assert record_count(out) < len(served.site.reachable(robots=True)), "it all got done?"
        # Nothing re-created the job (a restarted worker would have, empty, "finished").
        client = redis.Redis.from_url(volatile_redis_server.url)
        try:
            assert not client.exists("crawl:{wiped}:config")
        finally:
            client.close()
        url = volatile_redis_server.url
        status = crawl("status", "--redis", url, "--job", "wiped", cwd=workdir)
        assert status.returncode == 1 and "no job 'wiped'" in one_line_error(status.stderr)


@contextlib.contextmanager
def crawling_worker(
    workdir: Path, server: RedisServer, job: str, *, latency: float
) -> Iterator[tuple[Path, subprocess.Popen[bytes], Path]]:
    """A `crawl worker` on a seeded Redis job of a 300-page site, once it has stored 10
    pages: (OUT, the worker process, its log). The worker is stopped at the end."""
    out = workdir / "out"
    with site_in_thread(SiteSpec(pages=300, hosts=1), latency=latency) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text("\n".join(served.seeds) + "\n")
        common = ["--redis", server.url, "--job", job, "--out", out]
        seeded = crawl("run", seeds, *common, "--workers", "0", cwd=workdir, timeout=60)
        assert seeded.returncode == 0, seeded.stderr
        log = workdir / "worker.log"
        worker = start_crawl(
            "worker", *common, "--concurrency", "4", "--no-progress", cwd=workdir, log=log
        )
        try:
            wait_for(lambda: record_count(out) >= 10, "the first pages", timeout=120)
            yield out, worker, log
        finally:
            stop(worker)


@pytest.mark.timeout(300)
def test_a_worker_whose_job_is_wiped_stops_with_one_clear_error(
    workdir: Path, volatile_redis_server: RedisServer
) -> None:
    with crawling_worker(workdir, volatile_redis_server, "wiped", latency=0.02) as (_, worker, log):
        volatile_redis_server.restart()
        (code,) = wait_all([worker], timeout=120)
    said = log.read_text()
    assert code == EXIT_FRONTIER_FAILED, said
    assert "Traceback" not in said, said
    assert said.count("is gone from redis") == 1, said


@pytest.mark.timeout(200)
def test_a_worker_stopped_while_redis_is_down_exits_without_hanging(
    workdir: Path, own_redis_server: RedisServer
) -> None:
    with crawling_worker(workdir, own_redis_server, "down", latency=0.05) as (_, worker, log):
        own_redis_server.stop()
        wait_for(lambda: "frontier unavailable" in log.read_text(), "the outage", timeout=60)
        worker.send_signal(signal.SIGTERM)
        (code,) = wait_all([worker], timeout=90)
    said = log.read_text()
    assert code == 130, said
    assert "Traceback" not in said, said


@pytest.mark.timeout(200)
def test_status_of_a_job_on_a_server_out_of_memory_still_reads_it(
    workdir: Path, own_redis_server: RedisServer
) -> None:
    seeds = workdir / "seeds.txt"
    seeds.write_text("http://127.0.0.1:9/a\nhttp://127.0.0.1:9/b\n")
    common = ["--redis", own_redis_server.url, "--job", "full"]
    seeded = crawl("run", seeds, *common, "--out", workdir / "out", "--workers", "0",
                   cwd=workdir, timeout=60)  # fmt: skip
    assert seeded.returncode == 0, seeded.stderr
    client = redis.Redis.from_url(own_redis_server.url)
    try:
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)
        status = crawl("status", *common, "--json", cwd=workdir, timeout=60)
        assert status.returncode == 0, status.stderr
        assert '"queued": 2' in status.stdout
        # A run that has to write says why it cannot, in one line.
        ran = crawl("run", seeds, *common, "--out", workdir / "out", "--workers", "0",
                    cwd=workdir, timeout=60)  # fmt: skip
        assert ran.returncode == 1
        assert "out of memory" in one_line_error(ran.stderr)
    finally:
        client.config_set("maxmemory", 0)
        client.close()


@pytest.mark.timeout(200)
def test_a_redis_url_with_a_database_number_keeps_the_job_there(
    workdir: Path, clean_redis: RedisServer
) -> None:
    with site_in_thread(SiteSpec(pages=20, hosts=1)) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text("\n".join(served.seeds) + "\n")
        url5 = f"redis://127.0.0.1:{clean_redis.port}/5"
        ran = crawl("run", seeds, "--redis", url5, "--job", "db5", "--out", workdir / "out",
                    "--workers", "1", "--no-progress", cwd=workdir)  # fmt: skip
        assert ran.returncode == 0, ran.stderr
    here = crawl("status", "--redis", url5, "--job", "db5", "--json", cwd=workdir)
    assert here.returncode == 0 and '"finished": true' in here.stdout, here.stderr
    other = crawl("status", "--redis", clean_redis.url, "--job", "db5", cwd=workdir)
    assert other.returncode == 1 and "no job 'db5'" in other.stderr
    client = redis.Redis.from_url(url5)
    try:
        client.flushdb()
    finally:
        client.close()


@pytest.mark.timeout(200)
async def test_tasks_waiting_in_a_workers_queue_keep_their_leases_and_are_fetched_once(
    tmp_path: Path, clean_redis: RedisServer
) -> None:
    """Fetches slower than a lease: a leased task waiting in a worker's queue for a free
    fetcher (or, likewise, for Redis to come back) must keep its lease, or another worker
    takes it and the page is fetched and recorded twice."""
    from crawler.config import Settings
    from crawler.frontier import open_frontier
    from storage import Store
    from tests.workers.support import duplicates, records
    from workers.job import frontier_settings
    from workers.process import make_session
    from workers.worker import Worker, WorkerExit, WorkerOptions

    with site_in_thread(SiteSpec(pages=10, hosts=1), latency=1.0) as served:
        settings = Settings(
            out=tmp_path / "out", robots=False, per_host=4, lease_seconds=1.0, retries=9
        )
        wanted = frontier_settings(settings)
        opened = []
        for _ in range(2):
            opened.append(await open_frontier(clean_redis.url, "slow", wanted))
        await opened[0].add(served.seeds)
        runs = []
        sessions = []
        stores = []
        for i, frontier in enumerate(opened):
            session = make_session(settings)
            store = Store(settings.out, writer_id=f"w{i}")
            sessions.append(session)
            stores.append(store)
            worker = Worker(
                frontier,
                session,
                store,
                WorkerOptions(name=f"w{i}", concurrency=1, lease_batch=4, renew_s=0.3),
            )
            runs.append(worker.run())
        try:
            codes = await asyncio.wait_for(asyncio.gather(*runs), 150)
        finally:
            for session in sessions:
                await session.close()
            for store in stores:
                store.close()
            for frontier in opened:
                await frontier.close()
        assert codes == [WorkerExit.FINISHED, WorkerExit.FINISHED]
        found = records(tmp_path / "out")
        assert {r.url for r in found} >= set(served.site.page_urls())
        assert duplicates(found) == {}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("store", ["redis", "sqlite"])
def test_a_worker_started_after_its_job_vanished_fails_without_recreating_it(
    workdir: Path, redis_server: RedisServer, store: str
) -> None:
    """A worker the supervisor restarts after the job's data was lost: opening the frontier
    would create an empty job, which the worker would find finished and exit 0."""
    from crawler.config import load_settings
    from crawler.frontier import job_exists
    from workers.job import frontier_target
    from workers.process import run_worker_process

    out = workdir / "out"
    given: dict[str, str] = {"out": str(out), "job": "vanished"}
    if store == "redis":
        given["redis"] = redis_server.url
    settings = load_settings(given, env={})
    assert run_worker_process(settings) == EXIT_FRONTIER_FAILED
    assert not asyncio.run(job_exists(frontier_target(settings), "vanished"))
    assert not (out / "frontier.sqlite").exists()
