"""Cookie jars: `CookieJar` (RFC 6265 rules) and `DummyCookieJar` (keeps nothing).

`CookieJar` stores what responses set and gives back what a request may send:

* a cookie without a Domain attribute is *host-only*: sent to exactly the host that set it;
  with one, to that domain and its subdomains, and only if the setting host is inside it;
* Path: sent to that path and below (default: the directory of the setting URL's path);
* Secure: sent over https/wss only; Max-Age (preferred) or Expires: dropped once past, and a
  cookie set already expired deletes the stored one;
* hosts that are IP addresses keep no cookies unless `unsafe=True`;
* cookies given without a URL (`ClientSession(cookies=...)`) are shared with every host.

Cookies are indexed by domain, so `filter_cookies` costs a few dict look-ups per request.
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.cookies import BaseCookie, CookieError, Morsel, SimpleCookie
from typing import Any

from yarl import URL

__all__ = ["AbstractCookieJar", "CookieJar", "DummyCookieJar", "LooseCookies"]

LooseCookies = (
    Mapping[str, "str | Morsel[str]"] | Iterable[tuple[str, "str | Morsel[str]"]] | BaseCookie
)

_SECURE_SCHEMES = frozenset({"https", "wss"})
_NO_URL = URL()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _default_path(url: URL) -> str:
    # RFC 6265 section 5.1.4: the directory of the request path.
    path = url.raw_path or "/"
    if not path.startswith("/") or path.count("/") == 1:
        return "/"
    return path[: path.rfind("/")]


def _path_matches(request_path: str, cookie_path: str) -> bool:
    if request_path == cookie_path:
        return True
    if not request_path.startswith(cookie_path):
        return False
    return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"


def _expiry(morsel: Morsel[str], now: float) -> float | None:
    """When the cookie expires (epoch seconds), None for a session cookie."""
    max_age = morsel["max-age"]
    if max_age:
        with contextlib.suppress(ValueError):
            return now + int(max_age)
    expires = morsel["expires"]
    if expires:
        # email.utils costs every process a few ms of start-up; most never see an Expires.
        from email.utils import parsedate_to_datetime

        try:
            return parsedate_to_datetime(expires).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return None


@dataclass(slots=True)
class _Cookie:
    morsel: Morsel[str]
    host_only: bool
    expires: float | None


class AbstractCookieJar:
    """What a session needs from a cookie jar."""

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[Morsel[str]]:
        return iter(())

    def update_cookies(self, cookies: LooseCookies, response_url: URL = _NO_URL) -> None:
        """Store cookies (set by a response from `response_url`, or given by the caller)."""

    def filter_cookies(self, request_url: URL) -> BaseCookie[str]:
        """The cookies a request to `request_url` may carry."""
        return SimpleCookie()

    def clear(self, predicate: Callable[[Morsel[str]], bool] | None = None) -> None:
        """Remove all cookies, or those for which `predicate(morsel)` is true."""

    def clear_domain(self, domain: str) -> None:
        """Remove the cookies of `domain` and its subdomains."""


class DummyCookieJar(AbstractCookieJar):
    """A jar that keeps nothing: no cookie is stored or sent."""


class CookieJar(AbstractCookieJar):
    """An RFC 6265 cookie jar; `unsafe=True` also keeps cookies of IP-address hosts."""

    def __init__(
        self,
        *,
        unsafe: bool = False,
        quote_cookie: bool = True,
        treat_as_secure_origin: Iterable[str | URL] | None = None,
    ) -> None:
        self._unsafe = unsafe
        self._quote_cookie = quote_cookie
        self._secure_origins = frozenset(
            str(URL(origin).origin()) for origin in (treat_as_secure_origin or ())
        )
        # domain -> {(path, name): cookie}; domain "" holds cookies shared with every host.
        self._by_domain: dict[str, dict[tuple[str, str], _Cookie]] = {}
        self._count = 0

    @property
    def unsafe(self) -> bool:
        return self._unsafe

    @property
    def quote_cookie(self) -> bool:
        return self._quote_cookie

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Morsel[str]]:
        self._expire(time.time())
        for cookies in list(self._by_domain.values()):
            for cookie in list(cookies.values()):
                yield cookie.morsel

    # --- storing ---

    def update_cookies(self, cookies: LooseCookies, response_url: URL = _NO_URL) -> None:
        host = (response_url.raw_host or "").lower()
        if host and not self._unsafe and _is_ip(host):
            return
        now = time.time()
        for name, value in _morsels(cookies):
            self._store(name, value, host, response_url, now)

    def _store(self, name: str, morsel: Morsel[str], host: str, url: URL, now: float) -> None:
        domain = (morsel["domain"] or "").lower().lstrip(".")
        if domain.endswith("."):
            return  # RFC 6265 5.2.3: a trailing dot makes the attribute unusable
        host_only = False
        if not host:
            domain = domain or ""  # set by the caller, not a response: shared unless it names one
        elif not domain:
            domain, host_only = host, True
        elif host != domain and not host.endswith("." + domain):
            return  # a host may not set cookies for a domain it is not inside
        elif _is_ip(domain) and domain != host:
            return
        path = morsel["path"]
        if not path or not path.startswith("/"):
            path = _default_path(url) if host else "/"
        stored = Morsel()
        stored.set(name, morsel.value, morsel.coded_value)
        for attribute in ("expires", "max-age", "secure", "httponly", "samesite", "comment"):
            if morsel[attribute]:
                stored[attribute] = morsel[attribute]
        stored["domain"] = domain
        stored["path"] = path
        expires = _expiry(morsel, now)
        bucket = self._by_domain.get(domain)
        if expires is not None and expires <= now:
            if bucket is not None and bucket.pop((path, name), None) is not None:
                self._count -= 1
            return
        if bucket is None:
            bucket = self._by_domain[domain] = {}
        if (path, name) not in bucket:
            self._count += 1
        bucket[(path, name)] = _Cookie(stored, host_only, expires)

    # --- sending ---

    def filter_cookies(self, request_url: URL) -> BaseCookie[str]:
        found: SimpleCookie = SimpleCookie()
        if not self._count:
            return found
        now = time.time()
        host = (request_url.raw_host or "").lower()
        secure = request_url.scheme in _SECURE_SCHEMES or (
            bool(self._secure_origins) and str(request_url.origin()) in self._secure_origins
        )
        path = request_url.raw_path or "/"
        domains = [""]
        if host and (self._unsafe or not _is_ip(host)):
            labels = host.split(".")
            domains.extend(".".join(labels[i:]) for i in range(len(labels)))
        matches: list[_Cookie] = []
        for domain in domains:
            bucket = self._by_domain.get(domain)
            if not bucket:
                continue
            for (cookie_path, _), cookie in list(bucket.items()):
                if cookie.expires is not None and cookie.expires <= now:
                    self._drop(domain, cookie)
                    continue
                if cookie.host_only and domain != host:
                    continue
                if cookie.morsel["secure"] and not secure:
                    continue
                if not _path_matches(path, cookie_path):
                    continue
                matches.append(cookie)
        # RFC 6265 5.4: longer paths first; the first cookie of a name wins.
        matches.sort(key=lambda c: len(c.morsel["path"]), reverse=True)
        for cookie in matches:
            morsel = cookie.morsel
            if morsel.key in found:
                continue
            copy: Morsel[str] = Morsel()
            copy.set(morsel.key, morsel.value, morsel.coded_value)
            dict.__setitem__(found, morsel.key, copy)
        return found

    # --- removing ---

    def clear(self, predicate: Callable[[Morsel[str]], bool] | None = None) -> None:
        if predicate is None:
            self._by_domain.clear()
            self._count = 0
            return
        for domain, bucket in list(self._by_domain.items()):
            for cookie in list(bucket.values()):
                if predicate(cookie.morsel):
                    self._drop(domain, cookie)

    def clear_domain(self, domain: str) -> None:
        domain = domain.lower().lstrip(".")
        for name in list(self._by_domain):
            if name == domain or name.endswith("." + domain):
                self._count -= len(self._by_domain.pop(name))

    def _drop(self, domain: str, cookie: _Cookie) -> None:
        bucket = self._by_domain.get(domain)
        if bucket is None:
            return
        if bucket.pop((cookie.morsel["path"], cookie.morsel.key), None) is not None:
            self._count -= 1
        if not bucket:
            del self._by_domain[domain]

    def _expire(self, now: float) -> None:
        for domain, bucket in list(self._by_domain.items()):
            for cookie in list(bucket.values()):
                if cookie.expires is not None and cookie.expires <= now:
                    self._drop(domain, cookie)


def _morsels(cookies: Any) -> Iterator[tuple[str, Morsel[str]]]:
    """(name, morsel) pairs from a mapping, pairs, or a BaseCookie."""
    items = cookies.items() if isinstance(cookies, Mapping) else cookies
    for name, value in items:
        if isinstance(value, Morsel):
            yield name, value
            continue
        holder: SimpleCookie = SimpleCookie()
        try:
            holder[name] = str(value)
        except CookieError:
            continue
        yield name, holder[name]


def parse_set_cookie(values: Iterable[str]) -> SimpleCookie:
    """One SimpleCookie from Set-Cookie header values (bad ones are skipped)."""
    jar: SimpleCookie = SimpleCookie()
    for value in values:
        try:
            jar.load(value)
        except CookieError:
            continue
    return jar
