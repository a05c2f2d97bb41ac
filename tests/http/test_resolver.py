"""Resolvers and the DNS cache, against the system resolver and a real DNS server on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from crawler.http.dns_cache import HostResolver
from crawler.http.resolver import (
    AbstractResolver,
    AsyncResolver,
    DefaultResolver,
    ResolveResult,
    ThreadedResolver,
)
from tests.support.dns_server import TinyDNSServer

NAMES = {
    "shop.test": ["127.0.0.1", "::1"],
    "four.test": ["127.0.0.1"],
    "slow.test": ["127.0.0.1"],
}


@pytest.fixture
def dns() -> Iterator[TinyDNSServer]:
    with TinyDNSServer(NAMES) as server:
        yield server


@pytest.fixture
def slow_dns() -> Iterator[TinyDNSServer]:
    # Answers after a pause, so look-ups started together are surely in flight together.
    with TinyDNSServer(NAMES, delay=0.3) as server:
        yield server


@pytest.fixture
async def async_resolver(dns: TinyDNSServer) -> AsyncIterator[AsyncResolver]:
    resolver = AsyncResolver(nameservers=[dns.nameserver], timeout=2, tries=1)
    yield resolver
    await resolver.close()


@pytest.fixture
async def slow_resolver(slow_dns: TinyDNSServer) -> AsyncIterator[AsyncResolver]:
    resolver = AsyncResolver(nameservers=[slow_dns.nameserver], timeout=3, tries=1)
    yield resolver
    await resolver.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- ThreadedResolver ------------------------------------------------------------------------


def test_default_resolver_is_threaded() -> None:
    assert DefaultResolver is ThreadedResolver


async def test_threaded_resolver_resolves_localhost_to_loopback() -> None:
    results = await ThreadedResolver().resolve("localhost", 8080, family=socket.AF_INET)
    assert results
    first = results[0]
    assert first["hostname"] == "localhost"
    assert first["host"] == "127.0.0.1"
    assert first["port"] == 8080
    assert first["family"] == socket.AF_INET
    assert first["flags"] & socket.AI_NUMERICHOST


async def test_threaded_resolver_raises_oserror_for_unknown_name() -> None:
    with pytest.raises(OSError):
        await ThreadedResolver().resolve("no-such-host.invalid", 80, family=0)


# --- AsyncResolver ---------------------------------------------------------------------------


async def test_async_resolver_asks_the_given_nameserver(
    async_resolver: AsyncResolver, dns: TinyDNSServer
) -> None:
    results = await async_resolver.resolve("shop.test", 443, family=0)
    assert {r["host"] for r in results} == {"127.0.0.1", "::1"}
    assert all(r["port"] == 443 and r["hostname"] == "shop.test" for r in results)
    assert {r["family"] for r in results} == {socket.AF_INET, socket.AF_INET6}
    assert dns.queries("shop.test") >= 1


async def test_async_resolver_filters_by_family(async_resolver: AsyncResolver) -> None:
    results = await async_resolver.resolve("shop.test", 80, family=socket.AF_INET)
    assert [r["host"] for r in results] == ["127.0.0.1"]


async def test_async_resolver_raises_oserror_naming_the_host(
    async_resolver: AsyncResolver,
) -> None:
    with pytest.raises(OSError, match=r"missing\.test"):
        await async_resolver.resolve("missing.test", 80, family=0)


async def test_async_resolver_keeps_its_nameservers() -> None:
    resolver = AsyncResolver(nameservers=["127.0.0.1:5353"])
    assert resolver.nameservers == ["127.0.0.1:5353"]
    await resolver.close()


async def test_closed_async_resolver_refuses_to_resolve(async_resolver: AsyncResolver) -> None:
    await async_resolver.close()
    with pytest.raises(RuntimeError, match="closed"):
        await async_resolver.resolve("shop.test", 80)


# --- HostResolver: cache ---------------------------------------------------------------------


async def test_cache_answers_repeated_lookups_without_asking_again(
    async_resolver: AsyncResolver, dns: TinyDNSServer
) -> None:
    cache = HostResolver(async_resolver, ttl=60)
    first = await cache.resolve("four.test", 80)
    queries_after_first = dns.queries("four.test")
    second = await cache.resolve("four.test", 80)
    assert first == second
    assert cache.lookups == 1
    assert dns.queries("four.test") == queries_after_first


async def test_cache_entries_expire_after_ttl(
    async_resolver: AsyncResolver, dns: TinyDNSServer
) -> None:
    clock = FakeClock()
    cache = HostResolver(async_resolver, ttl=10, clock=clock)
    await cache.resolve("four.test", 80)
    clock.now += 9
    await cache.resolve("four.test", 80)
    assert cache.lookups == 1
    clock.now += 2
    await cache.resolve("four.test", 80)
    assert cache.lookups == 2


async def test_ttl_none_keeps_answers_until_cleared(async_resolver: AsyncResolver) -> None:
    clock = FakeClock()
    cache = HostResolver(async_resolver, ttl=None, clock=clock)
    await cache.resolve("four.test", 80)
    clock.now += 10**9
    await cache.resolve("four.test", 80)
    assert cache.lookups == 1
    cache.clear()
    await cache.resolve("four.test", 80)
    assert cache.lookups == 2


async def test_cache_is_per_host_port_and_family(async_resolver: AsyncResolver) -> None:
    cache = HostResolver(async_resolver)
    await cache.resolve("shop.test", 80)
    await cache.resolve("shop.test", 443)
    await cache.resolve("shop.test", 80, socket.AF_INET)
    assert cache.lookups == 3
    await cache.resolve("shop.test", 443)
    assert cache.lookups == 3


async def test_clear_for_one_host_keeps_the_others(async_resolver: AsyncResolver) -> None:
    cache = HostResolver(async_resolver)
    await cache.resolve("shop.test", 80)
    await cache.resolve("four.test", 80)
    cache.clear("shop.test")
    await cache.resolve("four.test", 80)
    assert cache.lookups == 2
    await cache.resolve("shop.test", 80)
    assert cache.lookups == 3


async def test_use_cache_false_asks_every_time(
    async_resolver: AsyncResolver, dns: TinyDNSServer
) -> None:
    cache = HostResolver(async_resolver, use_cache=False)
    await cache.resolve("four.test", 80)
    queries_after_first = dns.queries("four.test")
    await cache.resolve("four.test", 80)
    assert cache.lookups == 2
    assert dns.queries("four.test") > queries_after_first


async def test_failures_are_not_cached(async_resolver: AsyncResolver, dns: TinyDNSServer) -> None:
    cache = HostResolver(async_resolver)
    for _ in range(2):
        with pytest.raises(OSError):
            await cache.resolve("missing.test", 80)
    assert cache.lookups == 2


async def test_ip_literals_need_no_lookup(async_resolver: AsyncResolver) -> None:
    cache = HostResolver(async_resolver)
    v4 = await cache.resolve("127.0.0.1", 80)
    v6 = await cache.resolve("::1", 443)
    assert v4 == [
        ResolveResult(
            hostname="127.0.0.1",
            host="127.0.0.1",
            port=80,
            family=socket.AF_INET,
            proto=0,
            flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
        )
    ]
    assert v6[0]["family"] == socket.AF_INET6 and v6[0]["host"] == "::1"
    assert cache.lookups == 0


# --- HostResolver: sharing concurrent look-ups ------------------------------------------------


async def test_concurrent_lookups_of_one_host_share_one_query(
    slow_resolver: AsyncResolver, slow_dns: TinyDNSServer
) -> None:
    cache = HostResolver(slow_resolver)
    results = await asyncio.gather(*(cache.resolve("slow.test", 80) for _ in range(20)))
    assert all(r == results[0] for r in results)
    assert cache.lookups == 1
    # One getaddrinfo asks for A and AAAA at most: the 19 other callers added nothing.
    assert 1 <= slow_dns.queries("slow.test") <= 2


async def test_concurrent_failures_reach_every_waiter(slow_resolver: AsyncResolver) -> None:
    cache = HostResolver(slow_resolver)
    outcomes = await asyncio.gather(
        *(cache.resolve("missing.test", 80) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(o, OSError) for o in outcomes)
    assert cache.lookups == 1


async def test_cancelling_one_waiter_leaves_the_shared_query_running(
    slow_resolver: AsyncResolver,
) -> None:
    cache = HostResolver(slow_resolver)
    patient = asyncio.ensure_future(cache.resolve("slow.test", 80))
    impatient = asyncio.ensure_future(cache.resolve("slow.test", 80))
    await asyncio.sleep(0.05)
    impatient.cancel()
    results = await patient
    assert results[0]["host"] == "127.0.0.1"
    assert impatient.cancelled()
    assert cache.lookups == 1


class _BlockedResolver(AbstractResolver):
    """A resolver whose look-ups never finish, to watch cancellation reach the query."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = 0

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[ResolveResult]:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        return None


async def test_cancelling_the_last_waiter_cancels_the_query() -> None:
    blocked = _BlockedResolver()
    cache = HostResolver(blocked)
    waiter = asyncio.ensure_future(cache.resolve("stuck.test", 80))
    await blocked.started.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.sleep(0)
    assert blocked.cancelled == 1
    # A later caller starts a fresh query instead of inheriting the cancelled one.
    blocked.started.clear()
    again = asyncio.ensure_future(cache.resolve("stuck.test", 80))
    await blocked.started.wait()
    assert cache.lookups == 2
    await cache.close()
    with pytest.raises(asyncio.CancelledError):
        await again
    assert blocked.cancelled == 2
