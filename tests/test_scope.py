"""Scope rules: which canonical URLs a crawl may enqueue."""

from __future__ import annotations

import pytest

from crawler.scope import Scope, ScopeRules


def test_default_scope_is_the_seeds_hosts_exactly() -> None:
    scope = Scope(ScopeRules(), {"a.test"})
    assert scope.reason_out("http://a.test/x", "a.test", 3) is None
    assert scope.reason_out("http://sub.a.test/", "sub.a.test", 1) == "host sub.a.test not allowed"
    scope.add_seed_hosts(["sub.a.test"])
    assert scope.reason_out("http://sub.a.test/", "sub.a.test", 1) is None


def test_allowed_domains_include_subdomains_but_not_lookalikes() -> None:
    scope = Scope(ScopeRules(allowed_domains=("Example.COM.",)))
    assert scope.host_allowed("example.com")
    assert scope.host_allowed("deep.www.example.com")
    assert not scope.host_allowed("badexample.com")
    assert not scope.host_allowed("example.com.evil.test")


def test_allowed_hosts_are_exact_and_replace_the_seeds_default() -> None:
    scope = Scope(ScopeRules(allowed_hosts=("a.test",)), {"seed.test"})
    assert scope.host_allowed("a.test")
    assert not scope.host_allowed("sub.a.test")
    assert not scope.host_allowed("seed.test")


def test_depth_limit_is_inclusive() -> None:
    scope = Scope(ScopeRules(allowed_hosts=("a.test",), max_depth=2))
    assert scope.reason_out("http://a.test/", "a.test", 2) is None
    assert scope.reason_out("http://a.test/", "a.test", 3) == "depth 3 > max depth 2"


def test_exclude_wins_over_include_and_include_is_required_when_given() -> None:
    rules = ScopeRules(allowed_hosts=("a.test",), include=(r"/docs/",), exclude=(r"\.zip$",))
    scope = Scope(rules)
    assert scope.reason_out("http://a.test/docs/a.html", "a.test", 1) is None
    assert scope.reason_out("http://a.test/docs/a.zip", "a.test", 1) == "excluded by '\\\\.zip$'"
    assert scope.reason_out("http://a.test/blog/", "a.test", 1) == "matches no include pattern"


def test_bad_patterns_and_depths_are_rejected_early() -> None:
    with pytest.raises(ValueError, match="bad scope pattern"):
        ScopeRules(include=("(unclosed",))
    with pytest.raises(ValueError, match="max_depth"):
        ScopeRules(max_depth=-1)


def test_rules_round_trip_through_a_dict() -> None:
    rules = ScopeRules(("h",), ("d.test",), ("i",), ("e",), 4)
    assert ScopeRules.from_dict(rules.to_dict()) == rules
    assert ScopeRules.from_dict({}) == ScopeRules()
