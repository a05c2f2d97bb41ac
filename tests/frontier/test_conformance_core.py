"""The Frontier contract, part 1: adding, leasing, acknowledging, dedupe, scope, stats.

Every test runs on SQLite, fakeredis and a real redis-server (the `backend` fixture).
"""

from __future__ import annotations

from crawler.frontier import (
    Ack,
    FinalState,
    Frontier,
    FrontierSettings,
    Link,
    Outcome,
)
from crawler.scope import ScopeRules
from crawler.urls import canonicalize, fingerprint

from .conftest import Backend

FAST = FrontierSettings(per_host_limit=100)


async def drain(frontier: Frontier, worker: str = "w") -> list[str]:
    """Lease and ack until nothing is left; the URLs in lease order."""
    urls: list[str] = []
    while tasks := await frontier.lease(50, worker):
        urls.extend(t.url for t in tasks)
        await frontier.ack_many([Ack(t) for t in tasks])
    return urls


async def test_both_backends_meet_the_protocol(backend: Backend) -> None:
    frontier = await backend.open()
    assert isinstance(frontier, Frontier)


async def test_seeds_are_leased_as_tasks_with_their_fields(backend: Backend) -> None:
    frontier = await backend.open(FAST)
    result = await frontier.add([Link("http://Example.com:80/a?x=1#top", 5, {"k": "v"})])
    assert (result.added, result.duplicates, result.rejected) == (1, 0, [])
    (task,) = await frontier.lease(10, "w1")
    assert task.url == "http://example.com/a?x=1"
    assert task.id == fingerprint("http://example.com/a?x=1").hex()
    assert (task.depth, task.priority, task.attempts, task.parent) == (0, 5, 0, None)
    assert task.meta == {"k": "v"}
    assert task.host == "example.com"
    assert task.deadline > 0


async def test_a_url_is_enqueued_once_whatever_its_spelling(backend: Backend) -> None:
    frontier = await backend.open(FAST)
    spellings = [
        "http://example.com/a/b",
        "HTTP://EXAMPLE.com/a/./c/../b",
        "http://example.com:80/a/b#frag",
        "http://example.com/%61/b",
    ]
    result = await frontier.add(spellings)
    assert (result.added, result.duplicates) == (1, 3)
    again = await frontier.add(["http://example.com/a/b"])
    assert (again.added, again.duplicates) == (0, 1)
    assert await drain(frontier) == ["http://example.com/a/b"]
    after = await frontier.add(["http://example.com/a/b"])
    assert after.added == 0, "a fetched URL must not come back"


async def test_invalid_and_non_http_seeds_are_rejected_with_a_reason(backend: Backend) -> None:
    frontier = await backend.open(FAST)
    result = await frontier.add(["ftp://example.com/f", "not a url", "http:///nohost"])
    assert result.added == 0
    assert [url for url, _ in result.rejected] == [
        "ftp://example.com/f",
        "not a url",
        "http:///nohost",
    ]
    assert all(reason for _, reason in result.rejected)
    assert (await frontier.stats()).out_of_scope == 3


async def test_ack_enqueues_new_links_one_level_deeper(backend: Backend) -> None:
    frontier = await backend.open(FAST)
    await frontier.add(["http://a.test/"])
    (page,) = await frontier.lease(10, "w")
    links = [
        "http://a.test/x", "http://a.test/x#again", "http://a.test/", Link("http://a.test/y", 7)
    ]
    assert await frontier.ack(page, Outcome.DONE, links)
    tasks = await frontier.lease(10, "w")
    assert sorted((t.url, t.depth, t.parent) for t in tasks) == [
        ("http://a.test/x", 1, "http://a.test/"),
        ("http://a.test/y", 1, "http://a.test/"),
    ]
    assert next(t for t in tasks if t.url.endswith("/y")).priority == 7
    stats = await frontier.stats()
    assert (stats.added, stats.duplicates, stats.done) == (3, 2, 1)


async def test_default_scope_is_the_seeds_hosts(backend: Backend) -> None:
    frontier = await backend.open(FAST)
    await frontier.add(["http://a.test/", "https://b.test:8443/"])
    tasks = await frontier.lease(10, "w")
    page = next(t for t in tasks if t.host == "a.test")
    links = [
        "http://a.test:8080/other-port-same-host",
        "https://b.test/same-host-other-port",
        "http://sub.a.test/subdomain",
        "http://elsewhere.test/",
        "mailto:someone@a.test",
    ]
    await frontier.ack(page, links=links)
    found = sorted(t.url for t in await frontier.lease(10, "w"))
    assert found == ["http://a.test:8080/other-port-same-host", "https://b.test/same-host-other-port"]
    assert (await frontier.stats()).out_of_scope == 3


async def test_scope_rules_domains_patterns_and_depth(backend: Backend) -> None:
    rules = ScopeRules(
        allowed_domains=("a.test",),
        include=(r"/docs/",),
        exclude=(r"\.pdf$", r"/docs/private"),
        max_depth=1,
    )
    frontier = await backend.open(FrontierSettings(per_host_limit=100, scope=rules))
    await frontier.add(["http://outside.test/start"])  # seeds are trusted
    (seed,) = await frontier.lease(10, "w")
    await frontier.ack(
        seed,
        links=[
            "http://a.test/docs/1",
            "http://deep.sub.a.test/docs/2",
            "http://a.test/docs/3.pdf",
            "http://a.test/docs/private/4",
            "http://a.test/blog/5",
            "http://nota.test/docs/6",
        ],
    )
    level1 = await frontier.lease(10, "w")
    assert sorted(t.url for t in level1) == [
        "http://a.test/docs/1",
        "http://deep.sub.a.test/docs/2",
    ]
    await frontier.ack(level1[0], links=["http://a.test/docs/too-deep"])
    assert await frontier.lease(10, "w") == []
    assert (await frontier.stats()).out_of_scope == 5


async def test_a_link_that_keeps_depth_is_as_deep_as_its_page(backend: Backend) -> None:
    # What a sitemap lists: as deep as the sitemap, so --max-depth 0 still takes it.
    rules = ScopeRules(max_depth=0)
    frontier = await backend.open(FrontierSettings(per_host_limit=100, scope=rules))
    await frontier.add(["http://a.test/sitemap.xml"])
    (sitemap,) = await frontier.lease(10, "w")
    listed = Link("http://a.test/listed", meta={"k": 1}, keeps_depth=True)
    await frontier.ack(sitemap, links=[listed, "http://a.test/linked"])
    (task,) = await frontier.lease(10, "w")
    assert (task.url, task.depth, task.meta) == ("http://a.test/listed", 0, {"k": 1})
    assert (await frontier.stats()).out_of_scope == 1  # the plain link is one level deeper


async def test_seed_hosts_added_by_another_worker_come_into_scope(backend: Backend) -> None:
    first = await backend.open(FAST)
    second = await backend.open(FAST)
    await first.add(["http://a.test/"])
    await second.add(["http://b.test/"])  # second worker, seeds of its own
    page = next(t for t in await first.lease(10, "w1") if t.host == "a.test")
    first._scope_checked = float("-inf")  # do not wait for the periodic scope refresh
    await first.ack(page, links=["http://b.test/found-on-a"])
    urls = {t.url for t in await second.lease(10, "w2")}
    assert "http://b.test/found-on-a" in urls


async def test_sort_query_option_makes_parameter_order_irrelevant(backend: Backend) -> None:
    frontier = await backend.open(FrontierSettings(per_host_limit=100, sort_query=True))
    result = await frontier.add(["http://a.test/s?b=2&a=1", "http://a.test/s?a=1&b=2"])
    assert (result.added, result.duplicates) == (1, 1)
    (task,) = await frontier.lease(10, "w")
    assert task.url == canonicalize("http://a.test/s?a=1&b=2")


async def test_higher_priority_first_then_arrival_order(backend: Backend) -> None:
    frontier = await backend.open(FrontierSettings(per_host_limit=1))
    await frontier.add(
        [
            Link("http://a.test/low-1", -5),
            Link("http://a.test/mid-1", 0),
            Link("http://a.test/high-1", 9),
            Link("http://a.test/mid-2", 0),
            Link("http://a.test/high-2", 9),
            Link("http://a.test/low-2", -5),
        ]
    )
    order = await drain(frontier)
    assert [url.rsplit("/", 1)[1] for url in order] == [
        "high-1",
        "high-2",
        "mid-1",
        "mid-2",
        "low-1",
        "low-2",
    ]


async def test_skipped_and_failed_tasks_are_listed_with_reasons(backend: Backend) -> None:
    frontier = await backend.open(FAST)
    await frontier.add(["http://a.test/robots-says-no", "http://a.test/gone", "http://a.test/ok"])
    tasks = {t.url.rsplit("/", 1)[1]: t for t in await frontier.lease(10, "w")}
    assert await frontier.ack(tasks["robots-says-no"], Outcome.SKIPPED, reason="robots.txt")
    assert await frontier.fail(tasks["gone"], "HTTP 404")
    assert await frontier.ack(tasks["ok"])
    records = {r.url: r for r in await frontier.failures()}
    assert set(records) == {"http://a.test/robots-says-no", "http://a.test/gone"}
    assert records["http://a.test/robots-says-no"].state is FinalState.SKIPPED
    assert records["http://a.test/robots-says-no"].reason == "robots.txt"
    assert records["http://a.test/gone"].state is FinalState.FAILED
    assert records["http://a.test/gone"].reason == "HTTP 404"
    stats = await frontier.stats()
    assert (stats.done, stats.skipped, stats.failed, stats.queued, stats.leased) == (1, 1, 1, 0, 0)
    assert await frontier.is_finished()


async def test_finished_only_when_no_queue_and_no_lease_holds_anything(backend: Backend) -> None:
    frontier = await backend.open(FAST)
    assert await frontier.is_finished()  # an empty job is finished
    await frontier.add(["http://a.test/1", "http://b.test/2"])
    assert not await frontier.is_finished()
    tasks = await frontier.lease(1, "w")
    assert not await frontier.is_finished()
    await frontier.ack(tasks[0])
    assert not await frontier.is_finished()
    (last,) = await frontier.lease(10, "w")
    assert not await frontier.is_finished()
    await frontier.ack(last)
    assert await frontier.is_finished()


async def test_pause_stops_leases_for_every_worker_until_resume(backend: Backend) -> None:
    one = await backend.open(FAST)
    other = await backend.open(FAST)
    await one.add(["http://a.test/1"])
    await one.pause()
    assert await other.is_paused()
    assert (await other.stats()).paused
    assert await other.lease(10, "w") == []
    assert not await other.is_finished()
    await other.resume()
    assert not await one.is_paused()
    assert [t.url for t in await one.lease(10, "w")] == ["http://a.test/1"]


async def test_group_commit_of_concurrent_acks(backend: Backend) -> None:
    import asyncio

    frontier = await backend.open(FAST)
    await frontier.add([f"http://h{i % 7}.test/{i}" for i in range(60)])
    tasks = await frontier.lease(60, "w")
    assert len(tasks) == 60
    results = await asyncio.gather(*(frontier.ack(t) for t in tasks))
    assert all(results)
    stats = await frontier.stats()
    assert (stats.done, stats.leased, stats.queued) == (60, 0, 0)


async def test_busiest_hosts_lists_backlogs(backend: Backend) -> None:
    frontier = await backend.open(FAST)
    await frontier.add([f"http://big.test/{i}" for i in range(5)] + ["http://small.test/"])
    backlog = await frontier.busiest_hosts(5)
    assert [(b.host, b.queued) for b in backlog] == [("big.test", 5), ("small.test", 1)]
    assert (await frontier.stats()).hosts_with_backlog == 2


async def test_state_survives_closing_and_reopening(backend: Backend) -> None:
    frontier = await backend.open(FAST)
    await frontier.add([f"http://a.test/{i}" for i in range(5)])
    leased = await frontier.lease(2, "w")
    await frontier.ack(leased[0], links=["http://a.test/new"])
    await frontier.close()
    reopened = await backend.open()  # no settings: join with the stored ones
    assert reopened.settings.per_host_limit == 100
    stats = await reopened.stats()
    assert (stats.queued, stats.leased, stats.done) == (4, 1, 1)
    assert (await reopened.add(["http://a.test/0"])).added == 0
    await reopened.recover_leases()  # the old worker is gone
    remaining = await drain(reopened)
    assert len(remaining) == 5
    assert await reopened.is_finished()


async def test_clear_empties_the_job(backend: Backend) -> None:
    frontier = await backend.open(FAST)
    await frontier.add(["http://a.test/1"])
    await frontier.clear()
    assert await frontier.is_finished()
    assert (await frontier.add(["http://a.test/1"])).added == 1


async def test_hooks_run_before_each_commit_that_ends_leases(backend: Backend) -> None:
    frontier = await backend.open(FAST)
    await frontier.add([f"http://a.test/{i}" for i in range(4)])
    tasks = await frontier.lease(4, "w")
    seen_done: list[int] = []
    stats_now: list[int] = []

    def hook() -> None:
        seen_done.append(len(stats_now))

    frontier.before_settling(hook)
    frontier.before_settling(hook)  # the same hook once only
    real_commit = frontier._commit

    async def commit(*args: object) -> object:
        # The hook has run for this commit before it starts.
        stats_now.append((await frontier.stats()).done)
        assert len(seen_done) == len(stats_now)
        return await real_commit(*args)  # type: ignore[arg-type]

    frontier._commit = commit  # type: ignore[method-assign]
    assert await frontier.ack(tasks[0])
    assert await frontier.retry(tasks[1], 0.0)
    assert await frontier.fail(tasks[2], "404")
    assert await frontier.release([tasks[3]]) == 1
    assert seen_done == [0, 1, 2, 3]
    assert stats_now == [0, 1, 1, 1]
    frontier._commit = real_commit  # type: ignore[method-assign]
    await frontier.add(["http://a.test/new"])  # adding ends no lease: no hook
    assert len(seen_done) == 4
