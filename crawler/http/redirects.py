"""Where a redirect leads and what the next request keeps.

301, 302 and 303 turn the next request into a GET without a body (a HEAD stays a HEAD); 307 and
308 keep the method and the body. When the next URL is on another origin, credentials and
cookies the caller set for the first one are not sent there (the session strips them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from yarl import URL

from crawler.http.errors import InvalidUrlRedirectClientError, NonHttpUrlRedirectClientError
from crawler.http.request import HTTP_SCHEMES, origin_of

__all__ = ["REDIRECT_STATUSES", "Redirect", "follow"]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# 301 and 302 turn only a POST into a GET (RFC 9110 15.4.2-3: what user agents do, for
# historical reasons); 303 any method but HEAD; 307 and 308 never.
_POST_TO_GET = frozenset({301, 302})


_UNSENDABLE = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True, slots=True)
class Redirect:
    url: URL
    method: str
    drop_body: bool
    new_origin: bool


def follow(status: int, method: str, url: URL, location: str, *, requote: bool = True) -> Redirect:
    """The next hop for a `status` answer with `location` to a `method` request for `url`.

    Raises `NonHttpUrlRedirectClientError` for a non-http(s) target and
    `InvalidUrlRedirectClientError` for one that does not parse or has no host.
    """
    for ch in ("\r", "\n", "\x00"):
        if ch in location:
            raise InvalidUrlRedirectClientError(location, f"redirect Location contains {ch!r}")
    try:
        given = URL(location, encoded=not requote)
        target = url.join(given)
    except (ValueError, TypeError) as exc:
        raise InvalidUrlRedirectClientError(location, f"invalid redirect URL: {exc}") from None
    if given.scheme and given.scheme not in HTTP_SCHEMES:
        raise NonHttpUrlRedirectClientError(location)
    if given.scheme and not given.raw_host:
        raise InvalidUrlRedirectClientError(location, "redirect URL has no host")
    if target.scheme not in HTTP_SCHEMES:
        raise NonHttpUrlRedirectClientError(location)
    if not target.raw_host:
        raise InvalidUrlRedirectClientError(location, "redirect URL has no host")
    if not requote and _UNSENDABLE.search(target.raw_path_qs):
        # Taken as sent (requote_redirect_url=False), it cannot go on a request line.
        raise InvalidUrlRedirectClientError(location, "redirect URL has spaces or controls")
    if not target.raw_fragment and url.raw_fragment:
        # RFC 9110 10.2.2: a Location without a fragment inherits the request's.
        target = target.with_fragment(url.fragment)
    drop_body = (status == 303 and method != "HEAD") or (
        status in _POST_TO_GET and method == "POST"
    )
    return Redirect(
        url=target,
        method="GET" if drop_body else method,
        drop_body=drop_body,
        new_origin=origin_of(target) != origin_of(url),
    )
