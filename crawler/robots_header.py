"""`X-Robots-Tag` response headers: whether a page forbids following its links.

The header carries the directives of `<meta name="robots">` for any response (Google's syntax,
which other engines follow): a comma-separated list, `nofollow` or `none` among them, optionally
scoped to one crawler by a user-agent token and a colon (`X-Robots-Tag: otherbot: nofollow`).
A scope lasts until the next one in the same header; a response may send the header several
times. Directives that take a value (`unavailable_after: <date>`, `max-snippet: 20`) also have a
colon, so only a name that is no directive of its own starts a scope.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["forbids_following", "product_token"]

_NO_FOLLOW = frozenset({"nofollow", "none"})
_VALUED_DIRECTIVES = frozenset(
    {"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"}
)


def product_token(user_agent: str) -> str:
    """`crawl/0.1 (+https://...)` → `crawl`: the name a scope is matched against."""
    return user_agent.strip().split("/", 1)[0].split(" ", 1)[0].lower()


def forbids_following(values: Iterable[str], user_agent: str) -> bool:
    """True when one of the `X-Robots-Tag` header `values` says `nofollow` (or `none`) to every
    crawler or to ours, named by the product token of `user_agent`."""
    ours = product_token(user_agent)
    for value in values:
        scope: str | None = None  # None: every crawler
        for piece in value.split(","):
            directive = piece.strip().lower()
            name, colon, rest = directive.partition(":")
            if colon and name.strip() not in _VALUED_DIRECTIVES:
                scope, directive = name.strip(), rest.strip()
            if directive in _NO_FOLLOW and (scope is None or scope == ours):
                return True
    return False
