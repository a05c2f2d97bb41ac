"""Link extraction from HTML pages, with selectolax's lexbor parser.

`extract_links(html, page_url)` returns the absolute http(s) URLs a page links to, in document
order, without fragments and without duplicates. `extract_links_from_body(body, page_url,
content_type)` does the same from the raw bytes of a response, choosing the text encoding the way a
browser does. `is_html(content_type, head)` tells a worker whether a body is worth parsing.
`extract_page` and `extract_page_from_body` return the same links and, apart from them, the
page's `<meta http-equiv="refresh">` target (see `PageLinks`), found in the same walk.

Resolution follows RFC 3986 section 5.2 (the tests check the RFC's own examples), dot segments
removed from absolute references too, with the clean-ups browsers apply to attribute values:
surrounding whitespace and control characters are stripped, tabs and newlines inside are removed,
and backslashes before the query count as slashes. Results made of URL-safe ASCII with a plain host
are kept as strings (the per-page fast path); anything else is canonicalized by `crawler.urls`,
which percent-encodes spaces and non-ASCII (as UTF-8) and parses hosts as browsers do (escapes,
IDNA, IPv4 numbers); tests/test_urls_whatwg.py checks the results against a WHATWG URL parser.

The query is the exception to UTF-8 (WHATWG URL, "percent-encode after encoding"): in a document
of a legacy encoding (windows-1252, Shift_JIS, ...) a browser encodes the query of its links in
that encoding, and writes what the encoding cannot hold as "%26%23NNNN%3B" (the character
reference "&#NNNN;"). `extract_links(..., encoding=...)` does the same; the path stays UTF-8.

What is not returned: non-http(s) schemes (`javascript:`, `mailto:`, `data:`, `ftp:` ...), empty
and fragment-only references to the page itself, URLs without a valid host or port, and, when
`honor_nofollow` is set, links with `rel="nofollow"` (all links when the page's
`<meta name="robots">` says `nofollow` or `none`).
"""

from __future__ import annotations

import codecs
import functools
import re
from dataclasses import dataclass
from urllib.parse import quote_from_bytes

import yarl
from selectolax.lexbor import LexborHTMLParser

from crawler import encodings
from crawler.refresh import Refresh, parse_refresh

# `_host_form` is the cached WHATWG host parser (raises ValueError for a host browsers reject).
from crawler.urls import InvalidURL, _host_form, canonicalize

__all__ = [
    "PageLinks",
    "extract_links",
    "extract_links_from_body",
    "extract_page",
    "extract_page_from_body",
    "extract_refresh_from_body",
    "html_encoding",
    "is_html",
    "resolve_link",
]

# The elements whose href (or src) is a link; <base> and <meta> (for a refresh) are among them so
# a single pass in document order finds them wherever they are.
_LINK_TAGS = frozenset({"base", "meta", "a", "area", "link", "frame", "iframe"})
_SRC_TAGS = frozenset({"frame", "iframe"})
_HTTP_SCHEMES = frozenset({"http", "https"})

# Characters a URL may carry as they are (RFC 3986 unreserved + reserved + '%'); '#' is excluded
# because fragments are cut before this check.
_SAFE_URL = re.compile(r"[A-Za-z0-9\-._~:/?\[\]@!$&'()*+,;=%]*")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
# scheme://host[:port] with a plain DNS name, IPv4 or bracketed IPv6 literal: the fast path.
_ORIGIN = re.compile(
    r"(https?)://((?:[A-Za-z0-9_\-]+\.)*[A-Za-z0-9_\-]+\.?|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?(?=[/?]|$)",
    re.ASCII,
)
# How a host ending in a number (decimal, hex "0x7f" or "0x", a trailing dot) or an IPv6
# literal ends.
_NUMBER_END = frozenset("0123456789abcdefABCDEFxX.]")
# A '.' or '..' segment in a path: needs RFC 3986 remove_dot_segments.
_DOT_SEGMENT = re.compile(r"/\.\.?(?:/|$)")
# What browsers strip from both ends of an attribute URL (C0 controls and space).
_STRIP = "".join(chr(c) for c in range(0x21))
_REMOVE_INSIDE = str.maketrans("", "", "\t\n\r")
_NEEDS_CLEANING = re.compile(r"[\t\n\r\\]")


# Resolved references remembered across pages (see `_resolve_all`): most links of a site are
# the same few hundred navigation references on every page. Cleared, not evicted, when full;
# full is a few MB (about 5 MB for 20,000 article-length URLs).
_RESOLVED_MAX = 20_000
_resolved: dict[tuple[str, str, bool], str | None] = {}
_ABSOLUTE = ("http://", "https://")


class _Base:
    """A base URL cut into the prefixes that relative references are glued onto."""

    __slots__ = ("climbs", "directory", "origin", "plain", "scheme", "url", "without_query")

    def __init__(self, url: str) -> None:
        scheme, separator, rest = url.partition("://")
        scheme = scheme.lower()
        if scheme not in _HTTP_SCHEMES or not separator or not rest:
            raise ValueError(f"not an absolute http(s) URL: {url[:200]!r}")
        self.url = url = f"{scheme}://{rest}"
        self.scheme = scheme
        authority_end = len(rest)
        for stop in "/?#":
            position = rest.find(stop)
            if 0 <= position < authority_end:
                authority_end = position
        self.origin = f"{scheme}://{rest[:authority_end]}"
        path = rest[authority_end:].partition("#")[0].partition("?")[0] or "/"
        self.without_query = self.origin + path
        self.directory = self.origin + path[: path.rfind("/") + 1]
        # A base that passes the fast check lets URL-safe relative references skip it.
        self.plain = _ORIGIN.match(url) is not None and _SAFE_URL.fullmatch(url) is not None
        # Whether "../x" may be cached as "x" against the parent directory (`_climbed_key`).
        folders = self.directory[len(self.origin) :]
        self.climbs = self.plain and "%" not in folders and "/." not in folders


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 for an absolute path ("/a/./b/../c" -> "/a/c")."""
    segments = path.split("/")
    output: list[str] = []
    for segment in segments[1:]:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    if segments[-1] in (".", ".."):
        # A last "." or ".." leaves an empty last segment, even after an empty one: "/a/.//."
        # is "/a//" (RFC 3986 5.2.4 and WHATWG both), not "/a/".
        output.append("")
    return "/" + "/".join(output)


def _without_dot_segments(url: str) -> str:
    """`url` (absolute, no fragment) with its path's dot segments removed, when it has any."""
    authority_start = url.find("//") + 2
    path_start = len(url)
    for stop in "/?":
        position = url.find(stop, authority_start)
        if 0 <= position < path_start:
            path_start = position
    path_end = url.find("?", path_start)
    if path_end < 0:
        path_end = len(url)
    path = url[path_start:path_end]
    if not path or _DOT_SEGMENT.search(path) is None:
        return url
    return url[:path_start] + _remove_dot_segments(path) + url[path_end:]


def _checked(url: str) -> str | None:
    """`url` (absolute, no fragment) if it is a well-formed http(s) URL, else None.

    Plain URLs pass as they are (an empty path becomes "/", RFC 3986 6.2.3, so both spellings
    dedupe), unless their host is an IP literal or ends in a number, which `crawler.urls`
    parses as a browser does ("http://127.1/" is 127.0.0.1, "http://1.2.3.256/" is no URL).
    Others are canonicalized by `crawler.urls`: percent-encoded as UTF-8, escapes and IDNA in
    the host resolved, host and port checked (the WHATWG host parser; the test is
    tests/test_urls_whatwg.py).
    """
    if "/." in url:
        url = _without_dot_segments(url)
    origin = _ORIGIN.match(url)
    if origin is not None and _SAFE_URL.fullmatch(url) is not None:
        port = origin.group(3)
        if port is not None and int(port) > 65535:
            return None
        host = origin.group(2)
        # An IPv6 literal or a host that may end in a number (an IPv4 address, "127.1"...)
        # ends with one of these; most names (".com", ".org") are told apart by that alone,
        # the others by the cache of `_ip_host`.
        if host[-1] in _NUMBER_END:
            parsed_host = _ip_host(host)
            if parsed_host is None:
                return None
            if parsed_host != host:
                url = url[: origin.start(2)] + parsed_host + url[origin.end(2) :]
                origin = _ORIGIN.match(url)
                if origin is None:  # cannot happen: a canonical IP literal is a plain host
                    return None
        end = origin.end()
        if end == len(url) or url[end] == "?":
            url = url[:end] + "/" + url[end:]
        return url
    if url[-1] <= " ":
        # Spaces and controls that were before a "#" are part of the URL (the strip of the
        # attribute value is done): canonicalize would strip them again, a browser escapes them.
        kept = url.rstrip(_STRIP)
        url = kept + "".join(f"%{ord(char):02X}" for char in url[len(kept) :])
    try:
        return canonicalize(url)
    except InvalidURL:
        return None


@functools.lru_cache(maxsize=4096)
def _ip_host(host: str) -> str | None:
    """`host` (plain: letters, digits, "-_." or an IPv6 literal) as the WHATWG host parser
    reads it: itself when the parser keeps it ("127.0.0.1", "example.de"), the address when
    it rewrites it ("127.1" is "127.0.0.1"), None when it rejects it ("1.2.3.256",
    "[1::2::3]", "foo.09")."""
    try:
        canonical = _host_form(host)
    except ValueError:
        return None
    return host if canonical == host.lower() else canonical


def _relative(ref: str, base: _Base) -> str | None:
    """A reference without scheme or authority (RFC 3986 5.2.2's merge, by concatenation)."""
    if ref.startswith("/"):
        url = base.origin + ref
    elif ref.startswith("?"):
        url = base.without_query + ref
    elif not ref:
        return base.url
    else:
        url = base.directory + ref
    if base.plain and _SAFE_URL.fullmatch(ref) is not None:
        return _without_dot_segments(url) if "/." in url else url
    return _checked(url)


def _resolve(raw: str, base: _Base) -> str | None:
    """One attribute value made absolute against `base`, or None when it is not an http(s) link."""
    ref = raw.strip(_STRIP)
    if not ref:
        return None
    if _NEEDS_CLEANING.search(ref) is not None:
        # Browsers drop tabs and newlines anywhere and read '\\' as '/' before the query.
        ref = ref.translate(_REMOVE_INSIDE)
        before, mark, after = ref.partition("?")
        ref = before.replace("\\", "/") + mark + after
    ref = ref.partition("#")[0]
    if ref.startswith("//"):
        if ref.startswith("/", 2):
            # Browsers skip any number of slashes before the host of an http(s) URL
            # ("///host/", WHATWG's "special authority ignore slashes" state).
            ref = "//" + ref.lstrip("/")
        return _checked(base.scheme + ":" + ref)
    scheme_match = _SCHEME.match(ref)
    if scheme_match is None:
        return _relative(ref, base)
    scheme = scheme_match.group(1).lower()
    if scheme not in _HTTP_SCHEMES:
        return None
    rest = ref[scheme_match.end() :]
    if rest.startswith("//"):
        return _checked(scheme + ":" + rest)
    if scheme != base.scheme:
        # "https:foo" on an http page has no authority to resolve against.
        return None
    # "http:foo" on an http page is a relative reference (RFC 3986 5.2.2, non-strict).
    return _relative(rest, base)


def _resolve_all(refs: list[str], base: _Base) -> list[str | None]:
    """`_resolve` of each reference, from the shared cache where possible.

    The result of `_resolve(ref, base)` depends on `ref` and on one prefix of the base: the
    origin for references starting with "/" (absolute paths, and scheme-relative ones, which
    depend only on the scheme it holds), the directory for relative paths that start with a
    character other than "?", "#" or whitespace and have no ":" (and for "http://" and
    "https://" URLs, which depend on nothing of it), plus whether the base is plain. Those are
    the cache keys. The rest depend on more of the base ("?query", "", "http:?q" resolve
    against its path or whole URL) or are rare, and are resolved each time.

    Before the cache come shortcuts for the usual links, for less than a cache lookup costs:
    on a plain page, a URL-safe path without ":" or dot segments resolves to the origin or the
    directory glued to it, and on any page a URL-safe "http://" or "https://" URL needs only
    `_checked`; both are exactly what `_resolve` would build.
    """
    cache = _resolved
    if len(cache) > _RESOLVED_MAX:
        cache.clear()
    origin, directory, plain = base.origin, base.directory, base.plain
    climbs = base.climbs
    safe = _SAFE_URL.fullmatch
    out: list[str | None] = []
    for ref in refs:
        core = ref.partition("#")[0] if "#" in ref else ref
        if core and safe(core) is not None:
            if ":" not in core:
                url = _glued(core, origin, directory, climbs) if plain else None
                if url is not None:
                    out.append(url)
                    continue
            elif core.startswith(_ABSOLUTE):
                # Nothing for `_resolve` to clean up: only the checks of `_checked` are left.
                out.append(_checked(core))
                continue
        first = ref[:1]
        if first == "/":
            key = (origin, ref, plain)
        elif ref.startswith(_ABSOLUTE):
            key = ("", ref, False)  # an http(s) URL resolves the same against any base
        elif first > " " and first not in "?#" and ":" not in ref:
            key = (directory, ref, plain)
            if climbs and first == "." and ref.startswith("../") and _SAFE_URL.fullmatch(ref):
                key = _climbed_key(ref, directory, len(origin), plain)
        else:
            out.append(_resolve(ref, base))
            continue
        try:
            out.append(cache[key])
        except KeyError:
            cache[key] = url = _resolve(ref, base)
            out.append(url)
    return out


def _glued(core: str, origin: str, directory: str, climbs: bool) -> str | None:
    """`core` (URL-safe, no ":" or "#") against a plain base by concatenation, or None when
    that would not be what `_resolve` gives (a scheme-relative or "?" reference, or dot
    segments left to remove)."""
    first = core[0]
    if first == "/":
        if core[1:2] == "/":
            return None
        url = origin + core
    elif first == "?":
        return None
    elif climbs and first == "." and core.startswith("../"):
        parent, rest, _plain = _climbed_key(core, directory, len(origin), True)
        url = parent + rest
    else:
        url = directory + core
    return None if "/." in url else url


def _climbed_key(
    ref: str, directory: str, origin_length: int, plain: bool
) -> tuple[str, str, bool]:
    """The cache key of a "../rest" reference: "rest" against the parent directory.

    RFC 3986's remove_dot_segments turns "/a/b/" + "../rest" into "/a/" + "rest" (and "/" +
    "../rest" into "/" + "rest"): a ".." just drops the directory's last segment, as long as
    that directory holds no dot segments and no percent-escapes that could decode to them
    (`_Base.climbs`), and the reference is URL-safe as it is (no clean-up, such as '\\' to '/',
    changes it first). Keyed so, the pages of sibling folders share their "../" links.
    """
    path = directory[origin_length:]
    while ref.startswith("../"):
        rest = ref[3:]
        if rest[:1] in ("", "/", "?", "#"):
            break  # "../", "..//x", "../?q": resolved against more than a directory
        ref = rest
        path = path[: path[:-1].rfind("/") + 1] or "/"
    return (directory[:origin_length] + path, ref, plain)


def resolve_link(ref: str, base_url: str) -> str | None:
    """One attribute value resolved against `base_url` (an absolute http(s) URL).

    Returns the absolute URL without its fragment, or None when the reference is not a usable
    http(s) link (other schemes, malformed host or port, empty after clean-up). Raises
    ValueError when `base_url` itself is not an absolute http(s) URL.
    """
    return _resolve(ref, _Base(base_url.partition("#")[0]))


# --- query encoding ----------------------------------------------------------------------------

# The bytes of an encoded query character that stay literal: those `crawler.urls` keeps literal
# in a canonical query (unreserved, sub-delims, ":@/?"; quote_from_bytes adds letters, digits
# and "-._~"), so that canonicalization leaves what is written here as it is. Anything else,
# "%" and "#" included (ISO-2022-JP writes them inside its escape sequences), is escaped.
_QUERY_LITERAL_BYTES = "!$&'()*+,;=:@/?"
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


@functools.lru_cache(maxsize=256)
def _query_codec(encoding: str | None) -> str | None:
    """The codec to percent-encode link queries in, or None for UTF-8 (the fast path).

    `encoding` is a WHATWG label, mapped as `html_encoding` maps it ("shift_jis": cp932-based),
    or else a Python codec name. WHATWG URL uses the document's encoding, except that UTF-16 and
    "replacement" documents (whose "output encoding" is UTF-8) and UTF-8 ones get UTF-8, which
    is what `crawler.urls` writes anyway. Raises LookupError for a name that is neither.
    """
    if encoding is None or encoding == "utf-8":
        return None
    name = _codec_name(encoding) or codecs.lookup(encoding).name
    return None if name.startswith("utf") or name == encodings.REPLACEMENT else name


def _with_encoded_queries(refs: list[str], codec: str) -> list[str]:
    """`refs` with their queries encoded in `codec`; the list itself when all are ASCII.

    str.isascii is constant-time in CPython, so a legacy page of ASCII links (most of them)
    pays one pass of it and nothing else.
    """
    if all(map(str.isascii, refs)):
        return refs
    return [ref if ref.isascii() else _with_encoded_query(ref, codec) for ref in refs]


def _with_encoded_query(ref: str, codec: str) -> str:
    """`ref` with the non-ASCII characters of its query percent-encoded in `codec`.

    Only the query changes: the path stays for the UTF-8 of `crawler.urls` (WHATWG URL's path
    state ignores the document's encoding), and the fragment is dropped here as `_resolve`
    drops it anyway.
    ASCII is left as it is, so existing escapes stay and `_resolve`'s clean-ups (whitespace,
    tabs, backslashes before the query) see the same characters they would have.
    """
    path, mark, query = ref.partition("#")[0].partition("?")
    if not mark or query.isascii():
        return ref
    encoded = _NON_ASCII_RUN.sub(lambda run: _percent_encoded(run.group(), codec), query)
    return path + mark + encoded


def _percent_encoded(text: str, codec: str) -> str:
    """`text` encoded in `codec` and percent-encoded, as WHATWG URL's "percent-encode after
    encoding" does: a character the codec cannot encode becomes "%26%23NNNN%3B", the numeric
    character reference a browser sends in its place.

    Whole runs are encoded at once rather than each character, so that a stateful codec
    (ISO-2022-JP) switches modes once per run, as a browser's encoder does.
    """
    out: list[str] = []
    while text:
        try:
            out.append(quote_from_bytes(text.encode(codec), _QUERY_LITERAL_BYTES))
            break
        except UnicodeEncodeError as error:
            encodable = text[: error.start].encode(codec)
            out.append(quote_from_bytes(encodable, _QUERY_LITERAL_BYTES))
            out.extend(f"%26%23{ord(char)}%3B" for char in text[error.start : error.end])
            text = text[error.end :]
    return "".join(out)


def _page_says_nofollow(tree: LexborHTMLParser) -> bool:
    for meta in tree.css("meta[name][content]"):
        attributes = meta.attributes
        if (attributes.get("name") or "").strip().lower() != "robots":
            continue
        directives = {part.strip().lower() for part in (attributes.get("content") or "").split(",")}
        if "nofollow" in directives or "none" in directives:
            return True
    return False


@dataclass(slots=True)
class PageLinks:
    """What an HTML page leads to: its `links` (as `extract_links` returns them) and its
    `refresh`, the `<meta http-equiv="refresh">` that sends the browser elsewhere, or None.

    The refresh's `url` is absolute, resolved like a link (against `<base href>` when one came
    before the `<meta>`, as a browser resolves it when the element is inserted), never None and
    never the page itself; `delay` is in seconds. It is not among `links`: a refresh is a
    redirect made in HTML, for the caller to follow as one (at the page's own depth). Only the
    first `<meta>` whose content parses counts (HTML's "will declaratively refresh"): when that
    one only reloads the page, or its URL is not http(s), the page has no refresh. `rel` does
    not apply to a `<meta>`, but a page-level robots `nofollow` (with `honor_nofollow`) leaves
    out the refresh as well as the links.
    """

    links: list[str]
    refresh: Refresh | None = None


def extract_links(
    html: str | bytes,
    page_url: str | yarl.URL,
    *,
    honor_nofollow: bool = False,
    encoding: str | None = None,
) -> list[str]:
    """Absolute http(s) links of an HTML document, in document order, deduplicated.

    `page_url` is the URL the document was finally fetched from (after redirects); `<base href>`
    overrides it for resolution when it resolves to an http(s) URL. The page's own URL is left
    out. Raises ValueError when `page_url` is not an absolute http(s) URL.
    With `honor_nofollow`, `rel="nofollow"` links are skipped, and a
    `<meta name="robots" content="nofollow">` page yields no links at all.
    Bytes are parsed as UTF-8; use `extract_links_from_body` to honour the declared encoding.
    `encoding` is the document's character encoding (a Python codec name, as `html_encoding`
    gives, or a WHATWG label; None means UTF-8): link queries are percent-encoded in it, as a
    browser does. Raises LookupError for an unknown `encoding`.
    """
    return extract_page(html, page_url, honor_nofollow=honor_nofollow, encoding=encoding).links


def extract_page(
    html: str | bytes,
    page_url: str | yarl.URL,
    *,
    honor_nofollow: bool = False,
    encoding: str | None = None,
) -> PageLinks:
    """`extract_links`'s links of an HTML document and its refresh target (see `PageLinks`);
    arguments and errors as `extract_links`'s."""
    page = str(page_url).partition("#")[0]
    document_base = _Base(page)
    query_codec = _query_codec(encoding)
    tree = LexborHTMLParser(html)
    if honor_nofollow and _page_says_nofollow(tree):
        return PageLinks([])
    base_href: str | None = None
    refresh: Refresh | None = None
    refresh_seen = False
    base_before_refresh = False
    refs: list[str] = []
    # One walk over the elements: a CSS selector query costs several times the parse itself.
    for node in tree.root.traverse():
        tag = node.tag
        if tag not in _LINK_TAGS:
            continue
        attributes = node.attributes
        if tag == "base":
            # Only the first <base href> counts (HTML's "frozen base URL"), and it applies to
            # every link of the document, also those before it.
            if base_href is None and "href" in attributes:
                base_href = attributes.get("href") or ""
            continue
        if tag == "meta":
            if not refresh_seen:
                equiv = attributes.get("http-equiv")
                # An enumerated attribute: any case, no spaces around it.
                if equiv and len(equiv) == 7 and equiv.lower() == "refresh":
                    # An empty or unparsable content is ignored, as browsers do: a later
                    # <meta> may still refresh. The first that parses is the one.
                    refresh = parse_refresh(attributes.get("content") or "")
                    if refresh is not None:
                        refresh_seen = True
                        # Its URL is resolved when the element is inserted: against a <base>
                        # only when one came before it.
                        base_before_refresh = base_href is not None
            continue
        ref = attributes.get("src") if tag in _SRC_TAGS else attributes.get("href")
        if not ref:
            continue
        if honor_nofollow:
            rel = attributes.get("rel")
            if rel and "nofollow" in rel.lower().split():
                continue
        refs.append(ref)
    if query_codec is not None:
        refs = _with_encoded_queries(refs, query_codec)
        if base_href and not base_href.isascii():
            base_href = _with_encoded_query(base_href, query_codec)
    base = document_base
    if base_href:
        resolved_base = _resolve(base_href, document_base)
        if resolved_base is not None:
            base = _Base(resolved_base)
    found = dict.fromkeys(url for url in _resolve_all(refs, base) if url is not None)
    itself = _checked(document_base.url) or document_base.url
    found.pop(itself, None)
    if refresh is not None:
        refresh = _refresh_target(
            refresh, base if base_before_refresh else document_base, itself, query_codec
        )
    return PageLinks(list(found), refresh)


def _refresh_target(
    refresh: Refresh, base: _Base, itself: str, query_codec: str | None
) -> Refresh | None:
    """`refresh` with its URL resolved against `base`; None when it names no http(s) URL
    other than the page (`itself`): a reload, or a `javascript:` one, leads nowhere new."""
    ref = refresh.url
    if ref is None:
        return None
    if query_codec is not None and not ref.isascii():
        ref = _with_encoded_query(ref, query_codec)
    url = _resolve(ref, base)
    if url is None or url == itself:
        return None
    return Refresh(refresh.delay, url)


# --- encodings ---------------------------------------------------------------------------------

_CHARSET_PARAM = re.compile(rb"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(
    rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE
)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)
# What a label found by the <meta> prescan means instead (HTML's "prescan a byte stream"): the
# prescan read the page as ASCII, so it cannot be UTF-16 (the page is UTF-8), and x-user-defined
# is not believed from markup.
_META_OVERRIDES = {
    "utf-16-le": "utf-8",
    "utf-16-be": "utf-8",
    encodings.X_USER_DEFINED: encodings.WINDOWS_1252,
}
_META_PRESCAN_BYTES = 1024


# A site uses one or two labels: each is looked up once.
@functools.lru_cache(maxsize=256)
def _codec_name(label: bytes | str) -> str | None:
    """The Python codec for a charset label, or None when no browser knows the label (see
    `crawler.encodings`: "utf-7", "utf-32", "latin_1" or "rot13" are Python's, not the Web's)."""
    if isinstance(label, bytes):
        label = label.decode("ascii", "replace")
    return encodings.codec_for_label(label)


def html_encoding(body: bytes, content_type: str | None = None) -> str:
    """The Python codec to decode an HTML body with, chosen as a browser would.

    Order: byte-order mark, the Content-Type `charset`, a `<meta charset>` (or http-equiv) in the
    first 1024 bytes, then UTF-8 when the body decodes as UTF-8, else windows-1252. Labels are
    the WHATWG Encoding Standard's, each decoded with the codec `crawler.encodings` maps its
    encoding to ("cp932" for Shift_JIS, "cp949" for EUC-KR, ...); an unknown label is ignored.
    """
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    if content_type:
        match = _CHARSET_PARAM.search(content_type.encode("latin-1", "replace"))
        if match is not None:
            name = _codec_name(match.group(1))
            if name is not None:
                return name
    match = _META_CHARSET.search(body, 0, _META_PRESCAN_BYTES)
    if match is not None:
        name = _codec_name(match.group(1))
        if name is not None:
            return _META_OVERRIDES.get(name, name)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return encodings.WINDOWS_1252
    return "utf-8"


def extract_links_from_body(
    body: bytes,
    page_url: str | yarl.URL,
    content_type: str | None = None,
    *,
    honor_nofollow: bool = False,
) -> list[str]:
    """`extract_links` on a raw response body, decoded per `html_encoding(body, content_type)`.

    Link queries are percent-encoded in that same encoding (see `extract_links`). Undecodable
    bytes become U+FFFD rather than an error: a page with a few bad bytes still yields its links.
    A page labelled with a "replacement" encoding (ISO-2022-KR, HZ-GB-2312, ...) yields none: a
    browser decodes all of it as one U+FFFD.
    """
    return extract_page_from_body(
        body, page_url, content_type, honor_nofollow=honor_nofollow
    ).links


def extract_page_from_body(
    body: bytes,
    page_url: str | yarl.URL,
    content_type: str | None = None,
    *,
    honor_nofollow: bool = False,
) -> PageLinks:
    """`extract_page` on a raw response body, decoded as `extract_links_from_body` does."""
    return _page_from_body(body, page_url, html_encoding(body, content_type), honor_nofollow)


def extract_refresh_from_body(
    body: bytes,
    page_url: str | yarl.URL,
    content_type: str | None = None,
    *,
    honor_nofollow: bool = False,
) -> Refresh | None:
    """Only the refresh of `extract_page_from_body`, for a page whose links are not wanted (at
    the depth limit, where a refresh, like a redirect, is still followed).

    Most pages have none, and their bytes say so without a parse or even a decode: a `<meta>`
    refresh needs an `http-equiv` attribute (its name in any case, never a character
    reference) whose value starts with an "r" or a character reference ("&#114;efresh"). In
    every encoding a browser reads HTML in but UTF-16 those are ASCII bytes; a page that starts
    with a NUL (UTF-16) is parsed.
    """
    if b"\0" not in body[:64] and not _may_refresh(body):
        return None
    encoding = html_encoding(body, content_type)
    return _page_from_body(body, page_url, encoding, honor_nofollow).refresh


def _may_refresh(body: bytes) -> bool:
    # Lowered a window at a time (a 16 MiB page is not copied whole): `find` on the lowered
    # bytes is many times faster than a case-blind regex search of the page. Windows overlap
    # by more than the attribute and its value's start, so none is cut unseen.
    for start in range(0, len(body), _WINDOW):
        window = body[start : start + _WINDOW + 64].lower()
        at = window.find(b"http-equiv")
        while at != -1:
            if _REFRESH_VALUE.match(window, at + 10):
                return True
            at = window.find(b"http-equiv", at + 10)
    return False


_WINDOW = 1 << 16
# After the attribute's name: spaces around "=" and a quote, as the HTML tokenizer allows.
_REFRESH_VALUE = re.compile(rb"[\t\n\f\r ]*=[\t\n\f\r ]*[\"']?[r&]")


def _page_from_body(
    body: bytes, page_url: str | yarl.URL, encoding: str, honor_nofollow: bool
) -> PageLinks:
    for bom, name in _BOMS:
        if name == encoding and body.startswith(bom):
            body = body[len(bom) :]
            break
    text = body.decode(encoding, "replace")
    return extract_page(text, page_url, honor_nofollow=honor_nofollow, encoding=encoding)


_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_HTML_START = re.compile(
    rb"\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)[\s>]", re.IGNORECASE | re.DOTALL
)


def is_html(content_type: str | None, head: bytes = b"") -> bool:
    """Whether a response is an HTML page worth extracting links from.

    Decided by the Content-Type media type; when the server sent none, by sniffing the first
    bytes of the body (`head`) for an HTML start, the way browsers do for untyped responses.
    """
    if content_type:
        media_type = content_type.partition(";")[0].strip().lower()
        return media_type in _HTML_TYPES
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8) :]
    return _HTML_START.match(head[:1024]) is not None
