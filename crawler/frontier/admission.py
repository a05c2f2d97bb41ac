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

__all__ = ["Admitted", "Admitter", "pack_body", "partition_of", "unpack_body"]


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
