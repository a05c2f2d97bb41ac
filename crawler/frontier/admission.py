"""From a URL someone handed us to a row a backend can store: canonical, in scope, packed.

Both backends take `Admitted` items, so canonicalization, scope, fingerprints, partitioning and
the stored body format are decided in one place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

from crawler.scope import Scope
from crawler.urls import InvalidURL, canonical_parts, fingerprint_canonical

from .settings import FrontierSettings
from .task import Link, Task, clamp_priority

__all__ = [
    "Admitted",
    "Admitter",
    "body_depth",
    "body_with_depth",
    "pack_body",
    "partition_of",
    "unpack_body",
]


@dataclass(slots=True)
class Admitted:
    """A canonical, in-scope URL ready to enqueue."""

    fp: bytes
    url: str
    host: str  # politeness key
    depth: int
    priority: int
    body: bytes  # pack_body(...): what the store keeps besides host, score and attempts
    partition: int


def pack_body(
    url: str, depth: int, priority: int, parent: str | None, meta: dict[str, Any] | None
) -> bytes:
    """The stored form of a task: a msgpack array, smaller than a map for millions of rows."""
    return msgpack.packb([url, depth, priority, parent, meta], use_bin_type=True)


# msgpack's unsigned integer types: the width of what follows the type byte.
_UINT_WIDTH = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}


def _depth_span(body: bytes) -> tuple[int, int, int] | None:
    """(depth, start, end) of the depth field of a packed body, read without unpacking it:
    the body is [url, depth, ...], so depth follows the URL string's header and bytes. None
    for anything not of that form (the caller then leaves the body alone).

    The Redis scripts read it the same way (`depth_at` in redis_scripts.py): Lua there has
    no msgpack decoder on every server we test (fakeredis)."""
    if len(body) < 3 or body[0] != 0x95:  # a fixarray of 5
        return None
    head = body[1]
    if 0xA0 <= head <= 0xBF:  # fixstr
        at = 2 + head - 0xA0
    elif head == 0xD9:  # str 8
        at = 3 + body[2]
    elif head == 0xDA:  # str 16
        at = 4 + int.from_bytes(body[2:4], "big")
    elif head == 0xDB:  # str 32
        at = 6 + int.from_bytes(body[2:6], "big")
    else:
        return None
    if at >= len(body):
        return None
    kind = body[at]
    if kind < 0x80:  # positive fixint: any depth below 128
        return kind, at, at + 1
    width = _UINT_WIDTH.get(kind)
    if width is None or at + 1 + width > len(body):
        return None
    return int.from_bytes(body[at + 1 : at + 1 + width], "big"), at, at + 1 + width


def body_depth(body: bytes | None) -> int | None:
    """The depth a packed body holds (None when it holds none: no body, another form)."""
    span = None if body is None else _depth_span(body)
    return None if span is None else span[0]


def body_with_depth(body: bytes, depth: int) -> bytes:
    """`body` with its depth replaced by `depth`, every other byte as it was (priority,
    parent and meta stay those of the link that queued the task)."""
    span = _depth_span(body)
    if span is None:
        return body
    _, start, end = span
    return body[:start] + msgpack.packb(depth) + body[end:]


def unpack_body(
    fp: bytes, body: bytes, *, host: str, attempts: int, deadline: float = 0.0
) -> Task:
    url, depth, priority, parent, meta = msgpack.unpackb(body, raw=False)
    return Task(
        id=fp.hex(),
        url=url,
        depth=depth,
        priority=priority,
        attempts=attempts,
        parent=parent,
        meta=meta,
        host=host,
        deadline=deadline,
    )


def partition_of(host: str, partitions: int) -> int:
    """Which partition a host's state lives in; stable across processes and machines."""
    if partitions == 1:
        return 0
    digest = hashlib.blake2b(host.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


class Admitter:
    """Turns seeds and links into `Admitted` rows, or a reason they were turned away."""

    def __init__(self, settings: FrontierSettings, seed_hosts: Iterable[str] = ()) -> None:
        self.settings = settings
        self.scope = Scope(settings.scope, set(seed_hosts))

    def seeds(
        self, seeds: Iterable[str | Link]
    ) -> tuple[list[Admitted], list[tuple[str, str]], set[str]]:
        """Admit seeds (trusted: only the URL must be valid). Returns rows, rejects, seed hosts."""
        admitted: list[Admitted] = []
        rejected: list[tuple[str, str]] = []
        hosts: set[str] = set()
        for seed in seeds:
            link = seed if isinstance(seed, Link) else Link(seed)
            try:
                parts = canonical_parts(link.url, sort_query=self.settings.sort_query)
            except InvalidURL as exc:
                rejected.append((link.url, str(exc)))
                continue
            hosts.add(parts.host)
            admitted.append(self._row(parts.url, parts.host_key, 0, link, None))
        if self.settings.scope.follows_seeds:
            self.scope.add_seed_hosts(hosts)
        return admitted, rejected, hosts

    def links(
        self, parent: Task, links: Iterable[str | Link]
    ) -> tuple[list[Admitted], list[tuple[str, str]]]:
        """Admit links found on `parent`'s page: valid, in scope, one level deeper (or as
        deep, `Link.keeps_depth`)."""
        admitted: list[Admitted] = []
        rejected: list[tuple[str, str]] = []
        deeper = parent.depth + 1
        for item in links:
            if isinstance(item, Link):
                link = item
                depth = parent.depth if link.keeps_depth else deeper
            else:
                link, depth = Link(item), deeper
            try:
                parts = canonical_parts(link.url, sort_query=self.settings.sort_query)
            except InvalidURL as exc:
                rejected.append((link.url, str(exc)))
                continue
            reason = self.scope.reason_out(parts.url, parts.host, depth) if link.scoped else None
            if reason is not None:
                rejected.append((parts.url, reason))
                continue
            admitted.append(self._row(parts.url, parts.host_key, depth, link, parent.url))
        return admitted, rejected

    def _row(
        self, url: str, host: str, depth: int, link: Link, parent: str | None
    ) -> Admitted:
        priority = clamp_priority(link.priority)
        return Admitted(
            fp=fingerprint_canonical(url),
            url=url,
            host=host,
            depth=depth,
            priority=priority,
            body=pack_body(url, depth, priority, parent, link.meta),
            partition=partition_of(host, self.settings.partitions),
        )
