"""URL canonicalization and fingerprints: one spelling per resource, one 128-bit identity per URL.

Two URLs that any sane server treats as the same resource get the same canonical string, so the
frontier fetches each page once. The rules (RFC 3986 section 6 plus what browsers do with
links found in pages):

- ASCII tab/CR/LF are removed and leading/trailing spaces and C0 controls stripped (WHATWG);
  in http(s) a backslash before the query is a slash, as browsers read it.
- Scheme and host are lower-cased; hosts are parsed as WHATWG's host parser does: escapes
  decoded, non-ASCII through UTS #46 ToASCII (the `idna` tables, with the browsers' lenient
  flags), a host whose last label is a number read as an IPv4 address in any of the forms
  browsers accept ("127.1", "0x7f.1", "2130706433" are all 127.0.0.1) and written dotted;
  a trailing dot on the host is dropped; IPv6 literals are written in their compressed form.
- The default port (80 for http, 443 for https) is dropped; an empty path becomes ``/``.
- Percent-encoding is normalized: escapes of unreserved characters are decoded, other escapes
  get upper-case hex, and characters that may not appear literally are escaped as UTF-8; "'"
  in the query is escaped too, as browsers send it in http(s) queries (WHATWG's special-query
  set). Userinfo is written as WHATWG writes it: no "@" when it is empty, no ":" when the
  password is.
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
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

import idna
from idna.core import check_bidi, check_initial_combiner, valid_contextj

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
# Browsers escape "'" in http(s) queries (WHATWG's special-query percent-encode set) though
# RFC 3986 allows it: "?a'b" and "?a%27b" are different bytes to a server, and the second is
# what a browser requests.
_QUERY_SAFE = (_PATH_SAFE | frozenset("?")) - frozenset("'")
# What WHATWG's userinfo percent-encode set leaves literal (it escapes ";", "=" and a second
# ":"); the first ":" separates the password and is written by `_userinfo`.
_USERINFO_SAFE = _UNRESERVED | frozenset("!$&'()*+,")
_HEXDIGITS = frozenset("0123456789ABCDEFabcdef")

# Components made only of characters that may stay literal need no work at all (the common case).
_PATH_CLEAN = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")
_QUERY_CLEAN = re.compile(r"[A-Za-z0-9\-._~!$&()*+,;=:@/?]*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
_STRIP = "".join(chr(c) for c in range(0x21))  # C0 controls and space
# WHATWG's forbidden domain code points: forbidden host code points, C0 controls, "%" (once
# escapes have been decoded) and DEL.
_FORBIDDEN_HOST = frozenset("\x00\t\n\r #/:<>?@[\\]^|%\x7f") | frozenset(
    chr(c) for c in range(0x20)
)


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

    netloc = f"{_userinfo(userinfo)}{host}" if at else host
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


def _userinfo(userinfo: str) -> str:
    """The userinfo as WHATWG serializes it, "@" included: "u:@" is "u@", ":@" and "@" are
    nothing (the same credentials, so the same request)."""
    user, _, password = userinfo.partition(":")
    user = _normalize_escapes(user, _USERINFO_SAFE, None)
    if password:
        return f"{user}:{_normalize_escapes(password, _USERINFO_SAFE, None)}@"
    return f"{user}@" if user else ""


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
    """WHATWG's host parser for a special scheme, plus our dedupe rule (no trailing dot)."""
    if host.startswith("["):
        # ipaddress takes "fe80::1%eth0" (a zone), which no browser parses in a URL.
        if "%" in host:
            raise _BadHost(f"bad IPv6 literal {host!r}")
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
    host = host.lower() if host.isascii() else _domain_to_ascii(host)
    if not _FORBIDDEN_HOST.isdisjoint(host):
        raise _BadHost(f"bad host {host!r}")
    if _ends_in_a_number(host):
        return _ipv4(host)
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]
    # Empty labels are kept by browsers but name nothing DNS can answer for: rejected.
    if not host or ".." in host or host.startswith("."):
        raise _BadHost(f"bad host {host!r}")
    return host


_BIDI_RTL = frozenset({"R", "AL", "AN"})


def _domain_to_ascii(host: str) -> str:
    """UTS #46 ToASCII with the flags WHATWG URL gives it (CheckHyphens, UseSTD3ASCIIRules and
    VerifyDnsLength off; CheckBidi, CheckJoiners on; nontransitional).

    `idna.encode` applies IDNA 2008's stricter code point rules on top, which reject hosts that
    browsers open ("☃.net", "ä_b.test", "-ä.test"), so only idna's UTS #46 mapping table and
    its contextual checks are used here.
    """
    try:
        mapped = idna.uts46_remap(host, std3_rules=False)
        bidi = any(unicodedata.bidirectional(char) in _BIDI_RTL for char in mapped)
        labels = []
        for label in mapped.split("."):
            if label.isascii():
                labels.append(label)
                continue
            check_initial_combiner(label)
            for position, char in enumerate(label):
                if char in "\u200c\u200d" and not valid_contextj(label, position):
                    raise _BadHost("bad joiner in international host name")
            if bidi:
                check_bidi(label, check_ltr=True)
            labels.append("xn--" + label.encode("punycode").decode("ascii"))
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        raise _BadHost(f"bad international host name ({exc})") from None
    return ".".join(labels)


def _ends_in_a_number(host: str) -> bool:
    """WHATWG's "ends in a number": whether the host is to be read as an IPv4 address."""
    last = host[:-1] if host.endswith(".") else host
    last = last.rpartition(".")[2]
    if not last:
        return False
    if last.isascii() and last.isdigit():
        return True
    return last[:2] in ("0x", "0X") and all(char in _HEXDIGITS for char in last[2:])


def _ipv4(host: str) -> str:
    """WHATWG's IPv4 parser: 1 to 4 decimal, octal ("0177") or hex ("0x7f") numbers, the last
    one filling the remaining bytes; written as a dotted quad."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4:
        raise _BadHost(f"bad IPv4 address {host!r}")
    numbers = [_ipv4_number(part, host) for part in parts]
    if any(number > 255 for number in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise _BadHost(f"bad IPv4 address {host!r}")
    address = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        address += number << (8 * (3 - index))
    return str(ipaddress.IPv4Address(address))


def _ipv4_number(part: str, host: str) -> int:
    radix = 10
    if part[:2] in ("0x", "0X"):
        part, radix = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        part, radix = part[1:], 8
    if not part:
        if radix == 10:  # an empty part ("1..2"), not "0x" or "0"
            raise _BadHost(f"bad IPv4 address {host!r}")
        return 0
    digits = "0123456789abcdefABCDEF"[: 22 if radix == 16 else radix]
    if not all(char in digits for char in part):
        raise _BadHost(f"bad IPv4 address {host!r}")
    return int(part, radix)


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
