"""The Frontier contract, part 5: a URL's depth is its shortest distance from a seed found
while it waits.

A URL first found by a long path and found again by a shorter one while it is still queued
(or waiting for a retry) takes the smaller depth, and nothing else changes: priority, arrival
order, attempts, parent and meta stay those of its first finding, and the counters count the
second finding as a duplicate. Leased and finished URLs keep the depth they had. Without this,
--max-depth N never reaches pages within N of a seed whose first finding was deeper (wget's
`-r -l` had the same bug).
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from crawler.frontier import Ack, Frontier, FrontierSettings, Link, Task
from crawler.scope import ScopeRules

from .conftest import Backend

FAST = FrontierSettings(per_host_limit=100)


async def lease_urls(frontier: Frontier, n: int = 50) -> dict[str, Task]:
    return {t.url: t for t in await frontier.lease(n, "w")}


async def chain(frontier: Frontier, seed: str, steps: int) -> Task:
    """Lease `seed` and follow a chain of single links from it: the leased task `steps` links
    away (depth `steps`), found the long way."""
    await frontier.add([seed])
    (page,) = (await lease_urls(frontier)).values()
    for step in range(1, steps + 1):
        assert await frontier.ack(page, links=[f"{seed}chain{step}"])
        (page,) = (await lease_urls(frontier)).values()
        assert page.depth == step
    return page


@pytest.mark.parametrize("partitions", [1, 4])
async def test_a_queued_url_found_again_nearer_a_seed_takes_the_smaller_depth(
    backend: Backend, partitions: int
) -> None:
    # With 4 partitions the near page and the URL found again live in different ones (the
    # URL's partition is its host's, so its duplicate always meets its own row).
    frontier = await backend.open(FAST.replace(partitions=partitions))
    await frontier.add(["http://near.test/"])
    (near,) = (await lease_urls(frontier)).values()  # depth 0, held while the chain runs
    deep = await chain(frontier, "http://a.test/", 2)
    links = [Link("http://a.test/x", meta={"k": 1}), "http://a.test/after"]
    assert await frontier.ack(deep, links=links)  # x and after at depth 3, x first
    before = await frontier.stats()

    assert await frontier.ack(near, links=["http://a.test/x"])  # x again, at depth 1
    after = await frontier.stats()
    assert after.added == before.added
    assert after.duplicates == before.duplicates + 1
    assert after.queued == before.queued == 2

    tasks = await frontier.lease(10, "w")
    assert [t.url for t in tasks] == ["http://a.test/x", "http://a.test/after"], "arrival order"
    x, later = tasks
    assert (x.depth, x.priority, x.attempts, x.meta) == (1, 0, 0, {"k": 1})
    assert x.parent == "http://a.test/chain2", "the first finding's parent is kept"
    assert later.depth == 3


async def test_a_deeper_or_equal_finding_changes_nothing(backend: Backend) -> None:
    frontier = await backend.open(FAST)
    await frontier.add(["http://a.test/", "http://a.test/s2"])
    seeds = await lease_urls(frontier)
    assert await frontier.ack(seeds["http://a.test/"], links=["http://a.test/x", "http://a.test/c1"])
    found = await lease_urls(frontier)
    assert await frontier.release([found["http://a.test/x"]]) == 1  # x queued, depth 1
    assert await frontier.ack(found["http://a.test/c1"], links=["http://a.test/x"])  # 2: deeper
    assert await frontier.ack(seeds["http://a.test/s2"], links=["http://a.test/x"])  # 1: equal
    (x,) = (await lease_urls(frontier)).values()
    assert (x.url, x.depth, x.parent) == ("http://a.test/x", 1, "http://a.test/")
    assert (await frontier.stats()).duplicates == 2


async def test_leased_and_finished_urls_keep_their_depth(backend: Backend) -> None:
    frontier = await backend.open(FAST)
    await frontier.add(["http://near.test/", "http://near.test/2"])
    near = await lease_urls(frontier)
    deep = await chain(frontier, "http://a.test/", 2)
    assert await frontier.ack(deep, links=["http://a.test/x"])  # depth 3
    (x,) = (await lease_urls(frontier)).values()
    assert x.depth == 3

    # Leased: the page is being fetched at depth 3 (its worker holds that Task), and it stays
    # 3 when it comes back to the queue.
    assert await frontier.ack(near["http://near.test/"], links=["http://a.test/x"])
    assert await frontier.release([x]) == 1
    (again,) = (await lease_urls(frontier)).values()
    assert (again.id, again.depth) == (x.id, 3)

    # Done: found again at depth 1, nothing comes back (re-reading its links is out of scope).
    assert await frontier.ack(again)
    before = await frontier.stats()
    assert await frontier.ack(near["http://near.test/2"], links=["http://a.test/x"])
    after = await frontier.stats()
    assert (after.added, after.duplicates) == (before.added, before.duplicates + 1)
    assert await frontier.lease(10, "w") == []
    assert await frontier.is_finished()


async def test_a_url_waiting_for_a_retry_takes_the_smaller_depth_too(backend: Backend) -> None:
    frontier = await backend.open(FAST)
    await frontier.add(["http://near.test/"])
    (near,) = (await lease_urls(frontier)).values()
    deep = await chain(frontier, "http://a.test/", 2)
    assert await frontier.ack(deep, links=["http://a.test/x"])
    (x,) = (await lease_urls(frontier)).values()
    assert await frontier.retry(x, delay=0.2, reason="HTTP 500")
    assert await frontier.ack(near, links=["http://a.test/x"])
    await asyncio.sleep(0.3)
    (again,) = (await lease_urls(frontier)).values()
    assert (again.id, again.depth, again.attempts) == (x.id, 1, 1)


async def test_one_batch_of_acks_keeps_the_smallest_depth(backend: Backend) -> None:
    frontier = await backend.open(FAST)
    await frontier.add(["http://near.test/"])
    (near,) = (await lease_urls(frontier)).values()
    deep = await chain(frontier, "http://a.test/", 3)
    # The deep page's links are admitted first, in the same commit as the near page's.
    assert await frontier.ack_many(
        [Ack(deep, links=["http://a.test/x"]), Ack(near, links=["http://a.test/x"])]
    ) == [True, True]
    (x,) = (await lease_urls(frontier)).values()
    assert (x.url, x.depth) == ("http://a.test/x", 1)
    stats = await frontier.stats()
    assert stats.duplicates == 1


async def test_max_depth_reaches_what_is_within_it_by_the_shortest_path(
    backend: Backend,
) -> None:
    # x is two links from seed a but found that way first; one link from seed b. With
    # max_depth 2, x's own links (depth 2 by the short path) must be crawled.
    rules = ScopeRules(allowed_domains=("a.test", "b.test"), max_depth=2)
    frontier = await backend.open(FrontierSettings(per_host_limit=100, scope=rules))
    await frontier.add(["http://b.test/"])
    (b,) = (await lease_urls(frontier)).values()
    deep = await chain(frontier, "http://a.test/", 1)
    assert await frontier.ack(deep, links=["http://a.test/x"])  # depth 2
    assert await frontier.ack(b, links=["http://a.test/x"])  # depth 1
    (x,) = (await lease_urls(frontier)).values()
    assert x.depth == 1
    assert await frontier.ack(x, links=["http://a.test/x-child"])
    (child,) = (await lease_urls(frontier)).values()
    assert (child.url, child.depth) == ("http://a.test/x-child", 2)
    assert (await frontier.stats()).out_of_scope == 0


async def test_a_long_url_and_a_wide_depth_are_rewritten_exactly(backend: Backend) -> None:
    # The depth is read and rewritten inside the stored body: a URL past 255 bytes (a longer
    # string header) and a depth past 255 (a wider integer) take other byte layouts.
    frontier = await backend.open(FAST)
    await frontier.add(["http://near.test/"])
    (near,) = (await lease_urls(frontier)).values()
    deep = await chain(frontier, "http://a.test/", 1)
    made_deep = dataclasses.replace(deep, depth=299)  # as if found 299 links away
    url = "http://a.test/" + "/".join(f"segment{i}" for i in range(40)) + "?q=é"
    assert await frontier.ack(made_deep, links=[Link(url, 7, {"tag": "v"})])
    assert await frontier.ack(near, links=[url])
    (x,) = (await lease_urls(frontier)).values()
    assert x.url.startswith("http://a.test/segment0/") and len(x.url) > 300
    assert (x.depth, x.priority, x.meta, x.parent) == (1, 7, {"tag": "v"}, deep.url)
