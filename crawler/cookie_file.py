"""Cookies from a Netscape cookies.txt (what curl -c, wget --save-cookies and browser add-ons
write), put into our client's cookie jar: `crawl --load-cookies FILE`.

The file is read by the standard library (`http.cookiejar.MozillaCookieJar`, which knows the
`#HttpOnly_` prefix); each cookie goes into the jar as the server that set it would have put
it: a domain cookie (a leading dot, or the include-subdomains flag) for the domain and its
subdomains, any other for its host only, with its path, Secure flag and expiry. Cookies that
have expired are left out; those with no expiry (0) last the crawl.

A JSON file, as `crawler.http.CookieJar.save` (or aiohttp's `CookieJar.save`) writes it, is
read by the jar's own `load`: a session scripted with our client (a log-in, say) hands its
cookies to a crawl that way. It is told from a cookies.txt by its first character, "{".
"""

from __future__ import annotations

import http.cookiejar
import time
from http.cookies import Morsel
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # settings check files with this module: it stays free of the client
    from crawler.http import AbstractCookieJar

__all__ = ["CookieFileError", "load_cookie_file", "read_cookie_file"]


class CookieFileError(ValueError):
    """The file is not a Netscape cookies.txt (or cannot be read)."""


def read_cookie_file(path: str | Path) -> list[http.cookiejar.Cookie]:
    """The unexpired cookies of a cookies.txt, or CookieFileError saying why not; a JSON cookie
    file is checked (read into a jar) and gives no cookies here (see `load_cookie_file`)."""
    if _is_json(path):
        _load_json(path, _fresh_jar())
        return []
    jar = http.cookiejar.MozillaCookieJar(str(path))
    try:
        jar.load(ignore_discard=True, ignore_expires=True)
    except (http.cookiejar.LoadError, OSError, UnicodeDecodeError) as error:
        raise CookieFileError(f"cannot read cookies from {path}: {error}") from None
    now = time.time()
    return [cookie for cookie in jar if not cookie.expires or cookie.expires > now]


def load_cookie_file(path: str | Path, jar: AbstractCookieJar) -> int:
    """Put the file's cookies into `jar`; how many there were."""
    from yarl import URL

    if _is_json(path):
        return _load_json(path, jar)
    cookies = read_cookie_file(path)
    for cookie in cookies:
        host = cookie.domain.lstrip(".").lower()
        morsel: Morsel[str] = Morsel()
        morsel.set(cookie.name, cookie.value or "", cookie.value or "")
        morsel["path"] = cookie.path or "/"
        if cookie.domain_specified or cookie.domain_initial_dot:
            morsel["domain"] = host  # the domain and its subdomains
        if cookie.secure:
            morsel["secure"] = True
        if cookie.expires:
            morsel["max-age"] = str(max(1, int(cookie.expires - time.time())))
        scheme = "https" if cookie.secure else "http"
        jar.update_cookies({cookie.name: morsel}, URL.build(scheme=scheme, host=host, path="/"))
    return len(cookies)


def _is_json(path: str | Path) -> bool:
    """Whether the file starts (after blanks) with "{": a cookies.txt never does."""
    try:
        with open(path, "rb") as file:
            head = file.read(512)
    except OSError as error:
        raise CookieFileError(f"cannot read cookies from {path}: {error}") from None
    return head.lstrip().startswith(b"{")


def _fresh_jar() -> AbstractCookieJar:
    from crawler.http import CookieJar  # only for a JSON file: settings stay free of the client

    return CookieJar(unsafe=True)  # as a crawl's own jar: IP-address hosts keep cookies too


def _load_json(path: str | Path, jar: AbstractCookieJar) -> int:
    """`jar.load(path)` (its cookies replace the jar's), with its errors as CookieFileError."""
    load = getattr(jar, "load", None)
    if load is None:
        raise CookieFileError(f"{path}: a JSON cookie file needs a CookieJar, not {jar!r}")
    try:
        load(path)
    except (ValueError, OSError) as error:
        raise CookieFileError(f"cannot read cookies from {path}: {error}") from None
    return len(jar)
