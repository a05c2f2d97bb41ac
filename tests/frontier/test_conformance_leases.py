"""The Frontier contract, part 3: leases, renewals, retries, expiry, dead tasks."""

from __future__ import annotations

import asyncio

import pytest

from crawler.frontier import Ack, FinalState, FrontierSettings, Task

from .conftest import Backend

SHORT = FrontierSettings(per_host_limit=100, lease_seconds=0.3, max_attempts=3)


async def wait_past(deadline_tasks: list[Task], extra: float = 0.05) -> None:
    """Sleep until every given lease deadline has passed (by this machine's clock)."""
    import time

    latest = max(t.deadline for t in deadline_tasks)
    await asyncio.sleep(max(0.0, latest - time.time()) + extra)


async def test_a_live_lease_is_never_handed_out_twice(backend: Backend) -> None:
    workers = [await backend.open(SHORT.replace(lease_seconds=30)) for _ in range(3)]
    await workers[0].add([f"http://h{i % 5}.test/{i}" for i in range(40)])
    seen: list[str] = []
    for round_ in range(5):
        for w in workers:
            seen.extend(t.id for t in await w.lease(3 + round_, "w"))
    assert len(seen) == len(set(seen)) == 40


async def test_expired_lease_returns_with_one_more_attempt(backend: Backend) -> None:
    frontier = await backend.open(SHORT)
    await frontier.add(["http://a.test/1"])
    (task,) = await frontier.lease(1, "dies")
    assert await frontier.lease(1, "other") == []
    await wait_past([task])
    (again,) = await frontier.lease(1, "other")
    assert (again.id, again.attempts) == (task.id, 1)
    assert (await frontier.stats()).expired == 1


async def test_ack_after_the_lease_was_reclaimed_changes_nothing(backend: Backend) -> None:
    slow = await backend.open(SHORT)
    fast = await backend.open(SHORT)
    await slow.add(["http://a.test/1"])
    (task,) = await slow.lease(1, "slow")
    await wait_past([task])
    (again,) = await fast.lease(1, "fast")
    assert not await slow.ack(task), "the slow worker's lease is gone"
    assert not await slow.retry(task, 0, "late")
    assert await fast.ack(again)
    stats = await fast.stats()
    assert (stats.done, stats.queued, stats.leased, stats.retried) == (1, 0, 0, 0)


async def test_renew_keeps_a_long_download_leased(backend: Backend) -> None:
    frontier = await backend.open(SHORT)
    other = await backend.open(SHORT)
    await frontier.add(["http://a.test/big", "http://a.test/small"])
    big, small = await frontier.lease(2, "w")
    for _ in range(4):  # 4 x 0.15 s: twice the lease duration
        await asyncio.sleep(0.15)
        assert await frontier.renew([big]) == {big.id}
    stolen = {t.id for t in await other.lease(10, "thief")}
    assert stolen == {small.id}, "the unrenewed lease expired, the renewed one did not"
    assert big.deadline > small.deadline
    assert await frontier.ack(big)


async def test_renew_reports_leases_that_are_gone(backend: Backend) -> None:
    frontier = await backend.open(SHORT)
    await frontier.add(["http://a.test/1", "http://a.test/2"])
    one, two = await frontier.lease(2, "w")
    await frontier.ack(one)
    assert await frontier.renew([one.id, two.id]) == {two.id}
    assert await frontier.renew([]) == set()
    with pytest.raises(ValueError, match="task id"):
        await frontier.renew(["not-a-task-id"])


async def test_retry_waits_its_delay_without_holding_the_host(backend: Backend) -> None:
    frontier = await backend.open(FrontierSettings(per_host_limit=100))
    await frontier.add(["http://a.test/flaky", "http://a.test/fine"])
    flaky, fine = await frontier.lease(2, "w")
    await frontier.release([fine])
    assert await frontier.retry(flaky, 0.4, "connection reset")
    (first,) = await frontier.lease(10, "w")  # the host is free, only `flaky` waits
    assert first.id == fine.id
    assert await frontier.lease(10, "w") == []
    await asyncio.sleep(0.45)
    (back,) = await frontier.lease(10, "w")
    assert (back.id, back.attempts) == (flaky.id, 1)


async def test_after_max_attempts_a_task_is_dead_with_its_last_reason(backend: Backend) -> None:
    frontier = await backend.open(FrontierSettings(per_host_limit=100, max_attempts=3))
    await frontier.add(["http://a.test/broken"])
    for attempt in range(3):
        (task,) = await frontier.lease(1, "w")
        assert task.attempts == attempt
        await frontier.retry(task, 0, f"reset #{attempt}")
    assert await frontier.lease(1, "w") == []
    (record,) = await frontier.failures()
    assert (record.state, record.reason, record.attempts) == (FinalState.DEAD, "reset #2", 3)
    stats = await frontier.stats()
    assert (stats.dead, stats.retried, stats.queued) == (1, 2, 0)
    assert await frontier.is_finished()


async def test_expiry_also_counts_towards_max_attempts(backend: Backend) -> None:
    frontier = await backend.open(SHORT.replace(max_attempts=2))
    await frontier.add(["http://a.test/hangs"])
    for _ in range(2):
        (task,) = await frontier.lease(1, "w")
        await wait_past([task])
    assert await frontier.lease(1, "w") == []  # this call reclaims the second expiry
    (record,) = await frontier.failures()
    assert (record.state, record.reason) == (FinalState.DEAD, "lease expired")
    assert await frontier.is_finished()


async def test_release_hands_tasks_back_without_an_attempt(backend: Backend) -> None:
    frontier = await backend.open(FrontierSettings(per_host_limit=100))
    await frontier.add(["http://a.test/1", "http://b.test/2"])
    tasks = await frontier.lease(10, "w")
    assert await frontier.release(tasks) == 2
    again = await frontier.lease(10, "w")
    assert sorted((t.url, t.attempts) for t in again) == [("http://a.test/1", 0),
                                                          ("http://b.test/2", 0)]  # fmt: skip


async def test_recover_leases_expires_every_lease_at_once(backend: Backend) -> None:
    crashed = await backend.open(FrontierSettings(per_host_limit=100))
    await crashed.add([f"http://a.test/{i}" for i in range(4)])
    assert len(await crashed.lease(4, "crashed")) == 4
    restarted = await backend.open()
    assert await restarted.recover_leases() == 4
    again = await restarted.lease(10, "new")
    assert sorted(t.attempts for t in again) == [1, 1, 1, 1]


async def test_ack_with_links_needs_the_task_when_another_process_leased_it(
    backend: Backend,
) -> None:
    leaser = await backend.open()
    acker = await backend.open()
    await leaser.add(["http://a.test/"])
    (task,) = await leaser.lease(1, "w")
    with pytest.raises(ValueError, match="need the Task"):
        await acker.ack(task.id, links=["http://a.test/x"])
    assert await acker.ack(task, links=["http://a.test/x"])  # with the Task it works
    assert [t.url for t in await acker.lease(5, "w")] == ["http://a.test/x"]


async def test_ack_many_settles_a_batch_in_one_call(backend: Backend) -> None:
    frontier = await backend.open(FrontierSettings(per_host_limit=100))
    await frontier.add([f"http://h{i}.test/" for i in range(10)])
    tasks = await frontier.lease(10, "w")
    results = await frontier.ack_many([Ack(t, links=[t.url + "next"]) for t in tasks])
    assert results == [True] * 10
    assert len(await frontier.lease(100, "w")) == 10


async def test_renew_by_a_worker_whose_lease_was_reclaimed_extends_nothing(
    backend: Backend,
) -> None:
    slow = await backend.open(SHORT)
    fast = await backend.open(SHORT)
    await slow.add(["http://a.test/1"])
    (task,) = await slow.lease(1, "slow")
    await wait_past([task])
    (again,) = await fast.lease(1, "fast")
    assert again.attempts == 1
    assert await slow.renew([task]) == set(), "the slow worker's lease is gone"
    assert await fast.renew([again]) == {again.id}
    assert await fast.renew([again.id]) == {again.id}  # by id: its own lease, known here


async def test_the_page_budget_holds_however_many_workers_lease_at_once(
    backend: Backend,
) -> None:
    budgeted = SHORT.replace(lease_seconds=30, max_pages=10)
    workers = [await backend.open(budgeted) for _ in range(3)]
    await workers[0].add([f"http://h{i % 4}.test/{i}" for i in range(40)])
    batches = await asyncio.gather(*(w.lease(8, f"w{i}") for i, w in enumerate(workers)))
    assert sum(len(batch) for batch in batches) == 10
    holder = {task.id: w for w, batch in zip(workers, batches, strict=True) for task in batch}
    leased = [task for batch in batches for task in batch]
    # Finished URLs keep their place in the budget: acking frees nothing.
    for task in leased[:4]:
        assert await holder[task.id].ack(task)
    assert await workers[1].lease(8, "w1") == []
    # A retry hands its URL back to the queue, and with it its place.
    assert await holder[leased[5].id].retry(leased[5], 0, "503")
    (again,) = await workers[2].lease(8, "w2")
    assert await workers[0].lease(8, "w0") == []
    stats = await workers[0].stats()
    assert (stats.done, stats.leased, stats.queued) == (4, 6, 30)
    assert again.id not in {task.id for task in leased[:4]}
