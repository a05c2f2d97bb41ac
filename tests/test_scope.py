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


# --- spider traps: URL length and repeated path segments ---------------------------------------


def test_a_link_longer_than_the_limit_is_out() -> None:
    scope = Scope(ScopeRules(allowed_hosts=("a.test",), max_url_length=40))
    fits = "http://a.test/" + "x" * 26
    assert len(fits) == 40 and scope.reason_out(fits, "a.test", 1) is None
    assert scope.reason_out(fits + "y", "a.test", 1) == "URL longer than 40 characters"


def test_the_default_length_limit_is_scrapy_s_2083() -> None:
    scope = Scope(ScopeRules(allowed_hosts=("a.test",)))
    base = "http://a.test/"
    assert scope.reason_out(base + "x" * (2083 - len(base)), "a.test", 1) is None
    assert scope.reason_out(base + "x" * (2084 - len(base)), "a.test", 1) is not None


@pytest.mark.parametrize(
    ("path", "run"),
    [
        ("/a/a/a/", None),
        ("/a/a/a/a/", "a/"),
        ("/docs/a/a/a/a/index.html", "a/"),
        ("/x/y/x/y/x/y/", None),
        ("/x/y/x/y/x/y/x/y/", "x/y/"),
        ("/p/1/2/3/1/2/3/1/2/3/1/2/3/", "1/2/3/"),
        ("/2020/01/01/01/", None),
        ("/a//a//a//a/", None),  # empty segments are not a run
        ("/", None),
        ("/a/b/c/d/e/f/g/h/i/j/", None),
    ],
)
def test_a_run_of_segments_repeated_more_than_three_times_is_a_trap(
    path: str, run: str | None
) -> None:
    scope = Scope(ScopeRules(allowed_hosts=("a.test",)))
    reason = scope.reason_out(f"http://a.test{path}?q=1", "a.test", 1)
    if run is None:
        assert reason is None
    else:
        assert reason == f"path repeats {run!r} more than 3 times (a trap)"


def test_the_query_is_not_part_of_the_path_checked_for_repeats() -> None:
    scope = Scope(ScopeRules(allowed_hosts=("a.test",)))
    assert scope.reason_out("http://a.test/p?x=/a/a/a/a/a/", "a.test", 1) is None


def test_trap_limits_can_be_set_or_turned_off() -> None:
    strict = Scope(ScopeRules(allowed_hosts=("a.test",), max_path_repeats=1))
    assert strict.reason_out("http://a.test/a/a/", "a.test", 1) is not None
    off = Scope(ScopeRules(allowed_hosts=("a.test",), max_url_length=None, max_path_repeats=None))
    assert off.reason_out("http://a.test/" + "a/" * 5000, "a.test", 1) is None
    with pytest.raises(ValueError, match="max_url_length must be >= 1"):
        ScopeRules(max_url_length=0)


def test_a_job_stored_before_the_trap_limits_gets_their_defaults() -> None:
    stored = {"allowed_hosts": ["h"], "max_depth": 2}
    assert ScopeRules.from_dict(stored) == ScopeRules(allowed_hosts=("h",), max_depth=2)
    off = ScopeRules(max_url_length=None, max_path_repeats=None)
    assert ScopeRules.from_dict(off.to_dict()) == off
