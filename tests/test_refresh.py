"""Declarative refreshes: parsing a refresh value as HTML's "shared declarative refresh steps"
do (`crawler.refresh`), and finding a page's `<meta http-equiv="refresh">` target in the same
walk as its links (`crawler.extract.extract_page`)."""

from __future__ import annotations

import codecs

import pytest

from crawler import extract as extract_module
from crawler.extract import (
    PageLinks,
    extract_links,
    extract_page,
    extract_page_from_body,
    extract_refresh_from_body,
)
from crawler.refresh import Refresh, parse_refresh

PAGE = "http://site.test/dir/page.html"

# value -> (delay, URL string), or None where the steps fail (no refresh at all). Cases follow
# the spec's steps; the quoted ones are the spec's own examples.
PARSED: dict[str, tuple[int, str | None] | None] = {
    # A time alone: a reload of the page itself, no URL.
    "5": (5, None),
    "0": (0, None),
    "5;": (5, None),
    "5 ;  ": (5, None),
    "  \t\n\f\r 7": (7, None),
    "007": (7, None),
    # The time's fraction, and any dots and digits after it, are read and dropped.
    ".5; url=x": (0, "x"),
    "1.9; url=x": (1, "x"),
    "1.; url=x": (1, "x"),
    "1.2.3; url=x": (1, "x"),
    "1..; url=x": (1, "x"),
    # Separators: ";" or "," or whitespace, with whitespace around.
    "0;url=x": (0, "x"),
    "0; url=x": (0, "x"),
    "0,x": (0, "x"),
    "0, url=x": (0, "x"),
    "0 url=x": (0, "x"),
    "0\turl=x": (0, "x"),
    "0 ; url=x": (0, "x"),
    "0;;x": (0, ";x"),  # only one separator is taken
    "0 ; , x": (0, ", x"),
    # "url" in any case, whitespace around "=".
    "0; URL=x": (0, "x"),
    "0; Url = x": (0, "x"),
    "0; URL = 'x'": (0, "x"),
    "0; url\t=\tx": (0, "x"),
    # No "url=" prefix after all: the URL is the whole rest.
    "0; x": (0, "x"),
    "0; urlx": (0, "urlx"),
    "0; url x": (0, "url x"),
    "0; ur=x": (0, "ur=x"),
    "0; u": (0, "u"),
    "0; /home/?a=1;b=2": (0, "/home/?a=1;b=2"),
    # Quotes: up to the matching one, or to the end when it never closes.
    '0; url="x y"': (0, "x y"),
    "0; url='x y' trailing": (0, "x y"),
    "0;url='x": (0, "x"),
    "0; url='x\"y'": (0, 'x"y'),
    "0; 'x'": (0, "x"),  # quotes without "url="
    "0; url=\"\"": (0, ""),
    "0; url=": (0, ""),  # the empty URL string: the document itself
    "0; url= x ": (0, "x "),  # trailing space is the URL parser's to strip
    # The spec's examples.
    "5; URL=http://www.example.com/": (5, "http://www.example.com/"),
    "0; URL='http://www.example.com/'": (0, "http://www.example.com/"),
    "300": (300, None),
    # Not a refresh: no time first, or junk after it.
    "url=x": None,
    "; url=x": None,
    "-1; url=x": None,
    "+1; url=x": None,
    "": None,
    "   ": None,
    "x": None,
    "5x; url=x": None,
    "5:url=x": None,
    "\v0; url=x": None,  # VT is not ASCII whitespace
    "\u00a00; url=x": None,  # nor is NBSP
    "\u0660; url=x": None,  # an Arabic-Indic zero is not an ASCII digit
}


@pytest.mark.parametrize(("value", "expected"), PARSED.items(), ids=repr)
def test_refresh_values_parse_as_the_html_standard_says(
    value: str, expected: tuple[int, str | None] | None
) -> None:
    assert parse_refresh(value) == (None if expected is None else Refresh(*expected))


def test_a_huge_delay_saturates_instead_of_failing() -> None:
    # int() refuses strings of over 4,300 digits: a hostile page must not crash extraction.
    parsed = parse_refresh("9" * 10_000 + "; url=x")
    assert parsed is not None and parsed.delay >= 10**18 and parsed.url == "x"
    assert parse_refresh("0" * 10_000 + "3; url=x") == Refresh(3, "x")


# --- the refresh of a page ---------------------------------------------------------------------


def refresh_of(html: str, url: str = PAGE, **kw: bool) -> Refresh | None:
    return extract_page(html, url, **kw).refresh


def meta(content: str, equiv: str = "refresh") -> str:
    return f'<meta http-equiv="{equiv}" content="{content}">'


HOME = "http://site.test/home/"

# A page -> its refresh target (delay 0 unless said), or None.
PAGE_REFRESHES: list[tuple[str, Refresh | None]] = [
    (meta("0; url=/home/"), Refresh(0, HOME)),
    ("<meta http-equiv=refresh content='3;URL=next.html'>", Refresh(3, PAGE[:-9] + "next.html")),
    ('<META HTTP-EQUIV="REFRESH" CONTENT="0; URL=/home/">', Refresh(0, HOME)),
    (meta("0,/home/", equiv="Refresh"), Refresh(0, HOME)),
    ('<meta content="0; url=/home/" http-equiv="refresh">', Refresh(0, HOME)),
    # Anywhere in the document (browsers process it when inserted, in the body too).
    ("<body><p>moved</p>" + meta("0; url=/home/") + "</body>", Refresh(0, HOME)),
    # Character references in attributes are decoded before the value is parsed.
    (meta("0; url=/x?a=1&amp;b=2"), Refresh(0, "http://site.test/x?a=1&b=2")),
    # Resolved like any link: fragments dropped, absolute URLs kept, other hosts allowed.
    (meta("0; url=https://other.test/a#top"), Refresh(0, "https://other.test/a")),
    (meta("0; url=//cdn.test/"), Refresh(0, "http://cdn.test/")),
    (meta("0; url=' /x y '"), Refresh(0, "http://site.test/x%20y")),
    # Nothing to follow: a reload, the page itself, another scheme, a non-refresh pragma.
    (meta("5"), None),
    (meta("0; url="), None),
    (meta("0; url=page.html#x"), None),
    (meta("0; url=javascript:go()"), None),
    (meta("0; url=mailto:a@b.test"), None),
    (meta("0; url=http://[::1"), None),
    (meta("0; url=/home/", equiv=" refresh"), None),  # the keyword is not trimmed
    (meta("0; url=/home/", equiv="refresh-x"), None),
    (meta("0; url=/home/", equiv="content-type"), None),
    ('<meta name="refresh" content="0; url=/home/">', None),
    ('<meta http-equiv="refresh">', None),
    ('<a href="/x">0; url=/home/</a>', None),
]


@pytest.mark.parametrize(("html", "expected"), PAGE_REFRESHES, ids=repr)
def test_the_refresh_of_a_page(html: str, expected: Refresh | None) -> None:
    assert refresh_of(html) == expected


def test_a_refresh_resolves_against_a_base_that_comes_before_it() -> None:
    html = '<base href="http://base.test/b/"><meta http-equiv="refresh" content="0; url=home">'
    assert refresh_of(html) == Refresh(0, "http://base.test/b/home")


def test_a_base_after_the_refresh_is_not_its_base() -> None:
    # A browser parses the refresh URL when the <meta> is inserted: a later <base> is not yet
    # in the document (links, resolved later, all take it).
    html = (
        '<meta http-equiv="refresh" content="0; url=home"><base href="http://base.test/b/">'
        '<a href="link">l</a>'
    )
    page = extract_page(html, PAGE)
    assert page == PageLinks(["http://base.test/b/link"], Refresh(0, "http://site.test/dir/home"))


def test_only_the_first_meta_refresh_that_parses_counts() -> None:
    first = '<meta http-equiv="refresh" content="0; url=/first">'
    second = '<meta http-equiv="REFRESH" content="0; url=/second">'
    assert refresh_of(first + second) == Refresh(0, "http://site.test/first")
    # One that does not parse (or has no content) is ignored, as browsers ignore it.
    ignored = '<meta http-equiv="refresh" content="url=/bad"><meta http-equiv="refresh" content="">'
    assert refresh_of(ignored + second) == Refresh(0, "http://site.test/second")
    # A reload parses: it is the page's refresh, and a later one does not count.
    assert refresh_of('<meta http-equiv="refresh" content="30">' + second) is None
    # Nor does a later one when the first leads nowhere a crawler goes.
    js = '<meta http-equiv="refresh" content="0; url=javascript:x()">'
    assert refresh_of(js + second) is None


def test_the_refresh_is_not_a_link_and_links_are_unchanged() -> None:
    html = (
        '<meta http-equiv="refresh" content="0; url=/home/"><a href="/a">a</a>'
        '<a href="/home/">home</a>'
    )
    page = extract_page(html, PAGE)
    assert page.links == ["http://site.test/a", "http://site.test/home/"]
    assert page.links == extract_links(html, PAGE)
    assert extract_links('<meta http-equiv="refresh" content="0; url=/x">', PAGE) == []


def test_nofollow_leaves_out_the_refresh_only_when_the_whole_page_says_it() -> None:
    refresh = '<meta http-equiv="refresh" content="0; url=/home/">'
    robots = '<meta name="robots" content="noindex, nofollow">'
    assert refresh_of(robots + refresh, honor_nofollow=True) is None
    assert refresh_of(refresh + '<meta name="ROBOTS" content="none">', honor_nofollow=True) is None
    assert refresh_of(robots + refresh) == Refresh(0, "http://site.test/home/")
    # rel="nofollow" is about <a> and <link>: it does not make a refresh one.
    with_rel = '<meta http-equiv="refresh" rel="nofollow" content="0; url=/home/">'
    assert refresh_of(with_rel, honor_nofollow=True) == Refresh(0, "http://site.test/home/")


def test_from_a_body_in_a_legacy_encoding_the_query_is_encoded_in_it() -> None:
    body = '<meta http-equiv="refresh" content="0; url=/ü?q=ü">'.encode("windows-1252")
    page = extract_page_from_body(body, PAGE, "text/html; charset=windows-1252")
    assert page.refresh == Refresh(0, "http://site.test/%C3%BC?q=%FC")


def test_the_refresh_alone_parses_only_pages_that_may_hold_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    html = '<meta http-equiv="Refresh" content="2; url=/home/"><a href="/a">a</a>'
    assert extract_refresh_from_body(html.encode(), PAGE, "text/html") == Refresh(
        2, "http://site.test/home/"
    )
    for bom, codec in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        utf16 = bom + html.encode(codec)
        assert extract_refresh_from_body(utf16, PAGE) == Refresh(2, "http://site.test/home/")
    nofollow = '<meta name="robots" content="nofollow">' + html
    assert extract_refresh_from_body(nofollow.encode(), PAGE, honor_nofollow=True) is None

    def no_parse(*_args: object, **_kw: object) -> PageLinks:
        raise AssertionError("parsed a page without a refresh")

    monkeypatch.setattr(extract_module, "extract_page", no_parse)
    assert extract_refresh_from_body(b'<a href="/a">refr</a>', PAGE, "text/html") is None


@pytest.mark.parametrize(
    "attribute",
    [
        'http-equiv="ReFresh"',
        'HTTP-EQUIV="REFRESH"',
        'http-equiv="&#114;efresh"',
        'http-equiv="&#x52;EFRESH"',
        "http-equiv = 'refresh'",
        "http-equiv=refresh",
    ],
)
def test_the_refresh_alone_is_found_however_the_attribute_is_spelt(attribute: str) -> None:
    html = f'<meta {attribute} content="1; url=/next/"><a href="/a">a</a>'
    assert extract_refresh_from_body(html.encode(), PAGE, "text/html") == Refresh(
        1, "http://site.test/next/"
    )
    # What the full extraction finds, the shortcut finds.
    assert extract_page_from_body(html.encode(), PAGE, "text/html").refresh == Refresh(
        1, "http://site.test/next/"
    )


def test_the_refresh_alone_skips_the_parse_for_other_http_equiv_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_parse(*_args: object, **_kw: object) -> PageLinks:
        raise AssertionError("parsed a page without a refresh")

    monkeypatch.setattr(extract_module, "extract_page", no_parse)
    page = b'<meta http-equiv="Content-Type" content="text/html"><p>refresh the page</p>'
    assert extract_refresh_from_body(page, PAGE, "text/html") is None


@pytest.mark.parametrize("shift", [-12, -5, 0, 3, 40])
def test_the_refresh_alone_is_found_across_the_windows_a_long_page_is_read_in(shift: int) -> None:
    meta = b'<meta HTTP-Equiv = "Refresh" content="0; url=/next/">'
    filler = b"<p>" + b"x" * ((1 << 16) + shift - 3)
    body = filler + meta + b"<p>" + b"y" * 70_000
    assert extract_refresh_from_body(body, PAGE, "text/html") == Refresh(
        0, "http://site.test/next/"
    )
