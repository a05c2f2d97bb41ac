"""The supervisor of `crawl run`: a signal to one worker, a signal while seeding, and a metrics
port it cannot bind each end the way a user expects (the crawl finished or exit 130), never in
a false "finished", a bare exit 1 or a restart loop."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from crawler.demo_site import SiteSpec, site_in_thread
from tests.workers.support import (
    crawl,
    duplicates,
    expected_crawl,
    records,
    start_crawl,
    stop,
    wait_all,
    wait_for,
)


def test_a_signal_to_the_only_worker_gets_it_replaced_and_the_crawl_finishes(
    workdir: Path,
) -> None:
    out = workdir / "out"
    with site_in_thread(SiteSpec(pages=300), latency=0.01) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text(served.seeds[0] + "\n")
        run = start_crawl("run", seeds, "--out", out, "--workers", "1", "--concurrency", "4",
                          "--no-robots", "--no-progress", cwd=workdir,
                          log=workdir / "run.log")  # fmt: skip
        try:
            wait_for(lambda: (out / "records").is_dir() and len(records(out)) >= 20, "20 pages")
            (worker,) = psutil.Process(run.pid).children()
            worker.send_signal(signal.SIGTERM)
            (code,) = wait_all([run])
        finally:
            stop(run)
        said = (workdir / "run.log").read_text()
        assert code == 0, said
        assert "worker 0 was stopped by a signal; restarting it" in said
        found = records(out)
        assert duplicates(found) == {}
        assert {r.url for r in found} == expected_crawl(served.site, robots=False).urls


def test_a_signal_while_seeding_many_workers_is_exit_130_with_state_saved(workdir: Path) -> None:
    seeds = workdir / "seeds.txt"
    seeds.write_text("".join(f"http://127.0.0.1:9/{n}\n" for n in range(60_000)))
    run = start_crawl("run", seeds, "--out", workdir / "out", "--workers", "2", "--no-progress",
                      cwd=workdir, log=workdir / "run.log")  # fmt: skip
    try:
        wait_for(lambda: (workdir / "out" / "frontier.sqlite").exists(), "the frontier file")
        run.send_signal(signal.SIGTERM)
        (code,) = wait_all([run])
    finally:
        stop(run)
    said = (workdir / "run.log").read_text()
    assert code == 130, said
    assert "interrupted" in said and "Traceback" not in said


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_a_metrics_port_in_use_costs_the_metrics_not_the_crawl(
    workdir: Path, busy_port: int
) -> None:
    port = busy_port
    with site_in_thread(SiteSpec(pages=30)) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text(served.seeds[0] + "\n")
        done = crawl("run", seeds, "--out", workdir / "out", "--workers", "1",
                     "--metrics-port", str(port), "--no-progress", cwd=workdir)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"worker 0 serves no metrics: port {port}:" in done.stderr
    assert "restarting" not in done.stderr
    assert len(records(workdir / "out")) >= 30


def test_log_format_json_makes_every_line_json(workdir: Path, busy_port: int) -> None:
    """Seeding report, warnings of the workers, the --max-pages stop and the summary: a log
    collector reading JSON lines gets nothing else."""
    with site_in_thread(SiteSpec(pages=60)) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text(served.seeds[0] + "\nftp://nowhere.test/\n")
        done = crawl("run", seeds, "--out", workdir / "out", "--workers", "2",
                     "--max-pages", "20", "--metrics-port", str(busy_port), "--log-format",
                     "json", "--no-progress", cwd=workdir)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    events = [json.loads(line) for line in lines]  # each line is JSON, or this fails
    kinds = {event["event"] for event in events}
    assert {"seed-rejected", "seeded", "log", "max-pages", "summary"} <= kinds, kinds
    logged = [e for e in events if e["event"] == "log"]  # other warnings may come too
    assert any(e["level"] == "error" and "serves no metrics" in e["message"] for e in logged)
    assert all({"time", "level", "logger", "message"} <= set(e) for e in logged)
