"""robots.txt policy against a real local HTTP server, cached in a real frontier store.

The fetcher is what a worker passes: a coroutine on an HTTP client (aiohttp here, a test peer)
that follows redirects and returns (status, body).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import fakeredis
import msgpack
import pytest
from aiohttp import web

from crawler.frontier import (
    FinalState,
    FrontierBase,
    FrontierSettings,
    RedisFrontier,
    SqliteFrontier,
)
from crawler.robots import Robots, UntrustedOrigin
from tests.support.ports import free_port

AGENT = "crawl/0.1 (+https://example.invalid/bot)"
RULES = b"User-agent: crawl\nDisallow: /private\nCrawl-delay: 30\n\nUser-agent: *\nDisallow: /\n"


@dataclass
class RobotsSite:
    """A local site whose /robots.txt answer each test sets; counts robots.txt requests."""

    port: int
    status: int = 200
    body: bytes = RULES
    pause: float = 0.0
    hits: int = 0
    runner: web.AppRunner | None = None
    seen_agents: list[str] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        self.seen_agents.append(request.headers.get("User-Agent", ""))
        if self.pause:
            await asyncio.sleep(self.pause)
        return web.Response(status=self.status, body=self.body)


@pytest.fixture
async def site() -> AsyncIterator[RobotsSite]:
    made = RobotsSite(free_port())
    app = web.Application()
    app.router.add_get("/robots.txt", made.handle)
    made.runner = web.AppRunner(app)
    await made.runner.setup()
    await web.TCPSite(made.runner, "127.0.0.1", made.port).start()
    try:
        yield made
    finally:
        await made.runner.cleanup()


@pytest.fixture
async def fetcher() -> AsyncIterator[object]:
    async with aiohttp.ClientSession(headers={"User-Agent": AGENT}) as session:

        async def fetch(url: str) -> tuple[int, bytes]:
            async with session.get(url) as response:
                return response.status, await response.read()

        yield fetch


@pytest.fixture(params=["sqlite", "fakeredis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[FrontierBase]:
    settings = FrontierSettings(per_host_limit=5, lease_seconds=30)
    if request.param == "sqlite":
        frontier: FrontierBase = await SqliteFrontier.open(tmp_path / "f.sqlite", "job", settings)
        client = None
    else:
        client = fakeredis.FakeAsyncRedis()
        frontier = await RedisFrontier.open(client, "job", settings)
    try:
        yield frontier
    finally:
        await frontier.close()
        if client is not None:
            await client.aclose()


async def test_rules_for_our_agent_are_honoured(site, fetcher, store) -> None:  # type: ignore[no-untyped-def]
    robots = Robots(store, fetcher, user_agent=AGENT)
    assert (await robots.check(site.url("/public"))).allowed
    denied = await robots.check(site.url("/private/page"))
    assert not denied.allowed
    assert denied.retry_in is None
    assert denied.reason == f"disallowed by http://127.0.0.1:{site.port}/robots.txt"
    other_agent = Robots(store, fetcher, user_agent="SomeoneElse")
    assert not (await other_agent.check(site.url("/public"))).allowed  # "*" disallows all


async def test_fetched_once_for_many_concurrent_checks(site, fetcher, store) -> None:  # type: ignore[no-untyped-def]
    site.pause = 0.1
    robots = Robots(store, fetcher, user_agent=AGENT)
    decisions = await asyncio.gather(*(robots.check(site.url(f"/p{i}")) for i in range(20)))
    assert all(d.allowed for d in decisions)
    assert site.hits == 1 and robots.fetches == 1


async def test_workers_share_the_cached_file_through_the_store(site, fetcher, store) -> None:  # type: ignore[no-untyped-def]
    site.pause = 0.2  # the second worker asks while the first is still fetching
    first = Robots(store, fetcher, user_agent=AGENT)
    second = Robots(store, fetcher, user_agent=AGENT)
    one, two = await asyncio.gather(
        first.check(site.url("/private/a")), second.check(site.url("/private/b"))
    )
    assert not one.allowed and not two.allowed
    assert site.hits == 1
    third = Robots(store, fetcher, user_agent=AGENT)
    assert not (await third.check(site.url("/private/c"))).allowed
    assert site.hits == 1 and third.fetches == 0


async def test_each_origin_has_its_own_robots_txt(site, fetcher, store) -> None:  # type: ignore[no-untyped-def]
    robots = Robots(store, fetcher, user_agent=AGENT)
    await robots.check(site.url("/a"))
    await robots.check(site.url("/a", host="localhost"))
    assert site.hits == 2


async def test_crawl_delay_becomes_the_hosts_delay_in_the_frontier(site, fetcher, store) -> None:  # type: ignore[no-untyped-def]
    robots = Robots(store, fetcher, user_agent=AGENT)
    await store.add([site.url(f"/page{i}") for i in range(3)])
    decision = await robots.check(site.url("/page0"))  # Crawl-delay: 30 (capped at 60)
    assert decision.allowed and decision.delay == 30
    # The robots.txt was a request: the host waits 30 s from then, also for its first page.
    assert await store.lease(10, "w") == []


@pytest.mark.parametrize("status", [404, 410, 401, 403])
async def test_missing_or_forbidden_robots_txt_allows_everything(  # type: ignore[no-untyped-def]
    site, fetcher, store, status: int
) -> None:
    site.status = status
    robots = Robots(store, fetcher, user_agent=AGENT)
    assert (await robots.check(site.url("/private/anything"))).allowed


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_server_errors_make_the_origin_wait_and_are_retried(  # type: ignore[no-untyped-def]
    site, fetcher, store, status: int
) -> None:
    site.status = status
    robots = Robots(store, fetcher, user_agent=AGENT, unreachable_ttl=0.2)
    decision = await robots.check(site.url("/public"))
    assert not decision.allowed
    assert decision.retry_in == 0.2
    assert "unreachable" in decision.reason
    assert f"(HTTP {status})" in decision.reason  # what the fetch got, for the URL's record
    site.status = 200
    await asyncio.sleep(0.25)
    assert (await robots.check(site.url("/public"))).allowed
    assert site.hits == 2


async def test_connection_refused_counts_as_unreachable(fetcher, store) -> None:  # type: ignore[no-untyped-def]
    robots = Robots(store, fetcher, user_agent=AGENT)
    port = free_port()
    decision = await robots.check(f"http://127.0.0.1:{port}/x")
    assert not decision.allowed and decision.retry_in is not None
    # The error itself is in the reason: a user reading the record sees why nothing was fetched.
    expected = f"http://127.0.0.1:{port}/robots.txt unreachable (ClientConnectorError"
    assert decision.reason.startswith(expected)
    # Another process reads the shared entry, reason included.
    other = Robots(store, fetcher, user_agent=AGENT)
    assert (await other.check(f"http://127.0.0.1:{port}/y")).reason == decision.reason
    assert other.fetches == 0


async def test_network_errors_are_retried_sooner_and_sooner_less_often(  # type: ignore[no-untyped-def]
    site, fetcher, store
) -> None:
    """A host that cannot be reached waits network_retry, then twice that after each further
    failure in a row, up to unreachable_ttl; an answer ends the streak. Another process that
    reads the shared entry holds the same wait and goes on doubling from it."""
    down = True

    async def fetch(url: str) -> tuple[int, bytes]:
        if down:
            raise ConnectionRefusedError(111, "Connection refused")
        return await fetcher(url)

    def make() -> Robots:
        return Robots(
            store, fetch, user_agent=AGENT, network_retry=0.1, unreachable_ttl=0.3, ttl=0.3
        )

    robots, other = make(), make()
    waits = []
    for _ in range(4):
        decision = await robots.check(site.url("/public"))
        assert not decision.allowed and "(ConnectionRefusedError: " in decision.reason
        waits.append(decision.retry_in)
        assert (await other.check(site.url("/public"))).retry_in == decision.retry_in
        await asyncio.sleep(decision.retry_in + 0.02)
    assert waits == [0.1, 0.2, 0.3, 0.3]
    assert robots.fetches + other.fetches == 4
    # The other process fetches next, and doubles on from the streak it read.
    decision = await other.check(site.url("/x"))
    assert other.fetches >= 1 and decision.retry_in == 0.3
    # Up again: the rules are read, and once they expire a new failure starts from the start.
    await asyncio.sleep(0.32)
    down = False
    assert (await robots.check(site.url("/public"))).allowed
    await asyncio.sleep(0.32)
    down = True
    assert (await robots.check(site.url("/public"))).retry_in == 0.1


async def test_server_errors_do_not_shorten_the_wait(site, fetcher, store) -> None:  # type: ignore[no-untyped-def]
    site.status = 503
    robots = Robots(store, fetcher, user_agent=AGENT, network_retry=0.01, unreachable_ttl=0.1)
    for _ in range(2):
        decision = await robots.check(site.url("/public"))
        assert decision.retry_in == 0.1
        await asyncio.sleep(0.12)
    assert site.hits == 2


async def test_an_untrusted_origin_gets_no_rules_until_the_unreachable_ttl(  # type: ignore[no-untyped-def]
    site, fetcher, store
) -> None:
    # The worker's fetcher raises UntrustedOrigin when the certificate does not verify: the
    # pages would fail the same way, so they go ahead (and fail with the real cause) rather
    # than wait for a robots.txt that cannot come.
    untrusted = True

    async def fetch(url: str) -> tuple[int, bytes]:
        if untrusted:
            raise UntrustedOrigin("certificate verify failed")
        return await fetcher(url)

    robots = Robots(store, fetch, user_agent=AGENT, unreachable_ttl=0.2)
    decision = await robots.check(site.url("/private/page"))
    assert decision.allowed and decision.retry_in is None
    # Not for a day, as a 404 would be: fixed (or --insecure), the real rules apply soon.
    untrusted = False
    await asyncio.sleep(0.25)
    assert not (await robots.check(site.url("/private/page"))).allowed
    assert site.hits == 1


async def test_an_unreachable_entry_of_an_older_writer_still_reads(fetcher, store) -> None:  # type: ignore[no-untyped-def]
    origin = f"http://127.0.0.1:{free_port()}"
    old_entry = {"k": "unreachable", "b": b"", "at": time.time(), "ttl": 60.0}  # no "why"
    await store.robots_put(origin, msgpack.packb(old_entry, use_bin_type=True), 60.0)
    robots = Robots(store, fetcher, user_agent=AGENT)
    decision = await robots.check(f"{origin}/x")
    assert decision.reason == f"{origin}/robots.txt unreachable"
    assert decision.retry_in is not None and robots.fetches == 0


async def test_cached_rules_expire(site, fetcher, store) -> None:  # type: ignore[no-untyped-def]
    robots = Robots(store, fetcher, user_agent=AGENT, ttl=0.2)
    assert not (await robots.check(site.url("/private"))).allowed
    site.body = b"User-agent: *\nAllow: /\n"
    await asyncio.sleep(0.25)
    assert (await robots.check(site.url("/private"))).allowed
    assert site.hits == 2


async def test_only_the_first_512_kib_are_read(site, fetcher, store) -> None:  # type: ignore[no-untyped-def]
    filler = b"# padding\n" * (600 * 1024 // 10)
    site.body = b"User-agent: *\nDisallow: /early\n" + filler + b"Disallow: /late\n"
    robots = Robots(store, fetcher, user_agent=AGENT)
    assert not (await robots.check(site.url("/early"))).allowed
    assert (await robots.check(site.url("/late"))).allowed


async def test_turned_off_it_fetches_nothing_and_allows_all(site, fetcher, store) -> None:  # type: ignore[no-untyped-def]
    robots = Robots(store, fetcher, user_agent=AGENT, enabled=False)
    assert (await robots.check(site.url("/private"))).allowed
    assert site.hits == 0


async def test_screen_skips_disallowed_tasks_with_their_reason(site, fetcher, store) -> None:  # type: ignore[no-untyped-def]
    robots = Robots(store, fetcher, user_agent=AGENT)
    await store.add([site.url("/private/x"), site.url("/ok"), site.url("/private/y")])
    tasks = await store.lease(3, "w")
    assert len(tasks) == 3
    allowed = await robots.screen(store, tasks)
    assert [t.url for t in allowed] == [site.url("/ok")]
    records = await store.failures()
    assert sorted(r.url for r in records) == [site.url("/private/x"), site.url("/private/y")]
    assert all(r.state is FinalState.SKIPPED and "robots.txt" in r.reason for r in records)
    assert (await store.stats()).skipped == 2


async def test_screen_puts_tasks_of_an_unreachable_origin_back(site, fetcher, store) -> None:  # type: ignore[no-untyped-def]
    site.status = 503
    robots = Robots(store, fetcher, user_agent=AGENT, unreachable_ttl=0.2)
    await store.add([site.url("/a")])
    tasks = await store.lease(1, "w")
    assert await robots.screen(store, tasks) == []
    assert await store.lease(1, "w") == []  # waiting out the delay
    await asyncio.sleep(0.25)
    (again,) = await store.lease(1, "w")
    assert again.attempts == 1


async def test_an_invalid_url_is_not_allowed(fetcher, store) -> None:  # type: ignore[no-untyped-def]
    robots = Robots(store, fetcher, user_agent=AGENT)
    decision = await robots.check("mailto:x@y.z")
    assert not decision.allowed and "invalid URL" in decision.reason


async def test_a_rule_cut_by_the_size_limit_is_dropped_not_shortened(  # type: ignore[no-untyped-def]
    site, fetcher, store
) -> None:
    from crawler.robots import MAX_ROBOTS_BYTES

    head = b"User-agent: *\nDisallow: /\n"
    rule = b"Allow: /public/\n"
    filler = b"#" * (MAX_ROBOTS_BYTES - len(head) - len(b"Allow: /") - 1) + b"\n"
    site.body = head + filler + rule  # the limit falls after "Allow: /", inside the rule
    assert len(head + filler) < MAX_ROBOTS_BYTES < len(site.body)
    robots = Robots(store, fetcher, user_agent=AGENT)
    # Cut to "Allow", the rule would have read "Allow: /" or worse; dropped, "Disallow: /" holds.
    assert not (await robots.check(site.url("/secret"))).allowed
    assert not (await robots.check(site.url("/public/page"))).allowed


async def test_the_workers_fetcher_reads_a_long_robots_txt_to_its_end(site, store) -> None:  # type: ignore[no-untyped-def]
    """One read gives what has arrived so far (about 128 KiB of a 150 KB file here), not the
    whole file: its late rules were lost."""
    from crawler.http import ClientSession
    from workers.process import robots_fetcher

    filler = b"# padding\n" * 20_000
    site.body = b"User-agent: *\nDisallow: /early\n" + filler + b"Disallow: /late\n"
    async with ClientSession() as session:
        fetch = robots_fetcher(session)
        status, body = await fetch(site.url("/robots.txt"))
        assert (status, body) == (200, site.body)
        robots = Robots(store, fetch, user_agent=AGENT)
        assert not (await robots.check(site.url("/late/page"))).allowed
