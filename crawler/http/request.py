"""Building a request: its URL (base URL, params, credentials), its headers and its body.

Nothing here does I/O. `build_url` checks what a caller passed and applies `params` as the guide
says (a `str` is sent as given, `+` stays `+`). `HeaderPlan` merges the session's and the
request's headers with the automatic ones, then `head_for` adds what depends on the hop
(Host, cookies, Authorization, body framing) and returns the header list to encode.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict
from yarl import URL

from crawler.http.auth import BasicAuth
from crawler.http.errors import InvalidUrlClientError, NonHttpUrlClientError
from crawler.http.payload import Payload

__all__ = [
    "HTTP_SCHEMES",
    "HeaderPlan",
    "build_url",
    "checked_url",
    "host_header",
    "origin_of",
    "request_target",
]

HTTP_SCHEMES = frozenset({"http", "https"})
_FORBIDDEN_IN_URL = ("\r", "\n", "\x00")

# Headers the session computes; a caller's own value for one of them wins.
AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent")
# Headers that describe a body: dropped with the body on a 301/302/303 redirect.
BODY_HEADERS = frozenset(
    {"content-type", "content-length", "transfer-encoding", "content-encoding"}
)


def build_url(
    str_or_url: str | URL,
    *,
    base_url: URL | None = None,
    params: Any = None,
) -> URL:
    """An absolute http(s) URL from what the caller passed, with `params` added to its query.

    Raises `InvalidUrlClientError` for CR/LF/NUL or a URL without a host, and
    `NonHttpUrlClientError` for another scheme.
    """
    if isinstance(str_or_url, str):
        for ch in _FORBIDDEN_IN_URL:
            if ch in str_or_url:
                # yarl would silently strip them; a crawler must not request something else.
                raise InvalidUrlClientError(str_or_url, f"URL contains {ch!r}")
        try:
            url = URL(str_or_url)
        except (ValueError, TypeError) as exc:
            raise InvalidUrlClientError(str_or_url, str(exc)) from None
    elif isinstance(str_or_url, URL):
        url = str_or_url
    else:
        raise InvalidUrlClientError(str_or_url, f"expected str or URL, got {type(str_or_url)}")
    if base_url is not None and not url.absolute:
        url = base_url.join(url)
    if params is not None:
        try:
            url = url.extend_query(params)
        except (TypeError, ValueError) as exc:
            raise InvalidUrlClientError(url, f"bad params: {exc}") from None
    if url.scheme not in HTTP_SCHEMES:
        if not url.absolute or not url.scheme:
            raise InvalidUrlClientError(url, "URL is not absolute (no scheme and host)")
        raise NonHttpUrlClientError(url)
    if not url.raw_host:
        raise InvalidUrlClientError(url, "URL has no host")
    return url


def checked_url(value: str | URL, what: str = "URL") -> URL:
    """`value` as a URL, refusing CR, LF and NUL, which yarl would silently drop.

    For URLs that are not a request's own (a session's base URL, a proxy): they must not point
    somewhere else than the caller wrote either. Raises `InvalidUrlClientError`.
    """
    if isinstance(value, str):
        for ch in _FORBIDDEN_IN_URL:
            if ch in value:
                raise InvalidUrlClientError(value, f"{what} contains {ch!r}")
    try:
        return URL(value)
    except (ValueError, TypeError) as exc:
        raise InvalidUrlClientError(value, f"invalid {what}: {exc}") from None


def host_header(url: URL) -> str:
    """The Host header for `url`: host (bracketed when IPv6), port unless the default."""
    return url.host_port_subcomponent or ""


def request_target(url: URL, *, absolute: bool = False) -> str:
    """The request-target: origin-form `/path?query`, or absolute-form for plain proxies."""
    if absolute:
        return str(url.with_user(None).with_fragment(None))
    return url.raw_path_qs or "/"


def origin_of(url: URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.raw_host or "", url.port)


def merge_headers(
    session_headers: CIMultiDict[str] | None, request_headers: Any
) -> CIMultiDict[str] | None:
    """Session headers overridden by the request's (a repeated request name is kept repeated)."""
    if not request_headers:
        return CIMultiDict(session_headers) if session_headers else None
    merged: CIMultiDict[str] = CIMultiDict(session_headers) if session_headers else CIMultiDict()
    items: Iterable[tuple[str, str]] = (
        request_headers.items() if isinstance(request_headers, Mapping) else request_headers
    )
    added: set[str] = set()
    for name, value in items:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"header names and values must be str, got {name!r}: {value!r}")
        lname = name.lower()
        if lname in added:
            merged.add(name, value)
        else:
            merged[name] = value
            added.add(lname)
    return merged


@dataclass(slots=True)
class HeaderPlan:
    """The headers of a request before the hop-dependent ones are added.

    `caller` holds the merged session and request headers (None when there are none: the fast
    path). `auto` are the automatic headers not skipped and not given by the caller.
    """

    caller: CIMultiDict[str] | None
    auto: list[tuple[str, str]]

    @classmethod
    def make(
        cls,
        caller: CIMultiDict[str] | None,
        auto_headers: list[tuple[str, str]],
        skip: frozenset[str],
    ) -> HeaderPlan:
        if caller is None and not skip:
            return cls(None, auto_headers)
        auto = [
            (name, value)
            for name, value in auto_headers
            if name.lower() not in skip and (caller is None or name not in caller)
        ]
        return cls(caller, auto)

    def add_auto(self, name: str, value: str) -> None:
        """Add an automatic header to this request only.

        `auto` may be the session's own list (the fast path of `make` does not copy it), so it
        is replaced, never appended to: appending would send the header on every later request.
        """
        self.auto = [*self.auto, (name, value)]

    def strip_for_new_origin(self) -> None:
        """Drop what the caller meant for the first origin only (credentials and cookies)."""
        if self.caller is not None:
            for name in ("Authorization", "Cookie", "Proxy-Authorization"):
                self.caller.popall(name, None)

    def strip_body_headers(self) -> None:
        if self.caller is not None:
            for name in list(self.caller.keys()):
                if name.lower() in BODY_HEADERS:
                    self.caller.popall(name, None)

    def head_for(
        self,
        url: URL,
        *,
        skip: frozenset[str],
        cookie: str | None,
        authorization: str | None,
        payload: Payload | None,
        chunked: bool,
        extra: list[tuple[str, str]] | None = None,
    ) -> list[tuple[str, str]]:
        """The full header list for one hop."""
        caller = self.caller
        headers: list[tuple[str, str]] = []
        if (caller is None or "Host" not in caller) and "host" not in skip:
            headers.append(("Host", host_header(url)))
        if caller is not None:
            headers.extend(caller.items())
        headers.extend(self.auto)
        if cookie:
            if caller is not None and "Cookie" in caller:
                # The caller's Cookie header and the jar's cookies travel together.
                headers = [(n, v) for n, v in headers if n.lower() != "cookie"]
                cookie = f"{caller['Cookie']}; {cookie}"
            headers.append(("Cookie", cookie))
        if authorization is not None:
            headers.append(("Authorization", authorization))
        if payload is not None:
            has = caller.__contains__ if caller is not None else (lambda _: False)
            if payload.content_type and not has("Content-Type") and "content-type" not in skip:
                headers.append(("Content-Type", payload.content_type))
            if chunked:
                if not has("Transfer-Encoding"):
                    headers.append(("Transfer-Encoding", "chunked"))
            elif not has("Content-Length"):
                headers.append(("Content-Length", str(payload.size)))
        if extra:
            headers.extend(extra)
        return headers


def pick_auth(
    url: URL,
    auth: BasicAuth | None,
    session_auth: BasicAuth | None,
    caller_headers: CIMultiDict[str] | None,
) -> tuple[URL, BasicAuth | None]:
    """The credentials for a request, and its URL without user:password.

    Raises ValueError when a URL's credentials and `auth=` (or an Authorization header) meet.
    """
    # `http://:secret@host/` has a password and no user: credentials all the same.
    has_credentials = url.raw_user is not None or url.raw_password is not None
    from_url = BasicAuth.from_url(url) if has_credentials else None
    if from_url is not None:
        url = url.with_user(None)
        if auth is not None:
            raise ValueError("Cannot combine AUTH argument with credentials encoded in URL")
        auth = from_url
    elif auth is None:
        auth = session_auth
    if auth is not None and caller_headers is not None and "Authorization" in caller_headers:
        raise ValueError(
            "Cannot combine AUTHORIZATION header with AUTH argument or credentials encoded in URL"
        )
    if auth is not None and not isinstance(auth, BasicAuth):
        raise TypeError("auth must be a BasicAuth")
    return url, auth
