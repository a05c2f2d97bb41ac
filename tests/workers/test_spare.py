"""`crawl run` forks its first worker as it starts (`workers.spare`): that worker crawls like a
spawned one, the others are spawned as before, and a spare nobody needs goes away quietly."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from crawler.demo_site import SiteSpec, site_in_thread
from tests.workers.support import (
    by_url,
    crawl,
    record_count,
    records,
    start_crawl,
    stop,
    wait_all,
    wait_for,
)
from workers.spare import ForkedProcess


def children_of(pid: int) -> dict[int, str]:
    """Live children of `pid`: their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return {child: cmdline.decode(errors="replace") for child, cmdline in found.items()}


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_worker_0_is_forked_as_crawl_starts_and_the_others_are_spawned(workdir: Path) -> None:
    out = workdir / "out"
    with site_in_thread(SiteSpec(pages=300, hosts=2), latency=0.05) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text("\n".join(served.seeds) + "\n")
        command = start_crawl(
            "run", seeds, "--out", out, "--workers", "2", "--concurrency", "4", "--no-progress",
            cwd=workdir, log=workdir / "run.log",
        )  # fmt: skip
        try:
            wait_for(lambda: record_count(out) >= 10, "10 records")
            workers = children_of(command.pid)
            (code,) = wait_all([command])
        finally:
            stop(command)
        assert code == 0, (workdir / "run.log").read_text()
        expected = set(served.site.page_urls())
    forked = [pid for pid, cmdline in workers.items() if "crawler.cli run" in cmdline]
    spawned = [pid for pid, cmdline in workers.items() if "workers.process" in cmdline]
    assert len(forked) == 1 and len(spawned) == 1, workers
    found = records(out)
    # Every page once, and the forked worker did its share.
    assert {url for url, group in by_url(found).items() if len(group) == 1} >= expected
    writers = {record.writer for record in found}
    assert any(writer.endswith(f"-{forked[0]}") for writer in writers), writers


def test_a_spare_that_is_not_needed_exits_with_the_command(workdir: Path) -> None:
    seeds = workdir / "seeds.txt"
    seeds.write_text("http://127.0.0.1:9/\n")
    marker = str(workdir / "seed-only")
    done = crawl("run", seeds, "--out", marker, "--workers", "0", cwd=workdir)
    assert done.returncode == 0, done.stderr
    bad = crawl("run", workdir / "missing.txt", "--out", marker, cwd=workdir)
    assert bad.returncode == 2
    deadline = time.monotonic() + 10
    while processes_mentioning(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_mentioning(marker) == []


def test_a_forked_process_reports_its_exit_as_popen_does() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    exited = ForkedProcess(pid)
    assert exited.wait() == 3
    assert exited.poll() == 3
    exited.send_signal(signal.SIGTERM)  # gone: nothing to signal, no error

    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    sleeping = ForkedProcess(pid)
    assert sleeping.poll() is None
    sleeping.send_signal(signal.SIGTERM)
    assert sleeping.wait() == -signal.SIGTERM
