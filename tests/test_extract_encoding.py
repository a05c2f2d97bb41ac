"""The query of a link is percent-encoded in its document's encoding, as browsers do.

WHATWG URL ("percent-encode after encoding", used by the query state): a page in a legacy
encoding sends the query of its links in that encoding, and what the encoding cannot hold as the
character reference "&#NNNN;", percent-encoded. The path, host and UTF-8 pages are unaffected.
"""

from __future__ import annotations

import html
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler import extract as extract_module
from crawler.extract import extract_links, extract_links_from_body, html_encoding
from crawler.urls import canonicalize

PAGE = "http://site.test/dir/page.html"


def links_of(href: str, charset: str) -> list[str]:
    """The links of a one-link page written in `charset` and served as such.

    Characters `charset` cannot hold are written as character references, as an author's
    editor would; the parser reads them back to the character itself.
    """
    body = f'<a href="{href}">x</a>'.encode(charset, "xmlcharrefreplace")
    return extract_links_from_body(body, PAGE, f"text/html; charset={charset}")


@pytest.mark.parametrize(
    ("charset", "href", "expected"),
    [
        ("windows-1252", "/s?q=caf\u00e9", "http://site.test/s?q=caf%E9"),
        ("windows-1252", "/s?q=\u20ac5", "http://site.test/s?q=%805"),  # not Latin-1: 0x80
        ("iso-8859-1", "/s?q=caf\u00e9", "http://site.test/s?q=caf%E9"),  # read as windows-1252
        ("iso-8859-2", "/s?q=\u0151", "http://site.test/s?q=%F5"),
        # The URL Standard's own Shift_JIS example: "≡" is 0x81 0xDF.
        ("shift_jis", "/s?q=\u2261", "http://site.test/s?q=%81%DF"),
        ("shift_jis", "/s?q=\u65e5\u672c", "http://site.test/s?q=%93%FA%96%7B"),
        ("euc-jp", "/s?q=\u65e5\u672c", "http://site.test/s?q=%C6%FC%CB%DC"),
        ("gbk", "/s?q=\u4e2d\u6587", "http://site.test/s?q=%D6%D0%CE%C4"),
        # A Shift_JIS trail byte may be 0x5C ("ソ" is 0x83 0x5C): escaped, not a backslash.
        ("shift_jis", "/s?k=\u30bd", "http://site.test/s?k=%83%5C"),
    ],
)
def test_the_query_is_encoded_in_the_documents_encoding(
    charset: str, href: str, expected: str
) -> None:
    assert links_of(href, charset) == [expected]


@pytest.mark.parametrize(
    ("charset", "href", "expected"),
    [
        # The URL Standard's example: "‽" is not in Shift_JIS.
        ("shift_jis", "/s?q=\u2261\u203d", "http://site.test/s?q=%81%DF%26%238253%3B"),
        ("windows-1252", "/s?q=\u65e5x", "http://site.test/s?q=%26%2326085%3Bx"),
        ("iso-8859-2", "/s?q=\u00e9\U0001f600", "http://site.test/s?q=%E9%26%23128512%3B"),
    ],
)
def test_what_the_encoding_cannot_hold_becomes_a_character_reference(
    charset: str, href: str, expected: str
) -> None:
    assert links_of(href, charset) == [expected]


def test_a_utf8_page_keeps_utf8_queries() -> None:
    assert links_of("/s?q=caf\u00e9&j=\u65e5", "utf-8") == [
        "http://site.test/s?q=caf%C3%A9&j=%E6%97%A5"
    ]
    # And so does text extraction with no encoding given.
    assert extract_links('<a href="/s?q=caf\u00e9">x</a>', PAGE) == [
        "http://site.test/s?q=caf%C3%A9"
    ]


def test_a_utf16_page_sends_utf8_queries() -> None:
    body = b"\xff\xfe" + '<a href="/s?q=caf\u00e9">x</a>'.encode("utf-16-le")
    assert extract_links_from_body(body, PAGE, None) == ["http://site.test/s?q=caf%C3%A9"]


@pytest.mark.parametrize(
    "href",
    [
        "/s?q=caf%E9",
        "/s?q=caf%C3%A9",
        "/s?q=%26%2326085%3B&x=%e9",
        "/s?a=b&c=d+e",
    ],
)
def test_an_escaped_query_is_left_as_it_is(href: str) -> None:
    expected = extract_links(f'<a href="{href}">x</a>', PAGE)
    assert links_of(href, "windows-1252") == links_of(href, "shift_jis") == expected
    assert expected == ["http://site.test" + href]


def test_escapes_beside_new_characters_stay_as_they_are() -> None:
    # As if the author had escaped the "é" himself; "%zz" is no escape and is left to the
    # resolution rules for ASCII (canonicalization later makes it "%25zz").
    written = extract_links('<a href="/s?q=%C3%A9%E9%zz">x</a>', PAGE)
    assert links_of("/s?q=%C3%A9\u00e9%zz", "windows-1252") == written
    assert written[0].startswith("http://site.test/s?q=%C3%A9%E9%")


def test_the_path_stays_utf8_while_the_query_follows_the_page() -> None:
    assert links_of("/caf\u00e9/?q=caf\u00e9", "windows-1252") == [
        "http://site.test/caf%C3%A9/?q=caf%E9"
    ]
    assert links_of("\u65e5/x?q=\u65e5", "euc-jp") == ["http://site.test/dir/%E6%97%A5/x?q=%C6%FC"]


def test_the_host_and_the_fragment_are_not_touched() -> None:
    assert links_of("http://b\u00fccher.test/x?q=\u00fc#\u00fc", "windows-1252") == [
        "http://xn--bcher-kva.test/x?q=%FC"
    ]
    # A '?' inside the fragment does not start a query.
    assert links_of("/x#frag?q=\u00e9", "windows-1252") == ["http://site.test/x"]


def test_every_kind_of_reference_gets_its_query_encoded() -> None:
    links = links_of("?q=\u00e9", "windows-1252")
    links += links_of("//cdn.test/a?q=\u00e9", "windows-1252")
    links += links_of("http:?q=\u00e9", "windows-1252")
    links += links_of(" ../up?q=\u00e9\t", "windows-1252")
    assert links == [
        "http://site.test/dir/page.html?q=%E9",
        "http://cdn.test/a?q=%E9",
        "http://site.test/dir/page.html?q=%E9",
        "http://site.test/up?q=%E9",
    ]


def test_a_character_reference_in_the_attribute_is_encoded_like_the_character() -> None:
    body = b'<a href="/s?q=caf&eacute;&amp;x=&#233;">x</a>'  # ASCII bytes, non-ASCII href
    assert extract_links_from_body(body, PAGE, "text/html; charset=windows-1252") == [
        "http://site.test/s?q=caf%E9&x=%E9"
    ]


def test_the_encoding_declared_in_a_meta_tag_counts_too() -> None:
    body = '<meta charset="shift_jis"><a href="/s?q=\u2261">x</a>'.encode("shift_jis")
    assert extract_links_from_body(body, PAGE, "text/html") == ["http://site.test/s?q=%81%DF"]


def test_the_query_of_a_base_href_is_encoded_too() -> None:
    body = '<base href="/b/?q=caf\u00e9"><a href="#top">t</a><a href="x">x</a>'.encode("cp1252")
    assert extract_links_from_body(body, PAGE, "text/html; charset=windows-1252") == [
        "http://site.test/b/?q=caf%E9",
        "http://site.test/b/x",
    ]


def test_the_same_reference_on_pages_of_two_encodings_resolves_per_page() -> None:
    """The cross-page resolution cache must not hand one page's query to the other."""
    href = "/shared?q=caf\u00e9"
    utf8 = links_of(href, "utf-8")
    legacy = links_of(href, "windows-1252")
    assert (utf8, legacy, links_of(href, "utf-8")) == (
        ["http://site.test/shared?q=caf%C3%A9"],
        ["http://site.test/shared?q=caf%E9"],
        ["http://site.test/shared?q=caf%C3%A9"],
    )


def test_the_encoded_query_survives_canonicalization() -> None:
    [link] = links_of("/s?q=caf\u00e9&j=\u65e5", "windows-1252")
    assert canonicalize(link) == link == "http://site.test/s?q=caf%E9&j=%26%2326085%3B"


def test_extract_links_takes_the_encoding_as_an_argument() -> None:
    text = '<a href="/s?q=caf\u00e9">x</a>'
    assert extract_links(text, PAGE, encoding="cp1252") == ["http://site.test/s?q=caf%E9"]
    assert extract_links(text, PAGE, encoding="UTF-8") == ["http://site.test/s?q=caf%C3%A9"]
    with pytest.raises(LookupError):
        extract_links(text, PAGE, encoding="no-such-codec")


def test_utf8_pages_and_ascii_links_do_no_query_work(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(ref: str, codec: str) -> str:
        raise AssertionError(f"query encoding ran for {ref!r} ({codec})")

    monkeypatch.setattr(extract_module, "_with_encoded_query", fail)
    body = '<a href="/s?q=caf\u00e9">x</a><a href="/t?q=1">y</a>'
    assert len(extract_links_from_body(body.encode(), PAGE, "text/html; charset=utf-8")) == 2
    ascii_only = b'<a href="/s?q=caf%E9">x</a><a href="/t?q=1">y</a><p>caf\xe9</p>'
    assert len(extract_links_from_body(ascii_only, PAGE, "text/html; charset=cp1252")) == 2


@pytest.mark.parametrize("label", ["rot13", "base64", "zlib", "idna", "punycode", "undefined"])
def test_a_charset_no_browser_knows_falls_back_instead_of_failing(label: str) -> None:
    body = '<a href="/s?q=caf\u00e9">x</a>'.encode()
    assert html_encoding(body, f"text/html; charset={label}") == "utf-8"
    assert extract_links_from_body(body, PAGE, f"text/html; charset={label}") == [
        "http://site.test/s?q=caf%C3%A9"
    ]


# Representable in some of the codecs below and not in others; ASCII that resolution leaves be.
QUERY_CHARS = "abcXYZ019-._~!$'()*+,;=:@/?&" + "\u00e9\u00fc\u00df\u0151\u20ac"
QUERY_CHARS += "\u65e5\u672c\u30a2\u2261\u203d"


@settings(max_examples=200, deadline=None)
@given(
    query=st.text(QUERY_CHARS, max_size=12),
    charset=st.sampled_from(["cp1252", "iso8859-2", "shift_jis", "euc-jp", "gb18030", "utf-8"]),
)
def test_the_query_decodes_to_the_documents_bytes(query: str, charset: str) -> None:
    """Percent-decoded, the query sent is the document's encoding of it, with a character
    reference where the encoding has no byte sequence (an oracle independent of the escaping
    rules: which bytes stay literal does not change what they decode to)."""
    body = f'<a href="/p?{html.escape(query)}">x</a>'.encode(charset, "xmlcharrefreplace")
    [link] = extract_links_from_body(body, PAGE, f"text/html; charset={charset}")
    assert link.startswith("http://site.test/p?")
    assert unquote_to_bytes(link.partition("?")[2]) == query.encode(charset, "xmlcharrefreplace")


def test_agrees_with_w3lib_where_the_encoding_holds_every_character() -> None:
    import w3lib.url as w3lib_url  # Scrapy's escaping: a test peer (in the [test] extras)
    cases = [
        ("cp1252", "/caf\u00e9?q=caf\u00e9&e=%E9&s=\u20ac"),
        ("shift_jis", "/x?q=\u65e5\u672c&k=\u30bd"),
        ("euc-jp", "/x?q=\u65e5\u672c"),
        ("iso8859-2", "/x?z=\u0151"),
        ("gb18030", "/x?q=\u4e2d\u6587"),
        ("utf-8", "/x?q=caf\u00e9"),
    ]
    for charset, href in cases:
        expected = w3lib_url.safe_url_string("http://site.test" + href, encoding=charset)
        assert links_of(href, charset) == [expected], charset


# --- labels and decoders as the WHATWG Encoding Standard has them ------------------------------


def served(body: bytes, charset: str) -> list[str]:
    return extract_links_from_body(body, PAGE, f"text/html; charset={charset}")


@pytest.mark.parametrize(
    "label",
    ["utf-7", "utf-32", "utf-32-le", "unicode_escape", "raw_unicode_escape", "latin_1",
     "iso8859_15", "cp437", "hz", "euc_jis_2004", "shift_jisx0213"],
)  # fmt: skip
def test_python_only_labels_are_ignored_like_unknown_ones(label: str) -> None:
    """Python knows these, no browser does: the fallback applies (UTF-8, else windows-1252)."""
    utf8 = '<a href="/s?q=caf\u00e9">x</a>'.encode()
    assert html_encoding(utf8, f"text/html; charset={label}") == "utf-8"
    assert html_encoding(f'<meta charset="{label}">'.encode() + utf8) == "utf-8"
    assert served(utf8, label) == ["http://site.test/s?q=caf%C3%A9"]
    assert html_encoding(b"caf\xe9", f"text/html; charset={label}") == "whatwg-windows-1252"


@pytest.mark.parametrize("charset", ["windows-1252", "iso-8859-1", "ascii", None])
def test_the_five_bytes_python_leaves_out_of_cp1252_are_c1_controls(charset: str | None) -> None:
    """Browsers decode 0x81, 0x8D, 0x8F, 0x90 and 0x9D as U+0081 ... (not U+FFFD), and their
    windows-1252 encoder writes them back as those bytes."""
    body = b'<a href="/s?q=\x81\x8d\x8f\x90\x9d\x80">x</a>'
    content_type = None if charset is None else f"text/html; charset={charset}"
    [link] = extract_links_from_body(body, PAGE, content_type)
    assert link == "http://site.test/s?q=%81%8D%8F%90%9D%80"
    assert (
        body.decode(html_encoding(body, content_type))
        == '<a href="/s?q=\x81\x8d\x8f\x90\x9d\u20ac">x</a>'
    )


@pytest.mark.parametrize(
    ("char", "escaped"),
    [
        ("\u2460", "%87@"),  # CIRCLED DIGIT ONE: NEC row 13
        ("\u2116", "%87%82"),  # NUMERO SIGN: NEC row 13
        # IBM extensions, which Python's cp932 would write at their NEC-selected duplicates
        ("\u9ad9", "%FB%FC"),  # a variant of "\u9ad8"
        ("\u7e8a", "%FA%5C"),  # the trail byte is "\\"
    ],
)
def test_a_shift_jis_page_is_windows_31j(char: str, escaped: str) -> None:
    """Browsers decode Shift_JIS as Microsoft's cp932, extensions included, and encode the query
    of its links so; Python's shift_jis knows none of these characters."""
    body = f'<a href="/s?q={char}">{char}</a>'.encode("cp932")
    assert served(body, "shift_jis") == [f"http://site.test/s?q={escaped}"]
    assert served(b'<meta charset="sjis">' + body, "") == [f"http://site.test/s?q={escaped}"]
    assert extract_links(f'<a href="/s?q={char}">x</a>', PAGE, encoding="shift_jis") == [
        f"http://site.test/s?q={escaped}"
    ]


def test_an_euc_kr_page_is_unified_hangul_code() -> None:
    """ "똠" (0x8C 0x63) is one of the 8,822 syllables cp949 adds to EUC-KR; browsers decode
    all of them."""
    body = '<a href="/\ub620?q=\ub620">\ub620</a>'.encode("cp949")
    assert served(body, "euc-kr") == ["http://site.test/%EB%98%A0?q=%8Cc"]
    assert served(body, "ks_c_5601-1987") == ["http://site.test/%EB%98%A0?q=%8Cc"]


@pytest.mark.parametrize(
    "label",
    ["iso-2022-kr", "csiso2022kr", "hz-gb-2312", "iso-2022-cn", "iso-2022-cn-ext", "replacement"],
)
def test_a_page_in_a_replacement_encoding_has_no_links(label: str) -> None:
    """These encodings can hide markup in ASCII bytes, so browsers decode the whole page as one
    U+FFFD: a reader cannot follow any of its links, and a crawler should not guess them."""
    body = b'<a href="/a">a</a><a href="http://other.test/b">b</a>'
    assert served(body, label) == []
    assert extract_links_from_body(f'<meta charset="{label}">'.encode() + body, PAGE, None) == []


def test_a_meta_tag_declaring_utf16_means_utf8() -> None:
    """The prescan read the tag as ASCII, so the page is not UTF-16: browsers use UTF-8, for
    every UTF-16 label (Python knows only a few of them)."""
    labels = ["utf-16", "utf-16le", "utf-16be", "unicode", "ucs-2", "csunicode",
              "iso-10646-ucs-2", "unicodefeff", "unicodefffe"]  # fmt: skip
    found = {label: html_encoding(f'<meta charset="{label}"><p>caf\xe9'.encode("latin-1"))
             for label in labels}  # fmt: skip
    assert found == dict.fromkeys(labels, "utf-8")


def test_a_utf16_header_label_without_bom_is_little_endian() -> None:
    body = '<a href="/s?q=caf\u00e9">x</a>'.encode("utf-16-le")
    for label in ("utf-16", "unicode", "ucs-2"):
        assert html_encoding(body, f"text/html; charset={label}") == "utf-16-le"
        assert served(body, label) == ["http://site.test/s?q=caf%C3%A9"]


def test_x_user_defined_is_believed_from_the_header_only() -> None:
    body = b'<a href="/s?q=\x81">x</a>'
    assert served(body, "x-user-defined") == ["http://site.test/s?q=%81"]  # U+F781 and back
    meta = b'<meta charset="x-user-defined">' + body
    assert html_encoding(meta) == "whatwg-windows-1252"
    assert extract_links_from_body(meta, PAGE, None) == ["http://site.test/s?q=%81"]


def test_gbk_pages_decode_as_gb18030_and_encode_queries_as_gbk() -> None:
    # A lone 0x80 is the euro sign in both; the GBK encoder writes it as 0x80, gb18030 as A2 E3.
    assert served(b'<a href="/s?q=\x80">x</a>', "gbk") == ["http://site.test/s?q=%80"]
    assert served(b'<a href="/s?q=\x80">x</a>', "gb18030") == ["http://site.test/s?q=%A2%E3"]
    # A four-byte gb18030 character is read on a GBK page but sent as a character reference.
    four = "\U00020000".encode("gb18030")
    body = b'<a href="/s?q=' + four + b'">x</a>'
    assert served(body, "gbk") == ["http://site.test/s?q=%26%23131072%3B"]
    assert served(body, "gb18030") == ["http://site.test/s?q=%952%826"]


def test_iso_2022_jp_half_width_katakana_is_read() -> None:
    body = b'<a href="/\x1b(I\x31\x1b(B">x</a>'
    assert served(body, "iso-2022-jp") == ["http://site.test/%EF%BD%B1"]
