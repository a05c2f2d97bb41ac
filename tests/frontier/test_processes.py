"""Several worker processes on one frontier store (SQLite file, real redis-server).

Each test starts 2 real processes of 8 asyncio workers each (tests/frontier/worker_process.py),
every worker with its own connection, and checks what they logged against what the frontier
promises: no task handed out twice while its lease is live, per-host limits and delays held
across processes, and nothing lost when a process is SIGKILLed holding leases.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from crawler.frontier import FrontierSettings

from .conftest import Backend

REPO = Path(__file__).resolve().parents[2]
REAL_STORES = pytest.mark.parametrize("backend", ["sqlite", "redis"], indirect=True)


@dataclass(slots=True)
class Leased:
    id: str
    host: str
    worker: str
    attempts: int
    start: float  # store clock: deadline - lease_seconds
    got_at: float  # wall clock, right after lease() returned


@dataclass(slots=True)
class Acked:
    id: str
    host: str
    worker: str
    at: float  # wall clock, right before ack() was called
    ok: bool


@dataclass
class Log:
    leased: list[Leased]
    acked: list[Acked]
    hung: dict[str, float]  # id -> lease deadline of a lease the worker held till it died
    ready: int  # workers holding their hung leases


def read_log(path: Path) -> Log:
    log = Log([], [], {}, 0)
    if not path.exists():
        return log
    for line in path.read_text().splitlines():
        kind, *f = line.split()
        if kind == "L":
            log.leased.append(Leased(f[0], f[1], f[2], int(f[3]), float(f[4]), float(f[5])))
        elif kind == "A":
            log.acked.append(Acked(f[0], f[1], f[2], float(f[3]), f[4] == "1"))
        elif kind == "H":
            log.hung[f[0]] = float(f[3])
        elif kind == "R":
            log.ready += 1
    return log


async def start_workers(
    backend: Backend, log: Path, *extra: str
) -> asyncio.subprocess.Process:
    assert backend.target is not None
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.frontier.worker_process",
        backend.target, backend.job, str(log), "--workers", "8", *extra,
        cwd=REPO, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def finish(process: asyncio.subprocess.Process, timeout: float = 90.0) -> None:
    try:
        _, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"worker process {process.pid} did not finish in {timeout}s") from None
    assert process.returncode == 0, err.decode(errors="replace")[-3000:]


def most_in_flight(leased: list[Leased], acked: list[Acked]) -> dict[str, int]:
    """Per host, the most tasks the workers held at once, from their own clocks: from the
    moment lease() returned a task to the moment its ack() was called. Each such span lies
    inside the span the frontier counts the task as in flight, so the frontier's limit bounds
    this measure too."""
    events: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for item in leased:
        events[item.host].append((item.got_at, 1))
    for done in acked:
        events[done.host].append((done.at, -1))
    most: dict[str, int] = {}
    for host, marks in events.items():
        level = peak = 0
        for _, step in sorted(marks):  # at equal times the end (-1) sorts first
            level += step
            peak = max(peak, level)
        most[host] = peak
    return most


@REAL_STORES
async def test_two_processes_of_eight_workers_share_one_frontier(
    backend: Backend, tmp_path: Path
) -> None:
    settings = FrontierSettings(per_host_limit=2, lease_seconds=30.0)
    frontier = await backend.open(settings)
    polite = ["polite0.test", "polite1.test"]
    for host in polite:
        await frontier.set_host_delay(host, 0.05)
    urls = [f"http://h{i % 8}.test/{i}" for i in range(320)]
    urls += [f"http://{polite[i % 2]}/{i}" for i in range(24)]
    assert (await frontier.add(urls)).added == len(urls)

    logs = [tmp_path / "p0.log", tmp_path / "p1.log"]
    processes = [await start_workers(backend, log) for log in logs]
    for process in processes:
        await finish(process)
    runs = [read_log(log) for log in logs]
    leased = [item for run in runs for item in run.leased]
    acked = [item for run in runs for item in run.acked]

    ids = [item.id for item in leased]
    assert len(ids) == len(set(ids)) == len(urls), "a task was handed out twice"
    assert all(run.leased for run in runs), "both processes must have leased tasks"
    assert len(acked) == len(urls) and all(a.ok for a in acked)
    stats = await frontier.stats()
    assert (stats.done, stats.queued, stats.leased, stats.expired) == (len(urls), 0, 0, 0)
    assert await frontier.is_finished()

    in_flight = most_in_flight(leased, acked)
    assert max(in_flight.values()) <= 2, in_flight
    assert max(in_flight.values()) == 2, "the limit was never reached: nothing was tested"
    for host in polite:
        starts = sorted(item.start for item in leased if item.host == host)
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert len(gaps) == 11
        assert min(gaps) >= 0.05 - 0.002, (host, gaps)


@REAL_STORES
async def test_a_process_killed_mid_lease_loses_nothing(backend: Backend, tmp_path: Path) -> None:
    settings = FrontierSettings(per_host_limit=4, lease_seconds=3.0, max_attempts=5)
    frontier = await backend.open(settings)
    urls = [f"http://h{i % 10}.test/{i}" for i in range(200)]
    await frontier.add(urls)

    victim_log, survivor_log = tmp_path / "victim.log", tmp_path / "survivor.log"
    victim = await start_workers(backend, victim_log, "--hang-after", "3")
    survivor = None
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 60
    try:
        while read_log(victim_log).ready < 8:  # every worker of the victim holds leases
            assert victim.returncode is None, "the victim process died on its own"
            assert loop.time() < give_up, "the victim's workers never all held leases"
            await asyncio.sleep(0.01)
        # the survivor starts while the victim holds its leases, and is at work when it dies
        survivor = await start_workers(backend, survivor_log)
        while not read_log(survivor_log).leased:
            assert loop.time() < give_up, "the survivor never leased anything"
            await asyncio.sleep(0.01)
        killed_at = time.time()
        os.kill(victim.pid, signal.SIGKILL)
        await victim.wait()
        assert victim.returncode == -signal.SIGKILL
        await finish(survivor)
    finally:
        for process in (victim, survivor):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()

    dead, alive = read_log(victim_log), read_log(survivor_log)
    assert len(dead.hung) == 16  # 8 workers x batch 2, leased and never acked
    assert killed_at < min(dead.hung.values()), "killed after the leases had expired anyway"
    assert not {a.id for a in dead.acked} & set(dead.hung)
    retaken = {item.id: item for item in alive.leased if item.id in dead.hung}
    assert set(retaken) == set(dead.hung), "a task of the killed process was lost"
    for task_id, item in retaken.items():
        assert item.attempts == 1
        assert item.start >= dead.hung[task_id] - 0.002, "re-leased while the lease was live"

    ok = [a.id for a in [*dead.acked, *alive.acked] if a.ok]
    assert sorted(ok) == sorted(set(ok)), "a task was acknowledged twice"
    assert len(ok) == len(urls)
    stats = await frontier.stats()
    assert (stats.done, stats.dead, stats.queued, stats.leased) == (len(urls), 0, 0, 0)
    assert stats.expired >= 16
    assert await frontier.is_finished()
