"""Cookie jars: `CookieJar` (RFC 6265 rules) and `DummyCookieJar` (keeps nothing).

`CookieJar` stores what responses set and gives back what a request may send:

* a cookie without a Domain attribute is *host-only*: sent to exactly the host that set it;
  with one, to that domain and its subdomains, and only if the setting host is a name (not
  an IP address) inside it; a Domain with no dot ("com") is refused, as browsers without a
  public-suffix list refuse it, unless it is the setting host itself (then host-only);
* Path: sent to that path and below (default: the directory of the setting URL's path);
* Secure: sent over https/wss only; Max-Age (preferred) or Expires: dropped once past, and a
  cookie set already expired deletes the stored one;
* RFC 6265bis "Storage Model" (5.7 in draft 22): a secure origin (https/wss, or one in
  `treat_as_secure_origin`) alone may set a Secure cookie, and a non-secure origin cannot set
  (nor delete) a cookie that would shadow a stored Secure cookie of the same name ("strict
  secure cookies"); a `__Secure-` name needs Secure, a `__Host-` name Secure, no Domain and
  Path=/ (prefixes compared case-insensitively). As in aiohttp, http://localhost is not secure
  unless listed in `treat_as_secure_origin`;
* hosts that are IP addresses keep no cookies unless `unsafe=True`;
* cookies given without a URL (`ClientSession(cookies=...)`) are shared with every host,
  and a host's own cookie of the same name wins over them;
* Set-Cookie fields are read by `cookie_parse` (RFC 6265 5.2), not by SimpleCookie;
* at most 180 cookies a domain and 3300 in all (aiohttp's limits); past them cookies go in the
  order of that section's end: expired ones, then a domain's excess (non-Secure before Secure),
  then any, each least recently used first (sent by `filter_cookies`, or else set);
* `save`/`load` use aiohttp's JSON file (so either jar reads the other's): a loaded cookie is
  stored as if `https://<its domain>` had set it, so it passes the rules above again.

Cookies are indexed by domain, so `filter_cookies` costs a few dict look-ups per request.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
import os
import pathlib
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.cookies import BaseCookie, CookieError, Morsel, SimpleCookie
from typing import Any

from yarl import URL

from crawler.http.cookie_parse import make_morsel, parse_cookie_date, parse_set_cookie_headers

__all__ = ["AbstractCookieJar", "CookieJar", "DummyCookieJar", "LooseCookies"]

LooseCookies = (
    Mapping[str, "str | Morsel[str]"] | Iterable[tuple[str, "str | Morsel[str]"]] | BaseCookie
)

_SECURE_SCHEMES = frozenset({"https", "wss"})
_NO_URL = URL()
# Max-Age beyond this (about 3000 years) is "forever"; the cap keeps now + delta a float.
_MAX_DELTA = 10**11
_MAX_AGE_RE = re.compile(r"-?[0-9]+")
# A crawler meets servers that set cookies without end: past these counts cookies go down to
# the quota (so the scan is rare), least recently used first, as aiohttp and Firefox do.
_MAX_PER_DOMAIN, _QUOTA_PER_DOMAIN = 180, 150
_MAX_TOTAL, _QUOTA_TOTAL = 3300, 3000
# RFC 6265bis Storage Model steps 20-22 compare these prefixes case-insensitively (a
# server's "__HOST-" must not slip past a browser that reads it as "__Host-").
_SECURE_PREFIX, _HOST_PREFIX = "__secure-", "__host-"
# aiohttp's cookie file: {"<domain>|<path without trailing />": {name: record}}; a record has
# key, value, coded_value, the truthy attributes below, host_only and expires_timestamp (the
# absolute deadline: Max-Age and Expires, relative or stale, are not saved).
_FILE_STRINGS = ("path", "comment", "domain", "samesite")
_FILE_FLAGS = ("secure", "httponly")
_RELATIVE_EXPIRY = ("expires", "max-age")
# A name or value with one of these could split the Cookie header (aiohttp's _can_send).
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


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
    max_age = str(morsel["max-age"]).strip()
    # RFC 6265 5.2.2: only [-]DIGITS counts; anything else is ignored and Expires applies.
    if max_age and _MAX_AGE_RE.fullmatch(max_age):
        if max_age.startswith("-"):
            return 0.0  # negative: expired already (5.2.2 "earliest representable time")
        # Past 12 digits the cap applies anyway; no int() of 400 digits, no float overflow.
        return now + (min(int(max_age), _MAX_DELTA) if len(max_age) <= 12 else _MAX_DELTA)
    expires = morsel["expires"]
    if expires:
        return parse_cookie_date(str(expires))
    return None


def _domain_matches(host: str, domain: str) -> bool:
    # RFC 6265 5.1.3: a suffix match only between host names, never IP addresses.
    return host == domain or (host.endswith("." + domain) and not _is_ip(host))


def _prefix_allows(name: str, value: str, *, secure: bool, host_only: bool,
                   path_attribute: str) -> bool:
    """RFC 6265bis Storage Model steps 20-22: what a `__Secure-` or `__Host-` name promises.

    A Secure cookie gets here only from a secure origin (step 13 refused the others), so
    `secure` also stands for "set by a secure origin".
    """
    if not name:
        # Step 22: a nameless cookie is sent as its bare value, which a server would read as a
        # prefixed name; no attribute can make that safe.
        return not value[:9].lower().startswith((_SECURE_PREFIX, _HOST_PREFIX))
    lowered = name[:9].lower()
    if lowered.startswith(_SECURE_PREFIX):
        return secure
    if lowered.startswith(_HOST_PREFIX):
        # host_only: no Domain attribute (a public suffix naming the host counts as none, as
        # the Domain step says); the Path attribute itself must be "/", not a default path.
        return secure and host_only and path_attribute == "/"
    return True


def _canonical_domain(domain: str) -> str | None:
    """The Domain attribute as RFC 6265 5.2.3 and 5.1.2 make it; None when unusable."""
    if domain.startswith("."):
        domain = domain[1:]  # one leading dot only: "..example.com" matches no host
    if not domain:
        return ""
    if domain.endswith("."):
        # "example.com." domain-matches no host we would send to (5.3 step 6): drop it.
        return None
    if not domain.isascii():
        # 5.1.2: compare hosts in their A-label (punycode) form, as yarl gives raw_host.
        try:
            return URL.build(scheme="http", host=domain).raw_host
        except (ValueError, UnicodeError):
            return None
    return domain.lower()


@dataclass(slots=True)
class _Cookie:
    morsel: Morsel[str]
    host_only: bool
    expires: float | None
    # The secure-only-flag as stored: the rules read this, not the morsel, which iteration
    # hands out and a caller may change.
    secure: bool
    # RFC 6265 last-access-time as a tick of the jar's clock (set, or sent by filter_cookies),
    # for evicting the least recently used first; a counter never ties or steps back.
    last_access: int


class AbstractCookieJar:
    """What a session needs from a cookie jar."""

    @property
    def unsafe(self) -> bool:
        return False

    @property
    def quote_cookie(self) -> bool:
        return True

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[Morsel[str]]:
        return iter(())

    def update_cookies(self, cookies: LooseCookies, response_url: URL = _NO_URL) -> None:
        """Store cookies (set by a response from `response_url`, or given by the caller)."""

    def update_cookies_from_headers(self, headers: Iterable[str], response_url: URL) -> None:
        """Store the cookies of a response's Set-Cookie fields (several may share a name)."""
        if headers and (cookies := parse_set_cookie_headers(headers)):
            self.update_cookies(cookies, response_url)

    def filter_cookies(self, request_url: URL) -> BaseCookie[str]:
        """The cookies a request to `request_url` may carry."""
        return SimpleCookie()

    def clear(self, predicate: Callable[[Morsel[str]], bool] | None = None) -> None:
        """Remove all cookies, or those for which `predicate(morsel)` is true."""

    def clear_domain(self, domain: str) -> None:
        """Remove the cookies of `domain` and its subdomains."""


class DummyCookieJar(AbstractCookieJar):
    """A jar that keeps nothing: no cookie is stored or sent."""

    def update_cookies_from_headers(self, headers: Iterable[str], response_url: URL) -> None:
        """Ignore the fields without parsing them."""


class CookieJar(AbstractCookieJar):
    """An RFC 6265 cookie jar; `unsafe=True` also keeps cookies of IP-address hosts."""

    def __init__(
        self,
        *,
        unsafe: bool = False,
        quote_cookie: bool = True,
        treat_as_secure_origin: str | URL | Iterable[str | URL] | None = None,
    ) -> None:
        self._unsafe = unsafe
        self._quote_cookie = quote_cookie
        # aiohttp takes one origin as well as several; a str must not be read as characters.
        if treat_as_secure_origin is None:
            origins: Iterable[str | URL] = ()
        elif isinstance(treat_as_secure_origin, str | URL):
            origins = (treat_as_secure_origin,)
        else:
            origins = treat_as_secure_origin
        self._secure_origins = frozenset(str(URL(origin).origin()) for origin in origins)
        # domain -> {(path, name): cookie}; domain "" holds cookies shared with every host.
        self._by_domain: dict[str, dict[tuple[str, str], _Cookie]] = {}
        self._count = 0
        self._clock = 0
        # name -> how many Secure cookies have it: most names have none, so the strict-secure
        # check (a scan of every domain) runs only for a name that has one somewhere.
        self._secure_names: dict[str, int] = {}

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

    def _store(self, name: str, morsel: Morsel[str], host: str, url: URL, now: float,
               deadline: float | None = None) -> None:
        """Store one cookie; `deadline` is a saved jar's absolute expiry, else the morsel's."""
        domain = _canonical_domain(str(morsel["domain"] or ""))
        if domain is None:
            return
        host_only = False
        if not host:
            pass  # set by the caller, not a response: shared unless it names a domain
        elif not domain:
            domain, host_only = host, True
        elif domain == host:
            # 5.3 step 5: a public suffix ("localhost", a TLD) naming the host is host-only.
            host_only = "." not in domain
        elif (not host.endswith("." + domain) or _is_ip(host) or _is_ip(domain)
              or "." not in domain):
            # Not inside it; or an IP host, where "0.0.1" is no parent domain (5.1.3); or a
            # TLD, which would hand the cookie to every site under it.
            return
        path_attribute = str(morsel["path"] or "")
        path = path_attribute
        if not path or not path.startswith("/"):
            path = _default_path(url) if host else "/"
        secure = bool(morsel["secure"])
        if host:
            # RFC 6265bis Storage Model. Cookies given without a URL (ClientSession(cookies=
            # ...)) come from the caller, not from an origin: these rules about origins pass them.
            secure_origin = self._is_secure(url)
            if secure and not secure_origin:
                return  # step 13: an http server (or a network attacker) sets no Secure cookie
            if not secure and not secure_origin and self._shadows_secure(name, domain, path):
                return  # step 16, before the deletion below: nor may it delete one
            if not _prefix_allows(name, morsel.value, secure=secure, host_only=host_only,
                                  path_attribute=path_attribute):
                return  # steps 20-22
        stored = make_morsel(name, morsel.value, morsel.coded_value)
        for attribute in ("expires", "max-age", "secure", "httponly", "samesite", "comment"):
            if morsel[attribute]:
                stored[attribute] = morsel[attribute]
        stored["domain"] = domain
        stored["path"] = path
        expires = deadline if deadline is not None else _expiry(morsel, now)
        bucket = self._by_domain.get(domain)
        if expires is not None and expires <= now:
            if bucket is not None and (old := bucket.get((path, name))) is not None:
                self._drop(domain, old)
            return
        if bucket is None:
            bucket = self._by_domain[domain] = {}
        old = bucket.get((path, name))
        if old is None:
            self._count += 1
        else:
            self._forget_secure(old)
        bucket[(path, name)] = _Cookie(stored, host_only, expires, secure, self._tick())
        if secure:
            self._secure_names[name] = self._secure_names.get(name, 0) + 1
        if len(bucket) > _MAX_PER_DOMAIN:
            self._evict_in_domain(domain, bucket, now)
        if self._count > _MAX_TOTAL:
            self._expire(now)
            if self._count > _MAX_TOTAL:
                self._evict_in_jar()

    def _is_secure(self, url: URL) -> bool:
        """Whether `url` is a secure origin: https/wss, or one named in treat_as_secure_origin."""
        if url.scheme in _SECURE_SCHEMES:
            return True
        if self._secure_origins:
            with contextlib.suppress(ValueError):  # a relative URL has no origin
                return str(url.origin()) in self._secure_origins
        return False

    def _shadows_secure(self, name: str, domain: str, path: str) -> bool:
        """RFC 6265bis Storage Model step 16: is there a Secure cookie `name` this would overlay?

        One whose domain domain-matches `domain` or the other way round (a parent's or a
        subdomain's), and whose path `path` path-matches: a non-secure `a` for /login/en would
        be sent before a Secure `a` for /login, one for / or /foo would not.
        """
        if not self._secure_names.get(name):
            return False
        for other_domain, bucket in self._by_domain.items():
            # "" holds the caller's shared cookies, which no server set and none can overlay.
            if not other_domain or not (_domain_matches(other_domain, domain)
                                        or _domain_matches(domain, other_domain)):
                continue
            for (cookie_path, cookie_name), cookie in bucket.items():
                if cookie_name == name and cookie.secure and _path_matches(path, cookie_path):
                    return True
        return False

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    # --- evicting (the end of RFC 6265bis Storage Model: "remove excess cookies") ---

    def _evict_in_domain(self, domain: str, bucket: dict[tuple[str, str], _Cookie],
                         now: float) -> None:
        """A domain over its limit goes down to its quota.

        Expired cookies first (priority 1), then non-Secure ones (2), then Secure ones (3),
        least recently accessed first within each.
        """
        for cookie in list(bucket.values()):
            if cookie.expires is not None and cookie.expires <= now:
                self._drop(domain, cookie)
        excess = len(bucket) - _QUOTA_PER_DOMAIN
        if excess <= 0:
            return
        for cookie in sorted(bucket.values(), key=_eviction_order)[:excess]:
            self._drop(domain, cookie)

    def _evict_in_jar(self) -> None:
        """The jar over its limit goes down to its quota (expired cookies are gone already).

        Priorities 2 and 3 are a domain's cookies beyond its quota (a domain may hold up to
        180 between evictions), non-Secure before Secure; priority 4 is every cookie; least
        recently accessed first within each.
        """
        ranked: list[tuple[int, int, str, _Cookie]] = []
        for domain, bucket in self._by_domain.items():
            cookies = sorted(bucket.values(), key=_eviction_order)
            over = len(cookies) - _QUOTA_PER_DOMAIN
            for index, cookie in enumerate(cookies):
                priority = (3 if cookie.secure else 2) if index < over else 4
                ranked.append((priority, cookie.last_access, domain, cookie))
        ranked.sort(key=lambda entry: entry[:2])
        for _, _, domain, cookie in ranked[: self._count - _QUOTA_TOTAL]:
            self._drop(domain, cookie)

    # --- sending ---

    def filter_cookies(self, request_url: URL) -> BaseCookie[str]:
        found: SimpleCookie = SimpleCookie()
        if not self._count:
            return found
        if not isinstance(request_url, URL):
            request_url = URL(request_url)  # aiohttp takes a str too (with a warning)
        now = time.time()
        host = (request_url.raw_host or "").lower()
        secure = self._is_secure(request_url)
        path = request_url.raw_path or "/"
        domains = [""]
        if host and not _is_ip(host):
            labels = host.split(".")
            domains.extend(".".join(labels[i:]) for i in range(len(labels)))
        elif host and self._unsafe:
            domains.append(host)  # an IP address has no parent domains to look in
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
                if cookie.secure and not secure:
                    continue
                if not _path_matches(path, cookie_path):
                    continue
                matches.append(cookie)
        # RFC 6265 5.4: longer paths first; the first cookie of a name wins, and at equal
        # paths the more specific domain does, so a host's cookie beats a shared one of the
        # same name (ClientSession(cookies=...)) as in aiohttp.
        matches.sort(key=lambda c: (len(c.morsel["path"]), len(c.morsel["domain"])),
                     reverse=True)
        quote = self._quote_cookie
        sent: list[_Cookie] = []
        for cookie in matches:
            morsel = cookie.morsel
            if morsel.key in found:
                continue
            # quote_cookie=False sends the bare value, as aiohttp does (`a=x y`, not `"x y"`).
            coded = morsel.coded_value if quote else morsel.value
            dict.__setitem__(found, morsel.key, make_morsel(morsel.key, morsel.value, coded))
            sent.append(cookie)
        if sent:
            # RFC 6265 5.4 step 3: what goes out was accessed now (one tick for the request),
            # so a session cookie in use outlives cookies set once and never sent since.
            tick = self._tick()
            for cookie in sent:
                cookie.last_access = tick
        return found

    # --- removing ---

    def clear(self, predicate: Callable[[Morsel[str]], bool] | None = None) -> None:
        if predicate is None:
            self._by_domain.clear()
            self._secure_names.clear()
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
                for cookie in self._by_domain.pop(name).values():
                    self._count -= 1
                    self._forget_secure(cookie)

    def _drop(self, domain: str, cookie: _Cookie) -> None:
        bucket = self._by_domain.get(domain)
        if bucket is None:
            return
        old = bucket.pop((cookie.morsel["path"], cookie.morsel.key), None)
        if old is not None:
            self._count -= 1
            self._forget_secure(old)
        if not bucket:
            del self._by_domain[domain]

    def _forget_secure(self, cookie: _Cookie) -> None:
        if cookie.secure:
            name = cookie.morsel.key
            if (left := self._secure_names.get(name, 0) - 1) > 0:
                self._secure_names[name] = left
            else:
                self._secure_names.pop(name, None)

    def _expire(self, now: float) -> None:
        for domain, bucket in list(self._by_domain.items()):
            for cookie in list(bucket.values()):
                if cookie.expires is not None and cookie.expires <= now:
                    self._drop(domain, cookie)

    # --- persisting (aiohttp's JSON cookie file) ---

    def save(self, file_path: str | os.PathLike[str]) -> None:
        """Write the cookies to `file_path` as aiohttp's `CookieJar.save` does (JSON).

        A new file gets mode 0o600 (it holds session tokens); an existing one keeps its mode,
        as with aiohttp.
        """
        # Serialized first: a failure must not leave a truncated file behind.
        text = json.dumps(self._file_data(time.time()), indent=2, allow_nan=False)
        with open(file_path, "w", encoding="utf-8", opener=_private_opener) as file:
            file.write(text)

    def load(self, file_path: str | os.PathLike[str]) -> None:
        """Replace the jar's cookies with those of a file written by `save` (or aiohttp's).

        Each cookie passes the rules of `update_cookies` as if `https://<its domain>` had set
        it (the caller's, without a URL, when its domain is ""); expired ones are dropped. A
        malformed file raises ValueError (OSError when unreadable) and changes nothing.
        aiohttp's legacy pickle files are refused: unpickling one could run any code.
        """
        data = _read_cookie_file(pathlib.Path(file_path))
        # Filled aside and adopted whole, so a bad record halfway leaves this jar as it was.
        loaded = CookieJar(unsafe=self._unsafe, quote_cookie=self._quote_cookie)
        loaded._secure_origins = self._secure_origins
        loaded._clock = self._clock  # so the clock never steps back across a load
        now = time.time()
        for group, records in data.items():
            domain = _file_domain(group, records)
            url = _loading_origin(domain, group)
            host = (url.raw_host or "").lower()
            if host and not self._unsafe and _is_ip(host):
                continue  # as update_cookies: an IP host keeps no cookies unless unsafe
            for name, record in records.items():
                parsed = _file_morsel(name, record, group)
                if parsed is not None:
                    loaded._store(name, parsed[0], host, url, now, deadline=parsed[1])
        self._by_domain = loaded._by_domain
        self._count = loaded._count
        self._clock = loaded._clock
        self._secure_names = loaded._secure_names

    def _file_data(self, now: float) -> dict[str, dict[str, dict[str, str | bool | float]]]:
        data: dict[str, dict[str, dict[str, str | bool | float]]] = {}
        for domain, bucket in self._by_domain.items():
            # aiohttp keys a path without its trailing "/", so "/a" and "/a/" share a group;
            # of one name in both, "/a" takes it and "/a/" gets a group of its own (aiohttp
            # reads only the domain from a group's key, the path from the record).
            for (path, name), cookie in sorted(bucket.items(),
                                               key=lambda item: item[0][0].endswith("/")):
                if cookie.expires is not None and cookie.expires <= now:
                    continue
                group = data.setdefault(f"{domain}|{path.rstrip('/')}", {})
                if name in group:
                    group = data.setdefault(f"{domain}|{path}", {})
                group[name] = _file_record(cookie, domain, path)
        return data


def _private_opener(path: str, flags: int) -> int:
    # 0o600 from the start (the umask can only narrow it): a chmod after creating the file
    # would leave a moment in which others could open it.
    return os.open(path, flags, 0o600)


def _file_record(cookie: _Cookie, domain: str, path: str) -> dict[str, str | bool | float]:
    """A cookie as aiohttp saves it: only truthy attributes, and the deadline, not Max-Age."""
    morsel = cookie.morsel
    record: dict[str, str | bool | float] = {
        "key": morsel.key, "value": morsel.value, "coded_value": morsel.coded_value,
    }
    # Domain, path and Secure from the jar's own fields: the morsel is handed out by
    # iteration and a caller may have changed it.
    attributes = {"path": path, "comment": morsel["comment"], "domain": domain,
                  "secure": cookie.secure, "httponly": bool(morsel["httponly"]),
                  "samesite": morsel["samesite"]}
    for attribute, value in attributes.items():
        if value:
            record[attribute] = value if isinstance(value, bool) else str(value)
    if cookie.host_only:
        # Without it the cookie would come back a domain cookie, sent to every subdomain.
        record["host_only"] = True
    if cookie.expires is not None:
        record["expires_timestamp"] = cookie.expires
    return record


def _read_cookie_file(path: pathlib.Path) -> dict[str, Any]:
    raw = path.read_bytes()
    # ValueError covers bad UTF-8, bad JSON and an int of over 4300 digits; RecursionError
    # a deep nest of brackets.
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ValueError(
            f"{path}: not a JSON cookie file; this format is not supported (aiohttp's legacy "
            "pickle cookie files are refused, as unpickling one can run code)") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a cookie file holds a JSON object, not {type(data).__name__}")
    return data


def _file_domain(group: str, records: Any) -> str:
    """The domain of a `"<domain>|<path>"` group (the path is the records' business)."""
    domain, bar, _ = group.partition("|")
    if not bar:
        raise ValueError(f"cookie file group {group!r}: the key is not '<domain>|<path>'")
    if not isinstance(records, dict):
        raise ValueError(f"cookie file group {group!r}: cookies are a JSON object by name")
    return domain


def _loading_origin(domain: str, group: str) -> URL:
    # What the rules see as the cookie's origin: https, as aiohttp does. A jar keeps a Secure
    # (or prefixed) cookie only from a secure origin, so one in the file came from one; and
    # the prefix and domain rules still run, so a file cannot plant what no server could.
    if not domain:
        return _NO_URL  # the caller's shared cookies (ClientSession(cookies=...)) had no URL
    try:
        return URL.build(scheme="https", host=domain)
    except (ValueError, UnicodeError) as exc:
        raise ValueError(f"cookie file group {group!r}: {domain!r} is not a host") from exc


def _file_deadline(value: Any, where: str) -> float | None:
    """An expires_timestamp: absent, or a finite number (not a bool, which is an int too)."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):  # an int of 400 digits is no float
            if math.isfinite(deadline := float(value)):  # json reads NaN and Infinity
                return deadline
    raise ValueError(f"{where}: expires_timestamp must be a finite number")


def _file_morsel(name: str, record: Any, group: str) -> tuple[Morsel[str], float | None] | None:
    """A record as a morsel and its deadline; None for a cookie no Cookie header could carry."""
    where = f"cookie {name!r} in {group!r}"
    if not isinstance(record, dict):
        raise ValueError(f"{where}: a cookie is a JSON object")
    key, value, coded = record.get("key"), record.get("value"), record.get("coded_value")
    if not (isinstance(key, str) and isinstance(value, str) and isinstance(coded, str)):
        raise ValueError(f"{where}: key, value and coded_value must be strings")
    if key != name:
        raise ValueError(f"{where}: its key is {key!r}")
    deadline = _file_deadline(record.get("expires_timestamp"), where)
    host_only = record.get("host_only", False)
    if not isinstance(host_only, bool):
        raise ValueError(f"{where}: host_only must be true or false")
    if _CONTROL_RE.search(name + value + coded):
        return None  # a header-splitting cookie: refused, as the parser refuses the field
    morsel = make_morsel(name, value, coded)
    # A record without a deadline may carry Expires or Max-Age (a hand-written file); with
    # one they would be stale, and the deadline wins.
    names = _FILE_STRINGS + _FILE_FLAGS + (_RELATIVE_EXPIRY if deadline is None else ())
    for attribute in names:
        attribute_value = record.get(attribute)
        if attribute_value is None or attribute_value is False or attribute_value == "":
            continue
        if not isinstance(attribute_value, str | bool):
            raise ValueError(f"{where}: {attribute} must be a string or true/false")
        dict.__setitem__(morsel, attribute, attribute_value)
    if host_only:
        morsel["domain"] = ""  # no Domain attribute: _store makes it host-only again
    return morsel, deadline


def _eviction_order(cookie: _Cookie) -> tuple[bool, int]:
    # Within one domain: non-Secure before Secure, then least recently accessed first.
    return cookie.secure, cookie.last_access


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
    """One SimpleCookie from Set-Cookie header values (bad ones are skipped).

    Keyed by name, so of two fields setting one name the last wins: this is
    `ClientResponse.cookies`; the jar reads the fields themselves.
    """
    jar: SimpleCookie = SimpleCookie()
    # dict.update: SimpleCookie.__setitem__ would wrap each Morsel in another one.
    dict.update(jar, parse_set_cookie_headers(values))
    return jar
