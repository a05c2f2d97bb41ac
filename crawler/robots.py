"""robots.txt: fetched once per origin, shared by every worker, honoured for our user agent.

The fetch itself belongs to the caller: `Robots` takes an async ``fetcher(url) -> (status,
body)`` (the worker builds one on our HTTP client, following redirects), so this module does
no network I/O of its own and is tested with any coroutine. Parsing is `protego`'s.

Sharing: a fetched robots.txt is cached in the frontier's store (`robots_put`) with an expiry,
so all processes and machines of a job see it; one caller per origin wins a short claim
(`robots_claim`) and fetches, the others wait for its entry. Each process also keeps parsed
rules in memory until they expire, and concurrent checks of one origin share one load.

Status handling follows RFC 9309: 2xx is parsed; other 4xx and unresolved redirects mean "no
rules" (allow all); 429, 5xx and network errors mean "unreachable": every URL of the origin
waits (`retry_in`, an attempt of its own) and the fetch is tried again once the entry expires.
A server that answers 429 or 5xx is given `unreachable_ttl` to recover. A network error (refused,
reset, no such host, timed out) is tried again sooner, after `network_retry` seconds, doubling
with each further failure in a row up to `unreachable_ttl`: it usually means the host is down
or misspelled, and its pages, were they fetched, would be retried on a schedule that short, so
a crawl of a dead host ends in seconds rather than minutes. A fetcher that raises
`UntrustedOrigin` (the origin's TLS certificate does not verify) gives no rules for
`unreachable_ttl` instead: the pages would fail the same way, so they are fetched and fail at
once with the real cause in their records, rather than wait for a robots.txt that cannot come.
`Crawl-delay` (or `Request-rate`) for our agent is pushed to the frontier as the host's delay.
"""

from __future__ import annotations

import asyncio
import enum
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import msgpack
from protego import Protego

from crawler.urls import InvalidURL, UrlParts, canonical_parts

if TYPE_CHECKING:
    from crawler.frontier.task import Ack, Task

__all__ = ["Fetcher", "Robots", "RobotsDecision", "RobotsStore", "UntrustedOrigin"]

Fetcher = Callable[[str], Awaitable[tuple[int, bytes]]]

MAX_ROBOTS_BYTES = 512 * 1024  # RFC 9309 asks parsers to read at least 500 KiB


class UntrustedOrigin(Exception):
    """Raised by a fetcher whose robots.txt fetch failed the way every fetch of that origin will
    fail (its certificate is not trusted): see the module's docstring."""


class RobotsStore(Protocol):
    """What `Robots` needs from the frontier (both backends provide it)."""

    async def robots_get(self, origin: str) -> bytes | None:
        """The cached entry of `origin`, if not expired."""

    async def robots_put(self, origin: str, entry: bytes, ttl: float) -> None:
        """Cache `entry` for `ttl` seconds and drop the origin's claim."""

    async def robots_claim(self, origin: str, holder: str, ttl: float) -> bool:
        """True for the one caller that should fetch now."""

    async def set_host_delay(self, host: str, seconds: float) -> None:
        """The host's own delay between request starts (Crawl-delay)."""


class SkipSink(Protocol):
    """The frontier calls `Robots.screen` makes for tasks it will not hand on."""

    async def ack_many(self, acks: Sequence[Ack]) -> list[bool]:
        """Record skipped tasks."""

    async def retry(
        self, task: Task, delay: float | None = None, reason: str = "", *, status: int | None = None
    ) -> bool:
        """Put a task back for later."""


class _Kind(enum.StrEnum):
    RULES = "rules"
    ALLOW_ALL = "allow"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class RobotsDecision:
    """May this URL be fetched? When not: why, and for an unreachable robots.txt, when to
    try again (`retry_in` seconds; None means the URL is disallowed for good)."""

    allowed: bool
    reason: str = ""
    retry_in: float | None = None
    delay: float = 0.0  # for an allowed URL: the Crawl-delay (or Request-rate) for our agent


ALLOWED = RobotsDecision(True)


@dataclass(slots=True)
class _Rules:
    kind: _Kind
    parser: Protego | None
    expires: float  # local monotonic clock
    why: str = ""  # for an unreachable robots.txt: what the fetch got (error or status)
    wait: float = 0.0  # for an unreachable robots.txt: the entry's lifetime, the URLs' wait
    network_failures: int = 0  # network errors in a row that gave this entry (0: not one)
    allowed: RobotsDecision | None = None  # the answer for allowed URLs, once worked out


class Robots:
    """robots.txt policy for one user agent, shared through a `RobotsStore`."""

    def __init__(
        self,
        store: RobotsStore,
        fetcher: Fetcher,
        *,
        user_agent: str,
        enabled: bool = True,
        ttl: float = 24 * 3600.0,
        unreachable_ttl: float = 60.0,
        network_retry: float = 1.0,
        claim_ttl: float = 30.0,
        fetch_timeout: float = 30.0,
    ) -> None:
        self.store = store
        self.fetcher = fetcher
        self.user_agent = user_agent
        self.enabled = enabled
        self.ttl = ttl
        self.unreachable_ttl = unreachable_ttl
        self.network_retry = network_retry
        self.claim_ttl = claim_ttl
        self.fetch_timeout = fetch_timeout
        self.fetches = 0  # robots.txt fetches this instance made (for tests and stats)
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._cache: dict[str, _Rules] = {}
        self._loading: dict[str, asyncio.Task[_Rules]] = {}

    async def check(self, url: str) -> RobotsDecision:
        """The decision for one URL (loading the origin's rules when needed)."""
        if not self.enabled:
            return ALLOWED
        try:
            parts = canonical_parts(url)
        except InvalidURL as exc:
            return RobotsDecision(False, f"invalid URL: {exc}")
        if parts.url == f"{parts.origin}/robots.txt":
            return ALLOWED  # the file itself is always allowed (RFC 9309 2.2.2), for --sitemaps
        rules = await self._rules(parts)
        if rules.kind is _Kind.ALLOW_ALL:
            return ALLOWED
        if rules.kind is _Kind.UNREACHABLE:
            why = f" ({rules.why})" if rules.why else ""
            return RobotsDecision(
                False, f"{parts.origin}/robots.txt unreachable{why}", retry_in=rules.wait
            )
        if rules.parser is None:
            return ALLOWED
        if rules.parser.can_fetch(parts.url, self.user_agent):
            if rules.allowed is None:
                delay = _crawl_delay(rules.parser, self.user_agent)
                rules.allowed = RobotsDecision(True, delay=delay) if delay else ALLOWED
            return rules.allowed
        return RobotsDecision(False, f"disallowed by {parts.origin}/robots.txt")

    async def screen(self, frontier: SkipSink, tasks: Sequence[Task]) -> list[Task]:
        """Tasks that may be fetched. Disallowed ones are acked as skipped with the reason,
        those of an unreachable robots.txt are put back to wait (the frontier's retry)."""
        if not self.enabled or not tasks:
            return list(tasks)
        from crawler.frontier.task import Ack, Outcome

        decisions = await asyncio.gather(*(self.check(task.url) for task in tasks))
        allowed: list[Task] = []
        skipped: list[Ack] = []
        for task, decision in zip(tasks, decisions, strict=True):
            if decision.allowed:
                allowed.append(task)
            elif decision.retry_in is not None:
                await frontier.retry(task, decision.retry_in, decision.reason)
            else:
                skipped.append(Ack(task, Outcome.SKIPPED, reason=decision.reason))
        if skipped:
            await frontier.ack_many(skipped)
        return allowed

    async def _rules(self, parts: UrlParts) -> _Rules:
        origin = parts.origin
        cached = self._cache.get(origin)
        if cached is not None and cached.expires > time.monotonic():
            return cached
        loading = self._loading.get(origin)
        if loading is None:
            loading = asyncio.ensure_future(self._load(parts))
            self._loading[origin] = loading
            loading.add_done_callback(lambda _: self._loading.pop(origin, None))
        # shield: one caller being cancelled must not cancel the load the others wait on
        return await asyncio.shield(loading)

    async def _load(self, parts: UrlParts) -> _Rules:
        origin = parts.origin
        delay = 0.05
        while True:
            entry = await self.store.robots_get(origin)
            if entry is not None:
                rules = _rules_from_entry(entry)
                break
            if await self.store.robots_claim(origin, self._holder, self.claim_ttl):
                rules = await self._fetch(parts)
                break
            # another worker is fetching it: wait for its entry (its claim expires if it dies)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        self._cache[origin] = rules
        return rules

    async def _fetch(self, parts: UrlParts) -> _Rules:
        origin = parts.origin
        self.fetches += 1
        untrusted = network_error = False
        try:
            status, body = await asyncio.wait_for(
                self.fetcher(f"{origin}/robots.txt"), self.fetch_timeout
            )
        except asyncio.CancelledError:
            raise
        except UntrustedOrigin:
            untrusted, status, body, why = True, 0, b"", ""
        except Exception as exc:  # any failure to fetch is "unreachable" (RFC 9309 2.3.1.4)
            status, body, network_error = 0, b"", True
            # Kept with the entry: the records of the URLs it holds back say why.
            why = _one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        else:
            why = f"HTTP {status}"
        ttl = self.ttl
        if untrusted:
            # Only until the certificate may have been fixed (or --insecure given) and the
            # real robots.txt can be read.
            kind, ttl = _Kind.ALLOW_ALL, self.unreachable_ttl
        elif 200 <= status < 300:
            kind = _Kind.RULES
        elif 300 <= status < 500 and status != 429:
            kind, body = _Kind.ALLOW_ALL, b""
        else:
            kind, body, ttl = _Kind.UNREACHABLE, b"", self.unreachable_ttl
        failures = 0
        if network_error:
            # The previous entry (still in this process's memory once expired) says how many
            # fetches in a row failed so; each failure doubles the wait.
            previous = self._cache.get(origin)
            failures = 1 + (previous.network_failures if previous is not None else 0)
            ttl = min(self.unreachable_ttl, self.network_retry * 2 ** (failures - 1))
        if len(body) > MAX_ROBOTS_BYTES:
            # Only whole lines: a rule cut in half ("Allow: /public/" as "Allow: /") would
            # say something the file does not.
            body = body[: body.rfind(b"\n", 0, MAX_ROBOTS_BYTES + 1) + 1]
        fields = {"k": kind.value, "b": body, "at": time.time(), "ttl": ttl}
        if kind is _Kind.UNREACHABLE:
            fields["why"] = why
            if failures:
                fields["n"] = failures  # so that a process reading it goes on doubling
        entry = msgpack.packb(fields, use_bin_type=True)
        await self.store.robots_put(origin, entry, ttl)
        rules = _rules_from_entry(entry)
        if rules.parser is not None:
            delay = _crawl_delay(rules.parser, self.user_agent)
            if delay:
                await self.store.set_host_delay(parts.host_key, delay)
        return rules


def _rules_from_entry(entry: bytes) -> _Rules:
    data = msgpack.unpackb(entry, raw=False)
    kind = _Kind(data["k"])
    parser = Protego.parse(data["b"].decode("utf-8", "replace")) if kind is _Kind.RULES else None
    # the local copy lives no longer than the shared one does
    left = float(data["ttl"]) - max(0.0, time.time() - float(data["at"]))
    # "why" is absent from entries of older writers: the decision then just says unreachable.
    why = str(data.get("why") or "")
    return _Rules(
        kind, parser, time.monotonic() + left, why, float(data["ttl"]), int(data.get("n") or 0)
    )


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _crawl_delay(parser: Protego, user_agent: str) -> float:
    delay = parser.crawl_delay(user_agent)
    if delay:
        return float(delay)
    rate = parser.request_rate(user_agent)
    if rate and rate.requests:
        return float(rate.seconds) / float(rate.requests)
    return 0.0
