"""Remembering look-ups for a while and sharing the ones in flight.

A crawler opens many connections to few hosts at once; without this, a burst of 500 requests to
one host would send 500 identical DNS queries. `HostResolver` keeps answers per
(host, port, family) for `ttl` seconds and lets every concurrent caller wait on the one query
already under way. Failures are not cached: the next caller asks again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from crawler.http.resolver import AbstractResolver, ResolveResult

if TYPE_CHECKING:
    from crawler.http.tracing import Trace

__all__ = ["HostResolver"]

_CacheKey = tuple[str, int, int]
_NUMERIC_FLAGS = int(socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)


@dataclass(slots=True)
class _Lookup:
    """One query in flight and how many callers wait on it."""

    task: asyncio.Task[list[ResolveResult]]
    waiters: int = field(default=0)


def _literal_address(host: str, port: int) -> list[ResolveResult] | None:
    """An IP address needs no look-up: answer it directly (None for a name)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    family = int(socket.AF_INET6 if address.version == 6 else socket.AF_INET)
    return [
        ResolveResult(
            hostname=host, host=host, port=port, family=family, proto=0, flags=_NUMERIC_FLAGS
        )
    ]


class HostResolver:
    """A TTL cache and query coalescing in front of an `AbstractResolver`.

    `ttl=None` keeps answers until `clear()`; `use_cache=False` asks the resolver every time
    (concurrent identical look-ups still share one query). `lookups` counts the queries that
    really went to the resolver, so tests and stats can see the cache work. `clock` (seconds,
    monotonic) decides expiry.

    `traces` (a request's) are told what aiohttp's connector tells them: nothing for an IP
    address; `dns_cache_hit` for a cached answer or a query already in flight; else
    `dns_cache_miss` and `dns_resolvehost_start`/`_end` around the query (only
    `dns_resolvehost_start`/`_end`, by every caller, with `use_cache=False`).
    """

    def __init__(
        self,
        resolver: AbstractResolver,
        *,
        use_cache: bool = True,
        ttl: float | None = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resolver = resolver
        self._clock = clock
        self.use_cache = use_cache
        self.ttl = ttl
        self.lookups = 0
        self._cache: dict[_CacheKey, tuple[list[ResolveResult], float | None]] = {}
        self._in_flight: dict[_CacheKey, _Lookup] = {}

    async def resolve(
        self, host: str, port: int, family: int = 0, traces: Sequence[Trace] | None = None
    ) -> list[ResolveResult]:
        """Addresses for host:port; raises `OSError` (from the resolver) when there are none."""
        literal = _literal_address(host, port)
        if literal is not None:
            return literal
        key = (host, port, family)
        if self.use_cache:
            cached = self._cached(key)
            if cached is not None:
                if traces:
                    for trace in traces:
                        await trace.send_dns_cache_hit(host)
                return cached
        elif traces:
            for trace in traces:
                await trace.send_dns_resolvehost_start(host)
        lookup = self._in_flight.get(key)
        joined = lookup is not None
        if lookup is None:
            # The query tells the cache's signals to the traces of the request that started it.
            query = self._query(key, traces if self.use_cache else None)
            lookup = _Lookup(asyncio.ensure_future(query))
            self._in_flight[key] = lookup
            lookup.task.add_done_callback(lambda _task, k=key, mine=lookup: self._forget(k, mine))
        lookup.waiters += 1
        try:
            if joined and traces and self.use_cache:
                # Sharing another request's query counts as a hit, as in aiohttp.
                for trace in traces:
                    await trace.send_dns_cache_hit(host)
            # shield: one caller's cancellation must not cancel the query the others wait on.
            results = list(await asyncio.shield(lookup.task))
        except asyncio.CancelledError:
            if lookup.waiters == 1 and not lookup.task.done():
                # Nobody else wants the answer; a caller arriving later starts a fresh query.
                self._forget(key, lookup)
                lookup.task.cancel()
            raise
        finally:
            lookup.waiters -= 1
        if traces and not self.use_cache:
            for trace in traces:
                await trace.send_dns_resolvehost_end(host)
        return results

    def clear(self, host: str | None = None, port: int | None = None) -> None:
        """Forget cached answers: all of them, or those for `host` (and `port` when given)."""
        if host is None:
            self._cache.clear()
            return
        for key in [k for k in self._cache if k[0] == host and (port is None or k[1] == port)]:
            del self._cache[key]

    async def close(self) -> None:
        """Cancel queries still in flight. The wrapped resolver is closed by its owner."""
        tasks = [lookup.task for lookup in self._in_flight.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._in_flight.clear()

    def _cached(self, key: _CacheKey) -> list[ResolveResult] | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        results, expires_at = entry
        if expires_at is not None and self._clock() >= expires_at:
            del self._cache[key]
            return None
        return list(results)

    async def _query(
        self, key: _CacheKey, traces: Sequence[Trace] | None = None
    ) -> list[ResolveResult]:
        host, port, family = key
        self.lookups += 1
        if traces:
            for trace in traces:
                await trace.send_dns_cache_miss(host)
            for trace in traces:
                await trace.send_dns_resolvehost_start(host)
        results = await self.resolver.resolve(host, port, family=family)
        if traces:
            for trace in traces:
                await trace.send_dns_resolvehost_end(host)
        if self.use_cache and (self.ttl is None or self.ttl > 0):
            expires_at = None if self.ttl is None else self._clock() + self.ttl
            self._cache[key] = (results, expires_at)
        return results

    def _forget(self, key: _CacheKey, lookup: _Lookup) -> None:
        if self._in_flight.get(key) is lookup:
            del self._in_flight[key]
