"""Link extraction: which links a page yields, how they are resolved, and how bytes are decoded."""

from __future__ import annotations

import codecs
from urllib.parse import urljoin

import pytest
import yarl
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler import extract as extract_module
from crawler.extract import (
    extract_links,
    extract_links_from_body,
    html_encoding,
    is_html,
    resolve_link,
)

PAGE = "http://site.test/dir/page.html"

# RFC 3986 section 5.4: every example, resolved against its base "http://a/b/c/d;p?q".
RFC_BASE = "http://a/b/c/d;p?q"
RFC_EXAMPLES = {
    "g": "http://a/b/c/g",
    "./g": "http://a/b/c/g",
    "g/": "http://a/b/c/g/",
    "/g": "http://a/g",
    "//g": "http://g",
    "?y": "http://a/b/c/d;p?y",
    "g?y": "http://a/b/c/g?y",
    "#s": "http://a/b/c/d;p?q#s",
    "g#s": "http://a/b/c/g#s",
    "g?y#s": "http://a/b/c/g?y#s",
    ";x": "http://a/b/c/;x",
    "g;x": "http://a/b/c/g;x",
    "g;x?y#s": "http://a/b/c/g;x?y#s",
    ".": "http://a/b/c/",
    "./": "http://a/b/c/",
    "..": "http://a/b/",
    "../": "http://a/b/",
    "../g": "http://a/b/g",
    "../..": "http://a/",
    "../../": "http://a/",
    "../../g": "http://a/g",
    "../../../g": "http://a/g",
    "../../../../g": "http://a/g",
    "/./g": "http://a/g",
    "/../g": "http://a/g",
    "g.": "http://a/b/c/g.",
    ".g": "http://a/b/c/.g",
    "g..": "http://a/b/c/g..",
    "..g": "http://a/b/c/..g",
    "./../g": "http://a/b/g",
    "./g/.": "http://a/b/c/g/",
    "g/./h": "http://a/b/c/g/h",
    "g/../h": "http://a/b/c/h",
    "g;x=1/./y": "http://a/b/c/g;x=1/y",
    "g;x=1/../y": "http://a/b/c/y",
    "g?y/./x": "http://a/b/c/g?y/./x",
    "g?y/../x": "http://a/b/c/g?y/../x",
    "g#s/./x": "http://a/b/c/g#s/./x",
    "g#s/../x": "http://a/b/c/g#s/../x",
    "http:g": "http://a/b/c/g",
}


def expected_without_fragment(url: str) -> str:
    url = url.partition("#")[0]
    # An http URL with an empty path is the same resource as one with "/" (RFC 3986 6.2.3).
    return url + "/" if url.count("/") == 2 else url


@pytest.mark.parametrize(("ref", "expected"), RFC_EXAMPLES.items())
def test_resolution_matches_rfc_3986_examples(ref: str, expected: str) -> None:
    assert resolve_link(ref, RFC_BASE) == expected_without_fragment(expected)


def test_rfc_examples_that_are_not_http_links_give_none() -> None:
    assert resolve_link("g:h", RFC_BASE) is None
    assert resolve_link("", RFC_BASE) is None


# No empty segments: urljoin drops them ("a//b" -> "a/b") where RFC 3986 keeps them (tested below).
_SEGMENTS = st.sampled_from(["a", "b", "..", ".", "x.y", "c;p", "..g", "g.", "%41"])


@given(
    leading_slash=st.booleans(),
    segments=st.lists(_SEGMENTS, min_size=1, max_size=6),
    query=st.sampled_from(["", "?q", "?a/../b"]),
)
def test_relative_references_resolve_like_urljoin(
    leading_slash: bool, segments: list[str], query: str
) -> None:
    ref = ("/" if leading_slash else "") + "/".join(segments) + query
    if not ref or ref.startswith("//"):
        return
    assert resolve_link(ref, RFC_BASE) == urljoin(RFC_BASE, ref)


# Bases that share origins and directories but differ in path, query, scheme and plainness,
# so a cached resolution that depended on more than its key would show up as a difference.
_CACHE_BASES = [
    "http://a.test/b/c/d;p?q",
    "http://a.test/b/y/z",
    "http://a.test/b//w",
    "http://a.test/b/./c/d",
    "http://a.test/b/%2e%2e/c/d",
    "http://a.test/b/c/e",
    "http://a.test/b/x",
    "http://a.test/",
    "https://a.test/b/c/d",
    "http://a.test/b/c/%7Ed%20e?q=1",
    "http://a.test/b/c/\u00e9t\u00e9",
    "http://a.test:8080/b/c/d",
]
_REF_PIECES = st.sampled_from(
    [
        "/",
        "a",
        "..",
        "../",
        ".",
        "?",
        "#",
        ":",
        "//",
        "\\",
        "\t",
        " ",
        "http:",
        "https:",
        "http://h",
        "mailto:",
        "%2e",
        "b.html",
        "\u00e9",
        "@",
        "x=1",
    ]
)


@settings(max_examples=1000)
@given(
    refs=st.lists(st.lists(_REF_PIECES, max_size=5).map("".join), min_size=1, max_size=8),
    order=st.permutations(range(len(_CACHE_BASES))),
)
def test_cached_resolution_matches_resolving_each_reference(
    refs: list[str], order: list[int]
) -> None:
    # The cache is shared by every page: resolving the same references against bases in any
    # order must give exactly what a fresh resolution gives.
    for index in order:
        base = extract_module._Base(_CACHE_BASES[index])
        expected = [extract_module._resolve(ref, base) for ref in refs]
        assert extract_module._resolve_all(refs, base) == expected
        assert extract_module._resolve_all(refs, base) == expected  # now from the cache


@pytest.mark.parametrize(
    "ref",
    [
        *("../a", "../../a", "../../../../a", "../.x", "../", "..//a", "../?q", "../\\"),
        *("../\\a", "../%2e/a", "../\t../a"),
    ],
)
def test_parent_references_cached_per_parent_match_resolving_each(ref: str) -> None:
    # "../x" is cached as "x" against the parent folder: every base must still get exactly
    # what resolving it afresh gives, including bases with "//", "." or "%2e" in their folders.
    bases = [
        "http://a.test/b/c/d",
        "http://a.test/b/e/f",
        "http://a.test/b/",
        "http://a.test/b/x",
        "http://a.test/x",
        "http://a.test/b//c/d",
        "http://a.test/b/./c/d",
        "http://a.test/b/%2e%2e/c/d",
        "http://a.test/b/c/d/../e",
    ]
    extract_module._resolved.clear()
    for _ in range(2):  # the second round reads what the first one cached
        for url in bases:
            base = extract_module._Base(url)
            assert extract_module._resolve_all([ref], base) == [extract_module._resolve(ref, base)]


@pytest.mark.parametrize("rest", ["a", "\\", "\\a", "\ta", "a b", "\u00e9", "%2e%2e/a", "./a"])
def test_a_climbed_reference_never_reads_another_references_entry(rest: str) -> None:
    # "../rest" from /b/c/ shares its key with "rest" from /b/: only right when both resolve
    # alike, which clean-up (a backslash read as "/", say) could break.
    extract_module._resolved.clear()
    parent, child = (
        extract_module._Base("http://a.test/b/x"),
        extract_module._Base("http://a.test/b/c/d"),
    )
    extract_module._resolve_all([rest], parent)
    climbed = "../" + rest
    assert extract_module._resolve_all([climbed], child) == [
        extract_module._resolve(climbed, child)
    ]


def test_resolution_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract_module, "_RESOLVED_MAX", 10)
    monkeypatch.setattr(extract_module, "_resolved", {})
    for page in range(50):
        html = "".join(f'<a href="/p{page}-{i}">x</a>' for i in range(5))
        assert len(extract_links(html, "http://a.test/")) == 5
    assert len(extract_module._resolved) <= 10 + 5


def test_empty_path_segments_are_kept_as_rfc_3986_says() -> None:
    assert resolve_link("a//b/../c", RFC_BASE) == "http://a/b/c/a//c"


def test_dot_segments_of_absolute_links_are_removed() -> None:
    html = '<a href="http://other.test/a/../b/./c">x</a><a href="//cdn.test/x/y/..">y</a>'
    assert extract_links(html, PAGE) == ["http://other.test/b/c", "http://cdn.test/x/"]


def test_every_link_element_is_extracted_in_document_order() -> None:
    html = """<html><head><link rel="stylesheet" href="/style.css"></head><body>
        <a href="one.html">1</a> <iframe src="frame.html"></iframe>
        <map><area href="/area" shape="rect" coords="0,0,1,1"></map>
        <a href="https://other.test/two">2</a></body></html>"""
    assert extract_links(html, PAGE) == [
        "http://site.test/style.css",
        "http://site.test/dir/one.html",
        "http://site.test/dir/frame.html",
        "http://site.test/area",
        "https://other.test/two",
    ]


def test_frame_sources_in_a_frameset_are_extracted() -> None:
    html = '<html><frameset><frame src="left.html"><frame src="/right.html"></frameset></html>'
    assert extract_links(html, PAGE) == [
        "http://site.test/dir/left.html",
        "http://site.test/right.html",
    ]


def test_src_of_anchor_and_href_of_iframe_are_not_links() -> None:
    html = '<a src="not-a-link">x</a><iframe href="nor-this"></iframe><img src="/img.png">'
    assert extract_links(html, PAGE) == []


def test_links_resolve_against_the_final_url_given() -> None:
    html = '<a href="next.html">next</a>'
    final = yarl.URL("https://moved.test/new/place/index.html")
    assert extract_links(html, final) == ["https://moved.test/new/place/next.html"]


def test_base_href_is_honoured_and_may_be_relative() -> None:
    html = '<head><base href="/other/dir/"></head><a href="x.html">x</a><a href="/abs">y</a>'
    assert extract_links(html, PAGE) == [
        "http://site.test/other/dir/x.html",
        "http://site.test/abs",
    ]


def test_only_the_first_base_counts_even_after_links() -> None:
    html = '<a href="x">x</a><base href="http://b1.test/p/"><base href="http://b2.test/q/">'
    links = extract_links(html, PAGE)
    assert "http://b1.test/p/x" in links
    assert not any("b2.test/q/x" in link for link in links)


def test_a_base_href_that_is_not_http_is_ignored() -> None:
    html = '<base href="javascript:alert(1)"><a href="x.html">x</a>'
    assert extract_links(html, PAGE) == ["http://site.test/dir/x.html"]


def test_fragment_only_link_with_a_base_points_at_the_base() -> None:
    html = '<base href="http://elsewhere.test/doc.html"><a href="#top">top</a>'
    assert extract_links(html, PAGE) == ["http://elsewhere.test/doc.html"]


@pytest.mark.parametrize(
    "href",
    [
        "javascript:void(0)",
        "JavaScript:alert('x')",
        " javascript:x",
        "mailto:someone@site.test",
        "data:text/html,<a href=x>",
        "tel:+123",
        "ftp://files.site.test/x",
        "",
        "   ",
        "#section",
        "page.html#",
        "https:no-authority",
        "http://",
        "http:///path",
        "http://bad host.test/",
        "http://site.test:99999/",
        "http://[::1/",
        "http://a..b/",
    ],
)
def test_junk_hrefs_yield_nothing(href: str) -> None:
    html = f'<a href="{href}">x</a>'
    assert extract_links(html, "http://site.test/dir/page.html") == []


def test_whitespace_tabs_and_newlines_in_hrefs_are_cleaned_like_a_browser() -> None:
    html = '<a href="  \n /a/b\t/c\n.html  ">x</a><a href="\\back\\slash?q=\\x">y</a>'
    assert extract_links(html, PAGE) == [
        "http://site.test/a/b/c.html",
        "http://site.test/back/slash?q=%5Cx",
    ]


def test_fragments_are_dropped_and_duplicates_removed_in_order() -> None:
    html = """<a href="b.html#one">b</a><a href="a.html">a</a><a href="b.html#two">b</a>
        <a href="http://site.test/dir/a.html">a again</a><a href="c.html">c</a>"""
    assert extract_links(html, PAGE) == [
        "http://site.test/dir/b.html",
        "http://site.test/dir/a.html",
        "http://site.test/dir/c.html",
    ]


def test_links_to_the_page_itself_are_left_out() -> None:
    html = '<a href="page.html">self</a><a href="#x">self</a><a href="">self</a><a href="o">o</a>'
    assert extract_links(html, PAGE) == ["http://site.test/dir/o"]


def test_the_page_url_must_be_absolute_http() -> None:
    for bad in ("/relative/page.html", "ftp://files.test/", "", "mailto:x@y.test"):
        with pytest.raises(ValueError, match="absolute http"):
            extract_links('<a href="x">x</a>', bad)


def test_an_upper_case_page_scheme_still_resolves() -> None:
    assert extract_links('<a href="http:x">x</a><a href="y">y</a>', "HTTP://site.test/a/") == [
        "http://site.test/a/x",
        "http://site.test/a/y",
    ]


def test_self_links_are_recognised_whatever_the_page_url_spelling() -> None:
    html = '<a href="/">home</a><a href="/x">x</a>'
    assert extract_links(html, "HTTP://site.test") == ["http://site.test/x"]


def test_scheme_and_empty_path_are_normalised_for_dedupe() -> None:
    html = '<a href="HTTP://Other.test">a</a><a href="http://Other.test/">b</a>'
    assert extract_links(html, PAGE) == ["http://Other.test/"]


def test_same_scheme_without_authority_is_relative() -> None:
    assert extract_links('<a href="http:sibling.html">s</a>', PAGE) == [
        "http://site.test/dir/sibling.html"
    ]


def test_non_ascii_and_spaces_are_percent_encoded_and_hosts_idna_encoded() -> None:
    html = '<a href="/caf\u00e9 menu?q=\u00e9">x</a><a href="http://b\u00fccher.test/">y</a>'
    assert extract_links(html, PAGE) == [
        "http://site.test/caf%C3%A9%20menu?q=%C3%A9",
        "http://xn--bcher-kva.test/",
    ]


def test_ports_userinfo_and_ipv6_hosts_are_kept() -> None:
    html = """<a href="http://127.0.0.1:8001/x">a</a><a href="http://u:p@site.test/y">b</a>
        <a href="http://[::1]:8080/z">c</a>"""
    assert extract_links(html, PAGE) == [
        "http://127.0.0.1:8001/x",
        "http://u:p@site.test/y",
        "http://[::1]:8080/z",
    ]


def test_nofollow_links_are_followed_unless_asked() -> None:
    html = '<a href="a" rel="nofollow">a</a><a href="b" rel="external NoFollow">b</a><a href="c">c'
    assert len(extract_links(html, PAGE)) == 3
    assert extract_links(html, PAGE, honor_nofollow=True) == ["http://site.test/dir/c"]


@pytest.mark.parametrize("content", ["nofollow", "noindex, NOFOLLOW", "none"])
def test_meta_robots_nofollow_drops_every_link_when_honoured(content: str) -> None:
    html = f'<head><meta name="Robots" content="{content}"></head><a href="a">a</a>'
    assert extract_links(html, PAGE) == ["http://site.test/dir/a"]
    assert extract_links(html, PAGE, honor_nofollow=True) == []


def test_meta_robots_without_nofollow_keeps_links() -> None:
    html = '<meta name="robots" content="noindex"><meta name="description" content="none">'
    html += '<a href="a">a</a>'
    assert extract_links(html, PAGE, honor_nofollow=True) == ["http://site.test/dir/a"]


def test_broken_html_still_yields_its_links() -> None:
    html = '<html><body><div><a href="one">one<p><a href=two>two<table><a href="three'
    html += "\"><td><a href='four'>"
    links = extract_links(html, PAGE)
    assert links[:2] == ["http://site.test/dir/one", "http://site.test/dir/two"]
    assert "http://site.test/dir/four" in links


def test_an_empty_document_has_no_links() -> None:
    assert extract_links("", PAGE) == []
    assert extract_links_from_body(b"", PAGE, "text/html") == []


# --- encodings ---------------------------------------------------------------------------------


def test_encoding_from_the_content_type_header() -> None:
    assert html_encoding(b"<p>x</p>", "text/html; charset=ISO-8859-2") == "iso8859-2"
    assert html_encoding(b"<p>x</p>", 'text/html; charset="utf-8"') == "utf-8"


def test_a_byte_order_mark_beats_the_header() -> None:
    body = codecs.BOM_UTF16_LE + "<a href=x>".encode("utf-16-le")
    assert html_encoding(body, "text/html; charset=iso-8859-1") == "utf-16-le"
    assert html_encoding(codecs.BOM_UTF8 + b"<p>", "text/html; charset=cp1251") == "utf-8"


def test_encoding_from_meta_charset_and_http_equiv() -> None:
    assert html_encoding(b'<head><meta charset="windows-1251">') == "whatwg-windows-1251"
    equiv = b'<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">'
    assert html_encoding(equiv) == "whatwg-shift-jis"


def test_meta_after_the_first_kilobyte_is_not_read() -> None:
    body = b"<!--" + b"x" * 1100 + b'--><meta charset="koi8-r">'
    assert html_encoding(body) == "utf-8"


def test_unknown_or_utf16_labels_fall_back_sensibly() -> None:
    assert html_encoding(b"<p>x</p>", "text/html; charset=no-such-charset") == "utf-8"
    assert html_encoding(b'<meta charset="utf-16">') == "utf-8"
    assert html_encoding(b"caf\xe9") == "whatwg-windows-1252"
    # Browsers read "iso-8859-1" and "ascii" as windows-1252.
    assert html_encoding(b"x", "text/html; charset=iso-8859-1") == "whatwg-windows-1252"


def test_links_in_a_declared_legacy_encoding_are_decoded_then_utf8_encoded() -> None:
    body = '<a href="/caf\u00e9.html">x</a>'.encode("cp1252")
    assert extract_links_from_body(body, PAGE, "text/html; charset=windows-1252") == [
        "http://site.test/caf%C3%A9.html"
    ]


def test_utf16_page_with_bom_is_read() -> None:
    body = codecs.BOM_UTF16_BE + '<a href="/\u00fcber">x</a>'.encode("utf-16-be")
    assert extract_links_from_body(body, PAGE, None) == ["http://site.test/%C3%BCber"]


def test_undecodable_bytes_do_not_stop_extraction() -> None:
    body = b'<a href="/ok">x</a>\xff\xfe\x80<a href="/also">y</a>'
    links = extract_links_from_body(body, PAGE, "text/html; charset=utf-8")
    assert links == ["http://site.test/ok", "http://site.test/also"]


def test_body_extraction_honours_nofollow() -> None:
    body = b'<a href="/a" rel="nofollow">a</a><a href="/b">b</a>'
    assert extract_links_from_body(body, PAGE, "text/html", honor_nofollow=True) == [
        "http://site.test/b"
    ]


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/html", True),
        ("TEXT/HTML; charset=utf-8", True),
        ("application/xhtml+xml", True),
        ("text/plain", False),
        ("application/octet-stream", False),
        ("image/png", False),
        ("text/htmlx", False),
    ],
)
def test_is_html_by_content_type(content_type: str, expected: bool) -> None:
    assert is_html(content_type, b"<html>") is expected


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"<!DOCTYPE html><html>", True),
        (b"\n  <html lang=en>", True),
        (b"<!-- note --> <head>", True),
        (codecs.BOM_UTF8 + b"<body>", True),
        (b"\x89PNG\r\n", False),
        (b"plain text <html>", False),
        (b"", False),
    ],
)
def test_is_html_sniffs_untyped_bodies(head: bytes, expected: bool) -> None:
    assert is_html(None, head) is expected


def test_remembered_resolutions_still_depend_on_each_page() -> None:
    html = '<a href="next.html">n</a><a href="/top">t</a><a href="http://x.test/a">a</a>'
    first = extract_links(html, "http://site.test/one/page.html")
    second = extract_links(html, "http://site.test/two/page.html")
    other = extract_links(html, "https://other.test/one/page.html")
    again = extract_links(html, "http://site.test/one/page.html")
    assert (
        first
        == again
        == ["http://site.test/one/next.html", "http://site.test/top", "http://x.test/a"]
    )
    assert second == ["http://site.test/two/next.html", "http://site.test/top", "http://x.test/a"]
    assert other == [
        "https://other.test/one/next.html",
        "https://other.test/top",
        "http://x.test/a",
    ]
    based = extract_links('<base href="http://cdn.test/b/">' + html, "http://site.test/one/p")
    assert based == ["http://cdn.test/b/next.html", "http://cdn.test/top", "http://x.test/a"]
