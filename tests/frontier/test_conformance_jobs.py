"""The Frontier contract, part 4: a job as a whole: pause/resume, partitions, many hosts.

Every test runs on SQLite, fakeredis, redis-server and redis-server over TLS (`backend`).
SQLite ignores `partitions`; the same tests prove the partitioned Redis layout behaves as one
job (links crossing partitions, acks by id, pause, stats, finishing).
"""

from __future__ import annotations

from crawler.frontier import Ack, FrontierSettings, Link

from .conftest import Backend

FAST = FrontierSettings(per_host_limit=100)
PARTITIONED = FAST.replace(partitions=4)


async def test_a_paused_job_still_takes_acks_and_their_links(backend: Backend) -> None:
    frontier = await backend.open(FAST)
    await frontier.add(["http://a.test/1", "http://a.test/2"])
    one, two = await frontier.lease(2, "w")
    await frontier.pause()
    assert await frontier.ack(one, links=["http://a.test/found"])  # in-flight work finishes
    assert await frontier.retry(two, 0, "reset")
    assert await frontier.lease(10, "w") == []
    stats = await frontier.stats()
    assert (stats.paused, stats.queued, stats.leased, stats.done) == (True, 2, 0, 1)
    assert not await frontier.is_finished(), "a paused job with work left is not finished"
    await frontier.resume()
    assert sorted(t.url for t in await frontier.lease(10, "w")) == [
        "http://a.test/2",
        "http://a.test/found",
    ]


async def test_a_pause_is_kept_by_the_store_for_workers_that_join_later(backend: Backend) -> None:
    frontier = await backend.open(FAST)
    await frontier.add(["http://a.test/1"])
    await frontier.pause()
    await frontier.pause()  # idempotent
    await frontier.close()
    joined = await backend.open()
    assert await joined.is_paused()
    assert await joined.lease(10, "w") == []
    await joined.resume()
    await joined.resume()
    assert not await joined.is_paused()
    assert len(await joined.lease(10, "w")) == 1


async def test_pause_and_resume_cover_every_partition(backend: Backend) -> None:
    frontier = await backend.open(PARTITIONED)
    await frontier.add([f"http://h{i}.test/" for i in range(40)])
    await frontier.pause()
    other = await backend.open()
    for _ in range(4):  # each call starts at the next partition
        assert await other.lease(10, "w") == []
    await other.resume()
    leased = [t for _ in range(8) for t in await frontier.lease(10, "w")]
    assert len(leased) == 40


async def test_a_partitioned_job_is_one_job(backend: Backend) -> None:
    frontier = await backend.open(PARTITIONED)
    helper = await backend.open()
    seeds = [f"http://h{i}.test/" for i in range(20)]
    await frontier.add(seeds)
    assert (await helper.add(seeds)).duplicates == 20, "dedupe spans partitions"
    assert (await frontier.stats()).hosts_with_backlog == 20
    tasks = await frontier.lease(20, "w")
    assert len(tasks) == 20
    # links of every page go to every host: most land in other partitions than their page
    acks = [Ack(t, links=[Link(f"{s}from-{i}", i % 3) for s in seeds[:5]]) for i, t in
            enumerate(tasks[:10])]  # fmt: skip
    assert await frontier.ack_many(acks) == [True] * 10
    # acks by id, from a process that did not lease them (it must find their partition)
    assert await helper.renew([t.id for t in tasks[10:]]) == {t.id for t in tasks[10:]}
    assert all([await helper.ack(t.id) for t in tasks[10:15]])
    assert await helper.fail(tasks[15].id, "HTTP 410")
    assert await helper.retry(tasks[16].id, 0, "reset")
    assert await helper.release([t.id for t in tasks[17:]]) == 3
    stats = await frontier.stats()
    assert (stats.done, stats.failed, stats.leased) == (15, 1, 0)
    assert stats.queued == 50 + 1 + 3
    left = []
    while batch := await helper.lease(7, "w2"):
        left.extend(batch)
        await helper.ack_many([Ack(t) for t in batch])
    assert len(left) == len({t.id for t in left}) == 54
    assert await frontier.is_finished()
    assert [r.reason for r in await frontier.failures()] == ["HTTP 410"]


async def test_many_hosts_drain_exactly_once(backend: Backend) -> None:
    frontier = await backend.open(FrontierSettings(per_host_limit=2, partitions=3))
    urls = [f"http://h{i % 300}.test/{i}" for i in range(1500)]
    assert (await frontier.add(urls)).added == 1500
    seen: set[str] = set()
    while tasks := await frontier.lease(128, "w"):
        assert len({t.host for t in tasks}) * 2 >= len(tasks)  # never over 2 per host at once
        seen.update(t.url for t in tasks)
        assert all(await frontier.ack_many([Ack(t) for t in tasks]))
    assert seen == set(urls)
    stats = await frontier.stats()
    assert (stats.done, stats.queued, stats.leased, stats.hosts_with_backlog) == (1500, 0, 0, 0)


async def test_saved_settings_are_what_processes_opening_the_job_later_get(
    backend: Backend,
) -> None:
    from crawler.scope import ScopeRules

    first = FAST.replace(partitions=2, scope=ScopeRules(max_depth=0))
    frontier = await backend.open(first)
    await frontier.add(["http://a.test/"])
    # A later run with other settings: joined, it has them in memory only, until it saves them.
    wanted = FAST.replace(per_host_limit=3, partitions=8, scope=ScopeRules(max_depth=5))
    run = await backend.open(wanted)
    assert (run.settings.per_host_limit, run.settings.partitions) == (3, 2)  # job-defining kept
    assert (await backend.open()).settings.scope.max_depth == 0
    before = await run.save_settings()
    assert before == first
    joined = await backend.open()
    assert joined.settings == run.settings
    assert (joined.settings.per_host_limit, joined.settings.scope.max_depth) == (3, 5)
    assert joined.settings.partitions == 2
    # And they apply: a depth-1 link of the seed is in scope now.
    (seed,) = await joined.lease(1, "w")
    assert await joined.ack(seed, links=["http://a.test/deeper"])
    assert [t.url for t in await joined.lease(1, "w")] == ["http://a.test/deeper"]
