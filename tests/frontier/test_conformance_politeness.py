"""The Frontier contract, part 2: politeness per host, held by the frontier itself.

Lease starts are read from the frontier's own clock (`deadline - lease_seconds`), so spacing is
checked on what the frontier decided, not on how fast this machine runs the test.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from crawler.frontier import Ack, FrontierSettings, Task

from .conftest import Backend


def start_of(task: Task, settings: FrontierSettings) -> float:
    return task.deadline - settings.lease_seconds


async def lease_until(frontier, count: int, worker: str = "w", limit: float = 20.0) -> list[Task]:  # type: ignore[no-untyped-def]
    """Lease (acking at once) until `count` tasks came out; polls while hosts are waiting."""
    got: list[Task] = []
    loop = asyncio.get_running_loop()
    give_up = loop.time() + limit
    while len(got) < count:
        assert loop.time() < give_up, f"only {len(got)} of {count} tasks came out"
        tasks = await frontier.lease(count - len(got), worker)
        got.extend(tasks)
        if tasks:
            await frontier.ack_many([Ack(t) for t in tasks])
        else:
            await asyncio.sleep(0.01)
    return got


async def test_in_flight_limit_per_host(backend: Backend) -> None:
    frontier = await backend.open(FrontierSettings(per_host_limit=2))
    await frontier.add([f"http://a.test/{i}" for i in range(5)] + ["http://b.test/1"])
    first = await frontier.lease(10, "w")
    assert sorted(t.host for t in first) == ["a.test", "a.test", "b.test"]
    assert await frontier.lease(10, "w") == []  # a.test is at its limit, b.test is empty
    await frontier.ack(next(t for t in first if t.host == "a.test"))
    (one_more,) = await frontier.lease(10, "w")
    assert one_more.host == "a.test"


async def test_the_limit_holds_across_workers(backend: Backend) -> None:
    settings = FrontierSettings(per_host_limit=3)
    workers = [await backend.open(settings) for _ in range(3)]
    await workers[0].add([f"http://a.test/{i}" for i in range(20)])
    leased = [t for w in workers for t in await w.lease(10, "w")]
    assert len(leased) == 3


async def test_delay_between_starts_on_one_host(backend: Backend) -> None:
    settings = FrontierSettings(per_host_limit=5, per_host_delay=0.15)
    frontier = await backend.open(settings)
    await frontier.add([f"http://slow.test/{i}" for i in range(4)])
    (first,) = await frontier.lease(10, "w")  # one start per host per delay
    assert await frontier.lease(10, "w") == []
    tasks = [first, *await lease_until(frontier, 3)]
    starts = [start_of(t, settings) for t in tasks]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= 0.15 - 0.002 for gap in gaps), gaps  # the store clock has ms resolution


async def test_a_waiting_host_never_blocks_other_hosts(backend: Backend) -> None:
    settings = FrontierSettings(per_host_limit=5, per_host_delay=30.0)
    frontier = await backend.open(settings)
    await frontier.add(["http://slow.test/1", "http://slow.test/2"])
    await frontier.add([f"http://fast{i}.test/" for i in range(5)])
    first = await frontier.lease(100, "w")
    assert sorted(t.host for t in first) == ["fast0.test", "fast1.test", "fast2.test",
                                             "fast3.test", "fast4.test", "slow.test"]  # fmt: skip
    await frontier.add([f"http://fresh{i}.test/" for i in range(3)])
    later = await frontier.lease(100, "w")
    assert sorted(t.host for t in later) == ["fresh0.test", "fresh1.test", "fresh2.test"]


async def test_crawl_delay_of_one_host_spaces_only_that_host(backend: Backend) -> None:
    settings = FrontierSettings(per_host_limit=5, max_crawl_delay=0.2)
    frontier = await backend.open(settings)
    set_at = time.time()
    await frontier.set_host_delay("polite.test", 10.0)  # capped by max_crawl_delay
    await frontier.add([f"http://polite.test/{i}" for i in range(3)])
    await frontier.add([f"http://free.test/{i}" for i in range(3)])
    first = await frontier.lease(100, "w")
    # The robots.txt that said so was a request: the first page, too, waits a delay.
    assert sorted(t.host for t in first) == ["free.test"] * 3
    await frontier.ack_many([Ack(t) for t in first])
    rest = await lease_until(frontier, 3)
    starts = sorted(start_of(t, settings) for t in rest if t.host == "polite.test")
    gaps = [b - a for a, b in itertools.pairwise([set_at, *starts])]
    assert len(gaps) == 3
    assert all(gap >= 0.2 - 0.002 for gap in gaps), gaps


async def test_a_crawl_delay_learnt_after_leasing_holds_from_then_on(backend: Backend) -> None:
    """Tasks leased before robots.txt was read went out at once; the delay it names starts
    from when it was read, not from the host's next lease."""
    settings = FrontierSettings(per_host_limit=5, max_crawl_delay=0.3)
    frontier = await backend.open(settings)
    await frontier.add([f"http://late.test/{i}" for i in range(4)])
    early = await frontier.lease(2, "w")
    assert [t.host for t in early] == ["late.test"] * 2
    set_at = time.time()
    await frontier.set_host_delay("late.test", 0.3)
    assert await frontier.lease(100, "w") == []  # not at once, though slots are free
    (later,) = await lease_until(frontier, 1)
    assert start_of(later, settings) - set_at >= 0.3 - 0.002


async def test_429_pushes_the_whole_host_back_by_retry_after(backend: Backend) -> None:
    settings = FrontierSettings(per_host_limit=5)
    frontier = await backend.open(settings)
    await frontier.add([f"http://busy.test/{i}" for i in range(3)] + ["http://calm.test/"])
    tasks = await frontier.lease(100, "w")
    busy = [t for t in tasks if t.host == "busy.test"]
    assert len(busy) == 3
    assert await frontier.retry(busy[0], 0.3, "HTTP 429", status=429)
    await frontier.release(busy[1:])
    await frontier.ack(next(t for t in tasks if t.host == "calm.test"))
    await frontier.add(["http://calm.test/more"])
    (calm,) = await frontier.lease(100, "w")  # the other host is not held up
    assert calm.host == "calm.test"
    back = await lease_until(frontier, 3)
    assert {t.url for t in back} == {t.url for t in busy}
    retried_at = min(start_of(t, settings) for t in back)
    assert retried_at - start_of(busy[0], settings) >= 0.3 - 0.002
    assert next(t for t in back if t.id == busy[0].id).attempts == 1


async def test_503_without_retry_after_backs_off_exponentially(backend: Backend) -> None:
    settings = FrontierSettings(per_host_limit=5, backoff_base=0.1, backoff_max=0.4,
                                max_attempts=10)  # fmt: skip
    frontier = await backend.open(settings)
    await frontier.add(["http://down.test/"])
    (task,) = await frontier.lease(1, "w")
    starts = [start_of(task, settings)]
    for _ in range(4):
        await frontier.retry(task, None, "HTTP 503", status=503)
        (task,) = await _lease_one(frontier)
        starts.append(start_of(task, settings))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    expected = [0.1, 0.2, 0.4, 0.4]  # doubles from backoff_base, capped at backoff_max
    assert all(gap >= want - 0.002 for gap, want in zip(gaps, expected, strict=True)), gaps
    assert task.attempts == 4


async def test_success_ends_a_hosts_backoff_streak(backend: Backend) -> None:
    settings = FrontierSettings(per_host_limit=5, backoff_base=0.05, backoff_max=30.0,
                                max_attempts=20)  # fmt: skip
    frontier = await backend.open(settings)
    await frontier.add(["http://flaky.test/1", "http://flaky.test/2"])
    one, two = await frontier.lease(2, "w")
    for _ in range(4):  # a streak: the host waits 0.05, 0.1, 0.2, 0.4 s
        await frontier.retry(one, None, "HTTP 503", status=503)
        (one,) = await _lease_one(frontier)
    await frontier.ack(two)  # a success: the next 503 starts again from backoff_base
    await frontier.retry(one, None, "HTTP 503", status=503)
    (again,) = await _lease_one(frontier)
    gap = start_of(again, settings) - start_of(one, settings)
    # without the reset the host would wait 0.8 s; with it, 0.05 s (plus this test's pace)
    assert 0.05 - 0.002 <= gap < 0.8, gap


async def _lease_one(frontier) -> list[Task]:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 20
    while not (tasks := await frontier.lease(1, "w")):
        assert loop.time() < give_up, "no task came back"
        await asyncio.sleep(0.01)
    return tasks


async def test_settles_of_one_batch_act_on_their_host_in_order(backend: Backend) -> None:
    settings = FrontierSettings(per_host_limit=2, backoff_base=0.2, backoff_max=30.0,
                                max_attempts=20)  # fmt: skip
    frontier = await backend.open(settings)
    await frontier.add(["http://mixed.test/1", "http://mixed.test/2"])
    one, two = await frontier.lease(2, "w")
    # Submitted together, so they go out as one group commit: a success, then a 503.
    await asyncio.gather(frontier.ack(one), frontier.retry(two, None, "HTTP 503", status=503))
    (two,) = await _lease_one(frontier)  # both slots came back, after the host's 0.2 s wait
    await frontier.retry(two, None, "HTTP 503", status=503)
    (again,) = await _lease_one(frontier)
    gap = start_of(again, settings) - start_of(two, settings)
    # The success came before the 503, so it did not end the streak: 0.4 s, not 0.2 s.
    assert gap >= 0.4 - 0.002, gap
