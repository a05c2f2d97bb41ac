"""What the frontier hands out and takes back: `Task`, `Link`, `Ack`, outcomes and stats.

A task's identity is the fingerprint of its canonical URL (hex in `Task.id`), so the same URL
is one task per job whatever spelling it was found under. Tasks cross process and machine
boundaries as msgpack maps (`Task.pack` / `Task.unpack`), never pickle.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

__all__ = [
    "Ack",
    "AddResult",
    "FinalRecord",
    "FinalState",
    "FrontierStats",
    "HostBacklog",
    "Link",
    "Outcome",
    "Task",
]

# Priorities are clamped to this range: higher is leased first. The Redis backend folds
# (priority, arrival) into one sorted-set score, which needs the bound to stay exact.
PRIORITY_MIN, PRIORITY_MAX = -1000, 1000


def clamp_priority(priority: int) -> int:
    return max(PRIORITY_MIN, min(PRIORITY_MAX, int(priority)))


class Outcome(enum.StrEnum):
    """How an acknowledged task ended (`retry`/`fail` cover the other endings)."""

    DONE = "done"  # fetched and stored
    SKIPPED = "skipped"  # deliberately not fetched: robots.txt, a policy of the worker


class FinalState(enum.StrEnum):
    """States a task can end in that are kept for listing (done tasks only count)."""

    SKIPPED = "skipped"
    FAILED = "failed"
    DEAD = "dead"  # ran out of attempts


@dataclass(slots=True)
class Task:
    """One URL leased to a worker.

    `id` is the hex fingerprint of `url` (the canonical URL), `host` the politeness key
    (host[:port]), `parent` the URL of the page the link was found on (None for seeds),
    `attempts` how many earlier tries failed or expired, `deadline` the lease deadline
    (seconds since the epoch, by the store's clock) set by `lease()`.
    """

    id: str
    url: str
    depth: int = 0
    priority: int = 0
    attempts: int = 0
    parent: str | None = None
    meta: dict[str, Any] | None = None
    host: str = ""
    deadline: float = 0.0

    def pack(self) -> bytes:
        return msgpack.packb(
            {
                "id": self.id,
                "url": self.url,
                "depth": self.depth,
                "priority": self.priority,
                "attempts": self.attempts,
                "parent": self.parent,
                "meta": self.meta,
                "host": self.host,
                "deadline": self.deadline,
            },
            use_bin_type=True,
        )

    @classmethod
    def unpack(cls, data: bytes) -> Task:
        fields = msgpack.unpackb(data, raw=False)
        if not isinstance(fields, dict) or "id" not in fields or "url" not in fields:
            raise ValueError("not a packed Task")
        return cls(
            id=fields["id"],
            url=fields["url"],
            depth=int(fields.get("depth", 0)),
            priority=int(fields.get("priority", 0)),
            attempts=int(fields.get("attempts", 0)),
            parent=fields.get("parent"),
            meta=fields.get("meta"),
            host=fields.get("host", ""),
            deadline=float(fields.get("deadline", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class Link:
    """A URL to enqueue with a priority and metadata (plain strings get the defaults).

    A link is one level deeper than the page it was found on, unless `keeps_depth`: a page a
    sitemap lists is as deep as the sitemap (it is listed the way a seed is, not linked).
    A link that is not `scoped` is taken whatever the scope's rules say (a sitemap file, read
    for what it lists: it may sit on another host, or fail --include; what it lists is
    scoped)."""

    url: str
    priority: int = 0
    meta: dict[str, Any] | None = None
    keeps_depth: bool = False
    scoped: bool = True


@dataclass(slots=True)
class Ack:
    """One acknowledgement for `Frontier.ack_many`: the task, its outcome, found links."""

    task: Task | str
    outcome: Outcome = Outcome.DONE
    links: Sequence[str | Link] = ()
    reason: str = ""


@dataclass(slots=True)
class AddResult:
    """What `add` did with the URLs it was given."""

    added: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (url, reason)


@dataclass(slots=True)
class FinalRecord:
    """A task that ended without being fetched: skipped, failed or dead, with its reason."""

    id: str
    url: str
    state: FinalState
    reason: str
    attempts: int
    host: str
    depth: int = 0
    parent: str | None = None


@dataclass(slots=True)
class HostBacklog:
    host: str
    queued: int


@dataclass(slots=True)
class FrontierStats:
    """Counters of one job, summed over partitions.

    `queued` includes tasks waiting for a retry delay. `out_of_scope` counts links and seeds
    turned away before they were enqueued, `duplicates` URLs seen before.
    """

    queued: int = 0
    leased: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    dead: int = 0
    added: int = 0
    duplicates: int = 0
    out_of_scope: int = 0
    retried: int = 0
    expired: int = 0
    hosts_with_backlog: int = 0
    paused: bool = False

    @property
    def finished(self) -> bool:
        return self.queued == 0 and self.leased == 0
