"""Link resolution against the WHATWG URL Standard, the parser browsers use.

The peer is `ada_url` (Python bindings to Ada, a WHATWG-compliant parser), a test dependency
only. For each (base, href) the question is whether we and a browser request the same
resource: the link our extraction resolves, canonicalized, must equal the browser's
`URL(href, base).href` canonicalized the same way; a link the browser cannot parse or would not
fetch over http(s) must be dropped by us.

Both sides go through `crawler.urls.canonicalize` on purpose, because canonicalization differs
from WHATWG serialization by design (RFC 3986 section 6 normalization, for dedupe):
- escapes of unreserved characters are decoded ("%7e" is "~", "%41" is "A") and the hex of
  the others upper-cased, where a browser sends them as written;
- characters RFC 3986 does not allow literally ("|", "^", "[", "]", "{", "}", "`", "\\" in the
  query) are escaped, where a browser leaves some of them as they are (percent-encoding a
  character that may not appear literally is the normalization RFC 3986 6.2.2 allows);
- the fragment, the default port, an empty query ("?") and a trailing dot on the host are
  dropped; the host is lower-cased, IDNA-encoded, an IPv4 number written dotted.
What canonicalization must not do is merge or split what a browser requests differently, and
that is what these tests check.

Deliberate differences, kept and asserted as such below:
- hosts with empty labels ("x..test", ".x.test", "x.test..") are rejected by canonicalize:
  browsers accept them but no DNS name has an empty label;
- (pinned by tests/test_extract.py, not ours to change) "https:foo" on an http page and
  "http:///path" are dropped: a browser reads them as "https://foo/" and "http://path/"
  (WHATWG's "special authority slashes" states skip missing or extra slashes), we follow
  RFC 3986, where they have no authority. An empty href is dropped for the same reason
  (tests/test_extract.py pins resolve_link("") as None); a browser reads it as the base.
"""

from __future__ import annotations

import html
import re

import pytest
from ada_url import URL
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crawler import extract as extract_module
from crawler.extract import extract_links, resolve_link
from crawler.urls import InvalidURL, canonicalize

_STRIP = "".join(chr(c) for c in range(0x21))
# An http(s): prefix not followed by exactly two slashes: RFC 3986 and WHATWG part ways there
# when the scheme is not the base's or there are more slashes (see the module docstring).
_NO_AUTHORITY_SLASHES = re.compile(r"(?i)https?:(?![/\\]{2}(?![/\\]))")


def browser(base: str, href: str) -> str | None:
    """The canonical form of what a browser requests for `href` on a page at `base`, or None
    when it requests nothing over http(s)."""
    try:
        parsed = URL(href, base)
    except ValueError:
        return None
    if parsed.protocol not in ("http:", "https:"):
        return None
    try:
        return canonicalize(parsed.href)
    except InvalidURL:
        hostname = parsed.hostname
        # The one deliberate rejection: empty host labels (module docstring).
        assert hostname.startswith(".") or ".." in hostname, (href, parsed.href)
        return None


def ours(base: str, href: str) -> str | None:
    """What we request for `href` on a page at `base`: resolve_link, then the canonicalize the
    frontier applies. A URL extraction keeps must canonicalize (else it is junk let through)."""
    resolved = resolve_link(href, base)
    return None if resolved is None else canonicalize(resolved)


def extracted(base: str, href: str) -> list[str]:
    """`href` through the whole extraction: the HTML parser, the cache and its shortcuts."""
    page = f'<a href="{html.escape(href, quote=True)}">x</a>'
    return [canonicalize(url) for url in extract_links(page, base)]


def cleaned(href: str) -> str:
    """The href after the clean-ups both parsers apply first."""
    return re.sub(r"[\t\n\r]", "", href.strip(_STRIP))


def is_known_divergence(base: str, href: str, mine: str | None, theirs: str | None) -> bool:
    if mine is not None or theirs is None:
        return False
    text = cleaned(href)
    return not text or _NO_AUTHORITY_SLASHES.match(text) is not None


def assert_same_request(base: str, href: str) -> None:
    mine, theirs = ours(base, href), browser(base, href)
    if is_known_divergence(base, href, mine, theirs):
        return
    assert mine == theirs, f"base={base!r} href={href!r}: ours {mine!r}, browser {theirs!r}"
    # Through the HTML parser: NUL and CR are rewritten by HTML attribute parsing itself.
    if "\x00" not in href and "\r" not in href and "&" not in href:
        got = extracted(base, href)
        if theirs is None:
            assert got == [], (base, href)
        elif theirs == canonicalize(base):
            # Leaving out links to the page itself is a dedupe shortcut that compares spellings
            # ("%2e" on "http://h" is kept as "http://h/%2e"): the frontier dedupes the rest.
            assert got in ([], [theirs]), (base, href)
        else:
            assert got == [theirs], (base, href)


PAGE = "http://example.com/dir/page.html?x=1"
HTTPS_PAGE = "https://example.com/dir/page.html"

# (base, href) edge cases from the WHATWG URL Standard and its web-platform tests.
CASES: list[tuple[str, str]] = [
    # backslashes in special schemes
    *[(PAGE, h) for h in ["\\\\other.test\\a\\b", "\\a\\b?c\\d", "/\\other.test/x",
                          "\\/other.test/x",
                          "//x.test\\a", "\\\\x.test", "\\x.test", "http:\\\\x.test/foo",
                          "/a\\b#c\\d"]],
    # leading/trailing C0 controls and spaces stripped, tab and newline removed inside
    *[(PAGE, h) for h in [" \x01/a \x1f", "\x00/a", "/a\tb\nc\rd", "ht\ntp://x.test/",
                          "java\nscript:x",
                          "\t//x.test/", "/\tx", "\u00a0/a", "/a\u00a0b", "/a\u3000b", "/a\ufeff"]],
    # a scheme of the base's, without authority, is relative; scheme-relative; query, fragment
    *[(PAGE, h) for h in ["http:foo", "HTTP:foo", "http:/foo", "http:", "http:?q", "http:#f",
                          "http:/",
                          "//other.test", "//other.test/a?b", "///other.test/a", "////other.test/a",
                          "//", "//@x.test/", "//X.TEST?q", "//x.test#f", "//x.test:80",
                          "?q", "?", "#f", "#", "?q#f", "/a?b?c", "/a?b#c#d", "/a#b?c"]],
    ("https://example.com/", "//x.test:443/"),
    ("https://example.com/", "//x.test:80/"),
    ("http://example.com/a/", "http:b"),
    ("http://example.com/a/", "http:?q"),
    # dot segments, %2e forms included (WHATWG: "%2e" is "." in a dot segment)
    *[(PAGE, h) for h in ["..", ".", "./", "../", "../..", "../../../x", "%2e", "%2e%2e",
                          "%2E%2E/x",
                          ".%2e/x", "%2e./x", "a/%2e%2E/b", "a/%2e/b", "/a/b/..%2f", "a/..%2Fb",
                          "a/.../b", "/a/b/..", "/a/b/.", "/./a", "/../a", "a/..?q", "a/.?q",
                          "a/%2e?q", "/.//a", "/a/..//b", "a/.%2E", "%2E%2e/%2e%2e/x",
                          "http://example.com/a/../../b", "http://example.com/%2e%2e/b",
                          "http://x.test/a/.%2e/b", "http://x.test/a/%2e./b",
                          "http://x.test/a/%2e%2E",
                          "http://x.test/a/%2e", "http://example.com/.//a"]],
    ("http://example.com", "a"),
    ("http://example.com", ".."),
    ("http://example.com/a/b", "../../../c"),
    ("http://example.com/a/b/", "..?q"),
    ("http://example.com/a/b?q", "#x"),
    ("http://example.com/a/b?q", "?"),
    ("http://example.com/%2e%2e/a/", "b"),
    ("http://example.com/a/%2e%2e/b/", "c"),
    ("http://example.com/a/b", "%2e%2e/c"),
    # IPv4: every number form browsers accept, and the ones they reject
    *[(PAGE, f"http://{h}/") for h in [
        "0x7f.1", "2130706433", "127.1", "0177.0.0.1", "0x7F000001", "0x7f.0.0.1", "1.2.3", "1.2",
        "1",
        "0", "0x", "1.0x", "0x1.0x2.0x3.0x4", "127.0.0.1.", "1.2.3.4", "%31%32%37.0.0.1",
        "0x7f.%31",
        "\uff11\uff12\uff17.0.0.1", "4294967295", "0xffffffff", "0.0.0.0",
        "1.2.3.4.5", "1.2.3.256", "256.256.256.256", "4294967296", "0x100000000", "1.2.3.09",
        "09.2.3.4", "foo.0x4", "foo.09", "127.0.0.1.1", "999999999999", "x.1", "x.1.2", "x.0x1",
        "00x7f.1", "1..2", "1.2.3.4x", "a.1b", "123.test", "0x.test", "1.x", "1.2.3.4.x"]],
    ("http://0x7f.1/a/", "b"),
    (PAGE, "//0x7f.1:8080/x"),
    (PAGE, "http://127.1:8001/x?y"),
    # IPv6: compression, IPv4 tails, zones (rejected by browsers), junk
    *[(PAGE, f"http://{h}/") for h in [
        "[::1]", "[0:0:0:0:0:0:0:1]", "[::1%25eth0]", "[fe80::1%eth0]", "[::ffff:127.0.0.1]",
        "[::127.0.0.1]", "[2001:DB8::]:8080", "[1:0:0:2::3:0]", "[::1]x", "[::1", "[::1]:80",
        "[1::2::3]", "[::1.2.3]", "[::1.2.3.04]", "[1:2:3:4:5:6:7:8:9]", "[0001::1]"]],
    ("http://[::1]:8080/a/", "b"),
    # host case, IDNA, fullwidth, escapes, forbidden and unusual code points
    *[(PAGE, f"http://{h}/") for h in [
        "EXAMPLE.COM", "ExAmPlE.cOm:80", "b\u00fccher.de",
        "\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25"
        "\uff0e\uff43\uff4f\uff4d", "example\u3002com", "fa\u00df.de", "xn--fa-hia.de",
        "XN--ZCA.test",
        "\u00df.test", "a\u00adb.test", "\u2603.test", "xn--n3h.test", "\U0001f4a9.la",
        "\u00e4_b.test",
        "-\u00e4.test", "\u00e4-.test", "-x.test", "x-.test", "xn--", "xn--ls8h.test",
        "%ef%bc%a5xample.com", "%41.com", "ex%61mple.com", "a%2Eb", "%zz.com", "%25.com", "%00.com",
        "%ff.com", "a b", "a<b", "a^b", "a|b", "a{b", "a*b", "a&b", "a_b", "a!b", "a$b", "a'b",
        'a"b',
        "a`b", "a~b", "a,b", "a;b", "a=b", "a+b", "a(b)", "a}b", "a\x7fb", "a%7fb", "x.test.",
        "x.test..", ".x.test", "x..test", "\u00ad.test", "a.b.c.d.e.f.g", "\u0627.test",
        "a\u200db.test", "\u0300a.test", "HTTP", "localhost", "x" * 64 + ".test",
        "\u00e4" * 64 + ".test"]],
    (PAGE, "HTTP://X.TEST"),
    # ports: default ones dropped, an empty one ignored, junk rejected
    *[(PAGE, f"http://x.test:{p}/") for p in [
        "80", "", "443", "0080", "65535", "65536", "8a", ":80", "+80", " 80", "\u0668\u0660", "-1",
        "00000000000000000000080", "0"]],
    (PAGE, "https://x.test:443/"),
    (PAGE, "https://x.test:80/"),
    # userinfo, "@" in it included
    *[(PAGE, f"http://{u}@x.test/") for u in [
        "user", "us@er", "u:p@ss", "", ":", "u:", ":p", "u%40v", "u v", "u\\v", "\u00fc", "u:p:q",
        "u;=", "u[", "u]", "u^|", "u!$&'()*+,", "u%3a:p%3A"]],
    (PAGE, "http://user@/"),
    (PAGE, "http://@/"),
    (PAGE, "http://u/v@x.test/"),
    (PAGE, "http://u?v@x.test/"),
    (PAGE, "http://u#v@x.test/"),
    ("http://user:pw@example.com/a/", "b"),
    ("http://user:pw@example.com/a/", "//x.test/"),
    # schemes a browser does not fetch over http(s), opaque paths, unparseable URLs
    *[(PAGE, h) for h in [
        "mailto:a@b.c", "javascript:void(0)", "JavaScript:alert(1)", " javascript:x",
        "data:text/html,hi",
        "ftp://x.test/", "file:///etc/passwd", "ws://x.test/", "wss://x.test/", "tel:+1",
        "about:blank",
        "blob:http://x.test/y", "sms:1", "a:b", "c:/x", "+x:y", "-x:y", "1http://x.test/",
        "urn:isbn:1", "http://[::1", "http://", "http://x.test:99999/", "http://a b/",
        "http:// x.test/"]],
    # characters that only special schemes escape in the query ("'"), and the rest
    *[(PAGE, h) for h in [
        "/a'b", "?a'b", "/a\"b", "?a\"b", "/a<b>", "?a<b>", "/a`b", "?a`b", "/a{b}", "?a{b}",
        "/a b",
        "?a b", "/a^b", "?a^b", "/a|b", "?a|b", "/a[b]", "?a[b]", "/a%b", "?a%b", "/a%zz", "/a%2",
        "/%7e", "/%7E", "/%41", "/%2f", "/%3F", "/%23", "?%7e", "?%2f", "?%27", "/a\x7fb",
        "?a\x7fb",
        "/a\x01b", "?a\x01b", "/a;b=c", "/a:b", "a:b/c", "./a:b", "/a@b", "/a$b&c", "/~user",
        "?a+b",
        "http://example.com/a?b=c&d=e f", "http://x.test/a?b+c d", "http://x.test/a?'",
        "?a=1&b='2'"]],
    # fragments and non-ASCII in path and query (UTF-8 for a UTF-8 page)
    *[(PAGE, h) for h in [
        "/a#b c", "#\u00e4", "/\u00e4", "?\u00e4", "/\u20ac?\u20ac", "/\U0001f600", "/%C3%A4",
        "?%c3%a4",
        "http://x.test/\u00e4?\u00e4#\u00e4", "http://x.test/ ", "http://x.test/a ",
        "http://x.test/a%20",
        "http://x.test/a+b", "http://example.com/a?b#", "http://example.com/?",
        "http://example.com?",
        "http://example.com#", "http://example.com/a/..//b", "http://example.com//a"]],
    ("http://example.com/", ".//a"),
    ("HTTP://EXAMPLE.com:80/a/", "b"),
    ("http://example.com/a%20b/", "c"),
    ("http://example.com/%C3%A4/", "c"),
    (HTTPS_PAGE, "//x.test"),
    (HTTPS_PAGE, "http://x.test/"),
]


@pytest.mark.parametrize(("base", "href"), CASES)
def test_we_request_what_a_browser_requests(base: str, href: str) -> None:
    assert_same_request(base, href)


@pytest.mark.parametrize(
    ("base", "href", "theirs"),
    [
        (PAGE, "https:foo", "https://foo/"),
        (HTTPS_PAGE, "http:foo", "http://foo/"),
        (PAGE, "https:x.test/a", "https://x.test/a"),
        (PAGE, "http:///x.test/a", "http://x.test/a"),
        (PAGE, "https:///x.test/a", "https://x.test/a"),
        (PAGE, "http:////x.test/a", "http://x.test/a"),
        (PAGE, "", PAGE),
        ("http://example.com/a/b?q", " \t", "http://example.com/a/b?q"),
    ],
)
def test_known_divergences_stay_known(base: str, href: str, theirs: str) -> None:
    # See the module docstring: pinned elsewhere as RFC 3986 says; a browser follows them.
    assert browser(base, href) == theirs
    assert ours(base, href) is None
    assert is_known_divergence(base, href, None, theirs)


def test_number_hosts_are_the_ipv4_address_a_browser_connects_to() -> None:
    # The forms are spelled as they would be in a page; extraction writes them dotted.
    html_page = "".join(
        f'<a href="http://{host}/x">x</a>' for host in ["0x7f.1", "2130706433", "127.1",
        "0177.0.0.1"]
    )
    assert extract_links(html_page, PAGE) == ["http://127.0.0.1/x"]
    assert extract_links('<a href="http://1.2.3.256/">x</a><a href="//foo.09/">y</a>', PAGE) == []


def test_a_query_space_is_percent_20_not_plus() -> None:
    # "+" means "+" to a server that does not decode forms; a browser sends "%20".
    assert extract_links('<a href="/s?q=a b&r=c+d">x</a>', PAGE) == [
        "http://example.com/s?q=a%20b&r=c+d"
    ]


def test_links_a_browser_would_not_follow_are_dropped_without_failing_the_page() -> None:
    junk = [
        "javascript:void(0)", "mailto:a@b.c", "data:text/html,<b>x</b>", "http://[::1",
        "http://[::1]x/",
        "http://[1::2::3]/", "http://x.test:+80/", "http://x.test:65536/", "http://1.2.3.256/",
        "http://[fe80::1%25eth0]/", "http://a%zz/", "http://%ff/", "http://x.test:8a/",
        "http://a\x7fb/",
    ]
    page = "".join(f'<a href="{html.escape(href)}">j</a>' for href in junk)
    page += '<a href="/kept">k</a>'
    assert extract_links(page, PAGE) == ["http://example.com/kept"]
    for href in junk:
        assert resolve_link(href, PAGE) is None, href
        assert browser(PAGE, href) is None, href


# --- generated hrefs ---------------------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "/", "//", "\\", ".", "..", "%2e", "%2E", "%2e%2E", "?", "#", "a", "B", "x.test", "X.TEST",
        "@",
        ":", ":80", ":443", ":8080", ":", "http:", "HTTPS:", "%41", "%7e", "%zz", "%", "%25", "%2f",
        " ", "\t", "\n", "'", '"', "<", ">", "`", "{", "}", "|", "^", "[", "]", "[::1]", "&", "=",
        "+", ";", "!", "$", "*", "~", "\u00e4", "\u20ac", "\uff21", "\u3002", "\u00df", "\x01",
        "\x7f",
        "127.1", "0x7f", "1.2.3.4", "256", "\U0001f600", "\u00ad", "xn--zca", "mailto:",
        "javascript:",
    ]
)
_BASES = st.sampled_from(
    [PAGE, HTTPS_PAGE, "http://example.com", "http://a.test/b/c/d;p?q", "https://[::1]:8443/x/",
     "http://127.0.0.1:8001/section3/page-1234.html", "http://u:p@x.test/a/b/"]
)


@given(_BASES, st.lists(_PIECES, max_size=10).map("".join))
@example(PAGE, "//X.TEST:80/%2e%2E/a'b?c'd e")
@example("http://a.test/b/c/d;p?q", "..%2f..")
@settings(max_examples=1500, deadline=None)
def test_generated_hrefs_resolve_as_a_browser_resolves_them(base: str, href: str) -> None:
    assert_same_request(base, href)


@given(_BASES, st.lists(st.lists(_PIECES, max_size=6).map("".join), max_size=8))
@settings(max_examples=200, deadline=None)
def test_the_resolution_cache_gives_what_resolving_each_link_gives(
    base: str, hrefs: list[str]
) -> None:
    # The cache and its shortcuts in `_resolve_all` against `_resolve` of each reference.
    parsed = extract_module._Base(base)
    cached = extract_module._resolve_all(hrefs, parsed)
    assert cached == [extract_module._resolve(href, parsed) for href in hrefs]
