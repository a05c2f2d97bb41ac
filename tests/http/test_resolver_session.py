"""The guide's "Resolving using custom nameservers", end to end with a DNS server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from crawler.http import ClientConnectorDNSError, ClientSession, TCPConnector
from crawler.http.resolver import AsyncResolver
from tests.support.dns_server import TinyDNSServer
from tests.support.origin_server import OriginServer

NAMES = {"shop.test": ["127.0.0.1"], "dual.test": ["::1", "127.0.0.1"]}


@pytest.fixture
def dns() -> Iterator[TinyDNSServer]:
    # A short pause per answer, so requests started together are surely looking up together.
    with TinyDNSServer(NAMES, delay=0.2) as server:
        yield server


@pytest.fixture
async def resolver(dns: TinyDNSServer) -> AsyncIterator[AsyncResolver]:
    resolver = AsyncResolver(nameservers=[dns.nameserver], timeout=3, tries=1)
    yield resolver
    await resolver.close()


@pytest.fixture
async def origin() -> AsyncIterator[OriginServer]:
    async with OriginServer() as server:
        yield server


async def fetch(session: ClientSession, url: str) -> dict:
    async with session.get(url) as response:
        assert response.status == 200
        return await response.json()


async def test_async_resolver_resolves_through_the_given_nameserver(
    resolver: AsyncResolver, dns: TinyDNSServer, origin: OriginServer
) -> None:
    async with ClientSession(connector=TCPConnector(resolver=resolver)) as session:
        body = await fetch(session, f"http://shop.test:{origin.port}/named")
    assert body["target"] == "/named"
    assert origin.requests[0].header("Host") == f"shop.test:{origin.port}"
    assert dns.queries("shop.test") >= 1


async def test_unknown_name_is_a_dns_error_naming_the_host(resolver: AsyncResolver) -> None:
    async with ClientSession(connector=TCPConnector(resolver=resolver)) as session:
        with pytest.raises(ClientConnectorDNSError) as caught:
            await session.get("http://nowhere.test/")
    assert caught.value.host == "nowhere.test"
    assert "nowhere.test" in str(caught.value)


async def test_answers_are_cached_for_ttl_dns_cache(
    resolver: AsyncResolver, dns: TinyDNSServer, origin: OriginServer
) -> None:
    # force_close: every request opens a new connection and so needs an address again.
    connector = TCPConnector(resolver=resolver, ttl_dns_cache=300, force_close=True)
    async with ClientSession(connector=connector) as session:
        await fetch(session, f"http://shop.test:{origin.port}/1")
        after_first = dns.queries("shop.test")
        await fetch(session, f"http://shop.test:{origin.port}/2")
    assert dns.queries("shop.test") == after_first
    assert len(origin.requests) == 2


async def test_cached_answers_expire_after_ttl_dns_cache(
    resolver: AsyncResolver, dns: TinyDNSServer, origin: OriginServer
) -> None:
    connector = TCPConnector(resolver=resolver, ttl_dns_cache=2, force_close=True)
    async with ClientSession(connector=connector) as session:
        await fetch(session, f"http://shop.test:{origin.port}/1")
        after_first = dns.queries("shop.test")
        await fetch(session, f"http://shop.test:{origin.port}/2")
        assert dns.queries("shop.test") == after_first  # still cached
        await asyncio.sleep(2.1)
        await fetch(session, f"http://shop.test:{origin.port}/3")
    assert dns.queries("shop.test") > after_first  # expired: asked again


async def test_without_the_cache_every_connection_asks(
    resolver: AsyncResolver, dns: TinyDNSServer, origin: OriginServer
) -> None:
    connector = TCPConnector(resolver=resolver, use_dns_cache=False, force_close=True)
    async with ClientSession(connector=connector) as session:
        await fetch(session, f"http://shop.test:{origin.port}/1")
        after_first = dns.queries("shop.test")
        await fetch(session, f"http://shop.test:{origin.port}/2")
    assert dns.queries("shop.test") > after_first


async def test_concurrent_requests_share_one_lookup(
    resolver: AsyncResolver, dns: TinyDNSServer, origin: OriginServer
) -> None:
    async with ClientSession(connector=TCPConnector(resolver=resolver)) as session:
        bodies = await asyncio.gather(
            *(fetch(session, f"http://shop.test:{origin.port}/{i}") for i in range(10))
        )
    assert len(bodies) == 10
    # One getaddrinfo is an A and an AAAA query at most; ten unshared ones would be 10 or 20.
    assert 1 <= dns.queries("shop.test") <= 2


async def test_falls_back_from_ipv6_to_ipv4(resolver: AsyncResolver, origin: OriginServer) -> None:
    # The origin listens on 127.0.0.1 only; ::1 refuses and the IPv4 address is used.
    async with ClientSession(connector=TCPConnector(resolver=resolver)) as session:
        body = await fetch(session, f"http://dual.test:{origin.port}/dual")
    assert body["target"] == "/dual"
