"""Settings of a frontier job, validated once, stored with the job so every worker agrees."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import msgpack

from crawler.scope import ScopeRules

from .errors import FrontierConfigError

__all__ = ["JOB_DEFINING", "FrontierSettings", "check_job_name"]

JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

Dedupe = Literal["exact", "bloom"]

# Fields fixed when a job is created: changing them later would split or corrupt its state.
JOB_DEFINING = ("partitions", "dedupe", "bloom_capacity", "bloom_error_rate", "sort_query")


@dataclass(frozen=True, slots=True)
class FrontierSettings:
    """Everything a frontier needs to decide what is leased, when, and what is enqueued.

    Times are in seconds. `per_host_limit` caps tasks of one host leased at once;
    `per_host_delay` is the least time between two lease starts on one host (robots.txt
    `Crawl-delay` raises it per host, capped at `max_crawl_delay`). Retries back off
    exponentially from `backoff_base` up to `backoff_max`, which also caps `Retry-After`.
    `partitions` spreads hosts over that many key partitions (Redis Cluster hash tags; see
    docs/frontier.md); SQLite ignores it.
    """

    lease_seconds: float = 60.0
    max_attempts: int = 3
    per_host_limit: int = 2
    per_host_delay: float = 0.0
    max_crawl_delay: float = 60.0
    backoff_base: float = 1.0
    backoff_max: float = 600.0
    dedupe: Dedupe = "exact"
    bloom_capacity: int = 10_000_000
    bloom_error_rate: float = 1e-4
    partitions: int = 1
    sort_query: bool = False
    scope: ScopeRules = field(default_factory=ScopeRules)
    # The job's page budget: no more leases once this many URLs are finished (done, failed,
    # dead) or leased. Enforced by `lease` inside the store's transaction or script, so any
    # number of workers stop exactly at it (a Redis job of several partitions: see _lease).
    max_pages: int | None = None

    def __post_init__(self) -> None:
        _check(self.lease_seconds > 0, "lease_seconds", self.lease_seconds, "must be > 0")
        _check(self.max_attempts >= 1, "max_attempts", self.max_attempts, "must be >= 1")
        _check(self.per_host_limit >= 1, "per_host_limit", self.per_host_limit, "must be >= 1")
        _check(self.per_host_delay >= 0, "per_host_delay", self.per_host_delay, "must be >= 0")
        _check(self.max_crawl_delay >= 0, "max_crawl_delay", self.max_crawl_delay, "must be >= 0")
        _check(self.backoff_base > 0, "backoff_base", self.backoff_base, "must be > 0")
        _check(
            self.backoff_max >= self.backoff_base,
            "backoff_max",
            self.backoff_max,
            "must be >= backoff_base",
        )
        _check(self.dedupe in ("exact", "bloom"), "dedupe", self.dedupe, "is 'exact' or 'bloom'")
        _check(self.bloom_capacity >= 1, "bloom_capacity", self.bloom_capacity, "must be >= 1")
        _check(
            0 < self.bloom_error_rate < 0.5,
            "bloom_error_rate",
            self.bloom_error_rate,
            "must be in (0, 0.5)",
        )
        _check(1 <= self.partitions <= 16384, "partitions", self.partitions, "is 1..16384")
        budget = self.max_pages
        _check(budget is None or budget >= 1, "max_pages", budget, "must be >= 1")

    def replace(self, **changes: Any) -> FrontierSettings:
        return dataclasses.replace(self, **changes)

    def pack(self) -> bytes:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["scope"] = self.scope.to_dict()
        return msgpack.packb(data, use_bin_type=True)

    @classmethod
    def unpack(cls, data: bytes) -> FrontierSettings:
        fields = msgpack.unpackb(data, raw=False)
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in fields.items() if k in known}
        values["scope"] = ScopeRules.from_dict(values.get("scope") or {})
        return cls(**values)

    def merged_with_stored(self, stored: FrontierSettings) -> FrontierSettings:
        """These settings, but with the stored job's job-defining fields (see JOB_DEFINING)."""
        return self.replace(**{name: getattr(stored, name) for name in JOB_DEFINING})


def _check(ok: bool, name: str, value: object, rule: str) -> None:
    if not ok:
        raise FrontierConfigError(f"frontier setting {name}={value!r} {rule}")


def check_job_name(job: str) -> str:
    """Job names go into Redis key names and hash tags: letters, digits, '.', '_', '-'."""
    if not isinstance(job, str) or not JOB_NAME.fullmatch(job):
        raise FrontierConfigError(
            f"bad job name {job!r}: use 1-100 letters, digits, '.', '_' or '-'"
        )
    return job
