"""X-Robots-Tag: which header values forbid following a page's links, to us or to everyone."""

from __future__ import annotations

import pytest

from crawler.robots_header import forbids_following, product_token

UA = "crawl/0.1 (+https://example.invalid/bot)"


@pytest.mark.parametrize(
    "values",
    [
        ["nofollow"],
        ["NoFollow"],
        ["none"],
        ["noindex, nofollow"],
        ["noarchive", "nofollow"],  # sent twice
        ["crawl: nofollow"],
        ["otherbot: noindex, crawl: nofollow"],
        ["unavailable_after: 25 Jun 2010 15:00:00 PST, nofollow"],
        ["max-snippet: 20, none"],
    ],
)
def test_directives_that_forbid_following(values: list[str]) -> None:
    assert forbids_following(values, UA)


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["noindex"],
        ["noarchive, nosnippet"],
        ["otherbot: nofollow"],
        ["otherbot: none"],
        ["crawl: noindex, otherbot: nofollow"],
        ["crawler: nofollow"],  # a token that merely starts like ours
        ["unavailable_after: 25 Jun 2010 15:00:00 PST"],
    ],
)
def test_directives_that_do_not(values: list[str]) -> None:
    assert not forbids_following(values, UA)


def test_the_product_token_is_the_name_before_the_version() -> None:
    assert product_token(UA) == "crawl"
    assert product_token("MyBot") == "mybot"
    assert product_token(" Foo Bar/2") == "foo"
