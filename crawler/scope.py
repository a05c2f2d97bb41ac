"""Which URLs belong to a crawl: hosts/domains, include/exclude patterns, depth, scheme.

The frontier asks a `Scope` about every discovered link before it is enqueued, so out-of-scope
URLs never cost a queue entry. Seeds are trusted: they only have to be http(s) URLs, and with
no allowed hosts or domains configured their hosts become the allowed hosts (wget's default of
staying on the hosts you started from).

Rules, in order (the first that fails names the reason):
1. scheme is http or https (canonicalization rejects the rest);
2. depth <= max_depth, when a maximum is set;
3. the host is allowed: equal to an allowed host, or equal to / a subdomain of an allowed
   domain; with neither configured, one of the seeds' hosts;
4. no exclude pattern matches the canonical URL (``re.search``);
5. with include patterns, at least one matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Scope", "ScopeRules"]


@dataclass(frozen=True, slots=True)
class ScopeRules:
    """What the user configured; plain data so it can be stored with a job."""

    allowed_hosts: tuple[str, ...] = ()
    allowed_domains: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_depth: int | None = None

    def __post_init__(self) -> None:
        for pattern in (*self.include, *self.exclude):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad scope pattern {pattern!r}: {exc}") from None
        if self.max_depth is not None and self.max_depth < 0:
            raise ValueError(f"max_depth must be >= 0, not {self.max_depth}")

    @property
    def follows_seeds(self) -> bool:
        """True when the allowed hosts are the seeds' hosts (nothing else configured)."""
        return not self.allowed_hosts and not self.allowed_domains

    def to_dict(self) -> dict[str, object]:
        return {
            "allowed_hosts": list(self.allowed_hosts),
            "allowed_domains": list(self.allowed_domains),
            "include": list(self.include),
            "exclude": list(self.exclude),
            "max_depth": self.max_depth,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ScopeRules:
        def strings(name: str) -> tuple[str, ...]:
            value = data.get(name) or ()
            return tuple(str(item) for item in value)  # type: ignore[attr-defined]

        max_depth = data.get("max_depth")
        return cls(
            allowed_hosts=strings("allowed_hosts"),
            allowed_domains=strings("allowed_domains"),
            include=strings("include"),
            exclude=strings("exclude"),
            max_depth=None if max_depth is None else int(max_depth),  # type: ignore[call-overload]
        )


@dataclass(slots=True)
class Scope:
    """Compiled rules plus the seeds' hosts; `reason_out` is the one question it answers."""

    rules: ScopeRules = field(default_factory=ScopeRules)
    seed_hosts: set[str] = field(default_factory=set)
    _include: tuple[re.Pattern[str], ...] = field(init=False, repr=False)
    _exclude: tuple[re.Pattern[str], ...] = field(init=False, repr=False)
    _hosts: frozenset[str] = field(init=False, repr=False)
    _domains: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._include = tuple(re.compile(p) for p in self.rules.include)
        self._exclude = tuple(re.compile(p) for p in self.rules.exclude)
        self._hosts = frozenset(h.lower().rstrip(".") for h in self.rules.allowed_hosts)
        self._domains = tuple(d.lower().strip(".") for d in self.rules.allowed_domains)

    def add_seed_hosts(self, hosts: Iterable[str]) -> None:
        self.seed_hosts.update(hosts)

    def host_allowed(self, host: str) -> bool:
        if self.rules.follows_seeds:
            return host in self.seed_hosts
        if host in self._hosts:
            return True
        return any(host == d or host.endswith("." + d) for d in self._domains)

    def reason_out(self, canonical_url: str, host: str, depth: int) -> str | None:
        """None when the URL is in scope, else a short reason ("depth 4 > 3", ...)."""
        max_depth = self.rules.max_depth
        if max_depth is not None and depth > max_depth:
            return f"depth {depth} > max depth {max_depth}"
        if not self.host_allowed(host):
            return f"host {host} not allowed"
        for pattern in self._exclude:
            if pattern.search(canonical_url):
                return f"excluded by {pattern.pattern!r}"
        if self._include and not any(p.search(canonical_url) for p in self._include):
            return "matches no include pattern"
        return None
