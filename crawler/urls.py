"""URL canonicalization and fingerprints: one spelling per resource, one 128-bit identity per URL.

Two URLs that any sane server treats as the same resource get the same canonical string, so the
frontier fetches each page once. The rules (RFC 3986 section 6 plus what browsers do with
links found in pages):

- ASCII tab/CR/LF are removed and leading/trailing spaces and C0 controls stripped (WHATWG);
  in http(s) a backslash before the query is a slash, as browsers read it.
- Scheme and host are lower-cased; non-ASCII hosts go through IDNA (UTS #46, via `idna`);
  a trailing dot on the host is dropped; IPv6 literals are written in their compressed form.
- The default port (80 for http, 443 for https) is dropped; an empty path becomes ``/``.
- Percent-encoding is normalized: escapes of unreserved characters are decoded, other escapes
  get upper-case hex, and characters that may not appear literally are escaped as UTF-8.
- Dot segments are removed after that (so ``%2E%2E`` counts as ``..``), the fragment is
  dropped, and the query keeps its order unless ``sort_query`` is asked for.

`canonicalize` is idempotent: feeding its output back returns the same string. A fingerprint is
the blake2b-128 digest of the canonical URL, so it is stable across processes, machines and
releases as long as these rules do not change.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote

import idna

__all__ = [
    "FINGERPRINT_SIZE",
    "InvalidURL",
    "UnsupportedScheme",
    "UrlParts",
    "canonical_parts",
    "canonicalize",
    "fingerprint",
    "fingerprint_canonical",
    "host_key",
]

FINGERPRINT_SIZE = 16  # bytes: blake2b-128

DEFAULT_PORTS = {"http": 80, "https": 443}
SUPPORTED_SCHEMES = frozenset(DEFAULT_PORTS)


class InvalidURL(ValueError):
    """The text is not a URL we can canonicalize (no host, bad port, bad IDNA host...)."""


class UnsupportedScheme(InvalidURL):
    """A well-formed URL whose scheme is not http or https (mailto:, javascript:, ftp:...)."""


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SUB_DELIMS = frozenset("!$&'()*+,;=")
_PATH_SAFE = _UNRESERVED | _SUB_DELIMS | frozenset(":@/")
_QUERY_SAFE = _PATH_SAFE | frozenset("?")
_USERINFO_SAFE = _UNRESERVED | _SUB_DELIMS | frozenset(":")
_HEXDIGITS = frozenset("0123456789ABCDEFabcdef")

# Components made only of characters that may stay literal need no work at all (the common case).
_PATH_CLEAN = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")
_QUERY_CLEAN = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
_STRIP = "".join(chr(c) for c in range(0x21))  # C0 controls and space
# WHATWG's forbidden host code points, plus "%" once escapes have been decoded.
_FORBIDDEN_HOST = frozenset("\x00\t\n\r #/:<>?@[\\]^|%") | frozenset(chr(c) for c in range(0x20))


@dataclass(frozen=True, slots=True)
class UrlParts:
    """A canonical URL and the pieces the frontier keys things by."""

    url: str
    scheme: str
    host: str  # canonical host, no port, IPv6 in brackets
    port: int  # effective port (the default one when the URL has none)

    @property
    def host_key(self) -> str:
        """Politeness key: the host, plus the port when it is not the scheme's default.

        http://a.example and https://a.example share one key (one server, one politeness
        budget), while two servers on different ports of one address are two hosts.
        """
        if self.port == DEFAULT_PORTS.get(self.scheme):
            return self.host
        return f"{self.host}:{self.port}"

    @property
    def origin(self) -> str:
        """scheme://host[:port], the unit robots.txt applies to (RFC 9309)."""
        if self.port == DEFAULT_PORTS.get(self.scheme):
            return f"{self.scheme}://{self.host}"
        return f"{self.scheme}://{self.host}:{self.port}"


def canonicalize(url: str, *, sort_query: bool = False) -> str:
    """The canonical spelling of an http(s) URL; raises InvalidURL / UnsupportedScheme."""
    return canonical_parts(url, sort_query=sort_query).url


def fingerprint(url: str, *, sort_query: bool = False) -> bytes:
    """blake2b-128 of the canonical URL (16 bytes); equal for equivalent spellings."""
    return fingerprint_canonical(canonicalize(url, sort_query=sort_query))


def fingerprint_canonical(canonical_url: str) -> bytes:
    """Fingerprint of a URL that is already canonical (skips the canonicalization work)."""
    return hashlib.blake2b(canonical_url.encode("ascii"), digest_size=FINGERPRINT_SIZE).digest()


def host_key(url: str) -> str:
    """The politeness key (host[:non-default port]) of any http(s) URL."""
    return canonical_parts(url).host_key


def canonical_parts(url: str, *, sort_query: bool = False) -> UrlParts:
    """Canonicalize `url` and return it with its scheme, host and effective port."""
    if not isinstance(url, str):
        raise InvalidURL(f"URL must be a string, not {type(url).__name__}")
    text = _TAB_NEWLINE.sub("", url.strip(_STRIP))
    scheme, sep, rest = text.partition(":")
    if not sep or not _SCHEME.fullmatch(scheme):
        raise InvalidURL(f"not an absolute URL: {url!r}")
    scheme = scheme.lower()
    if scheme not in SUPPORTED_SCHEMES:
        raise UnsupportedScheme(f"unsupported URL scheme {scheme!r} in {url!r}")

    rest, _, _fragment = rest.partition("#")
    rest, has_query, query = rest.partition("?")
    rest = rest.replace("\\", "/")
    if not rest.startswith("//"):
        raise InvalidURL(f"URL has no host: {url!r}")
    authority, slash, path = rest[2:].partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    host, port = _split_port(hostport, url)
    host = _canonical_host(host, url)
    effective_port = DEFAULT_PORTS[scheme] if port is None else port

    netloc = host
    if at:
        netloc = f"{_normalize_escapes(userinfo, _USERINFO_SAFE, None)}@{host}"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"

    path = _remove_dot_segments(_normalize_escapes(slash + path, _PATH_SAFE, _PATH_CLEAN) or "/")
    canonical = f"{scheme}://{netloc}{path}"
    if has_query:
        query = _normalize_escapes(query, _QUERY_SAFE, _QUERY_CLEAN)
        if sort_query:
            query = "&".join(sorted(query.split("&")))
        if query:
            canonical = f"{canonical}?{query}"
    return UrlParts(url=canonical, scheme=scheme, host=host, port=effective_port)


def _split_port(hostport: str, url: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise InvalidURL(f"unclosed IPv6 literal in {url!r}")
        host, tail = hostport[: end + 1], hostport[end + 1 :]
        if tail and not tail.startswith(":"):
            raise InvalidURL(f"junk after IPv6 literal in {url!r}")
        port_text = tail[1:]
    else:
        host, _, port_text = hostport.partition(":")
    if not port_text:
        return host, None
    if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
        raise InvalidURL(f"bad port {port_text!r} in {url!r}")
    return host, int(port_text)


def _canonical_host(host: str, url: str) -> str:
    try:
        return _host_form(host)
    except _BadHost as exc:
        raise InvalidURL(f"{exc} in {url!r}") from None


class _BadHost(ValueError):
    """Why a host is not valid, without the URL (added by the caller)."""


# A crawl sees the same few thousand hosts over and over: the host form is cached (a bad host
# raises, and exceptions are not cached).
@functools.lru_cache(maxsize=16384)
def _host_form(host: str) -> str:
    if host.startswith("["):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise _BadHost(f"bad IPv6 literal {host!r}") from None
        return f"[{address.compressed}]"
    if "%" in host:
        try:
            host = unquote(host, errors="strict")
        except UnicodeDecodeError:
            raise _BadHost("bad escape in host") from None
    if host.isascii():
        host = host.lower()
    else:
        try:
            host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            raise _BadHost(f"bad international host name ({exc})") from None
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]
    if not host:
        raise _BadHost("no host")
    if not _FORBIDDEN_HOST.isdisjoint(host) or ".." in host or host.startswith("."):
        raise _BadHost(f"bad host {host!r}")
    return host


def _normalize_escapes(text: str, safe: frozenset[str], clean: re.Pattern[str] | None) -> str:
    """Decode escapes of unreserved characters, upper-case the others, escape the unsafe."""
    if clean is not None and clean.fullmatch(text):
        return text
    out: list[str] = []
    i, end = 0, len(text)
    while i < end:
        ch = text[i]
        if ch == "%" and i + 2 < end and text[i + 1] in _HEXDIGITS and text[i + 2] in _HEXDIGITS:
            decoded = chr(int(text[i + 1 : i + 3], 16))
            out.append(decoded if decoded in _UNRESERVED else "%" + text[i + 1 : i + 3].upper())
            i += 3
            continue
        if ch in safe:
            out.append(ch)
        else:
            out.append("".join(f"%{b:02X}" for b in _char_bytes(ch)))
        i += 1
    return "".join(out)


def _char_bytes(ch: str) -> bytes:
    """A character's UTF-8 bytes; a lone surrogate U+DC80..U+DCFF is the raw byte it stands
    for (Python decodes argv and file names with surrogateescape, so `caf\xe9` typed in a
    Latin-1 terminal reaches us as `caf\udce9` and was meant as `%E9`)."""
    try:
        return ch.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # another lone surrogate: no byte to give back, keep it visible
        return ch.encode("utf-8", "surrogatepass")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 for an absolute path; a trailing "." or ".." leaves a trailing slash."""
    if "." not in path:
        return path
    segments = path.split("/")
    last = len(segments) - 1
    output: list[str] = []
    for index, segment in enumerate(segments):
        if segment == "." or segment == "..":
            if segment == ".." and len(output) > 1:
                output.pop()
            if index == last:
                output.append("")
            continue
        output.append(segment)
    return "/".join(output)
