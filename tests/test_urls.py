"""URL canonicalization rules, one behaviour per test (the property tests are in
test_urls_properties.py)."""

from __future__ import annotations

import hashlib

import pytest

from crawler.urls import (
    InvalidURL,
    UnsupportedScheme,
    canonical_parts,
    canonicalize,
    fingerprint,
    fingerprint_canonical,
    host_key,
)


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("HTTP://Example.COM/", "http://example.com/"),
        ("http://example.com", "http://example.com/"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("http://example.com:/a", "http://example.com/a"),
        ("http://example.com/a#section", "http://example.com/a"),
        ("http://example.com/a/./b/../c", "http://example.com/a/c"),
        ("http://example.com/../../a", "http://example.com/a"),
        ("http://example.com/a/b/..", "http://example.com/a/"),
        ("http://example.com/a/.", "http://example.com/a/"),
        ("http://example.com/%2e%2E/x", "http://example.com/x"),
        ("http://example.com/%7Euser/%41%62", "http://example.com/~user/Ab"),
        ("http://example.com/a%2fb%3f", "http://example.com/a%2Fb%3F"),
        ("http://example.com/a b", "http://example.com/a%20b"),
        ("http://example.com/ä", "http://example.com/%C3%A4"),
        ("http://example.com/100%", "http://example.com/100%25"),
        ("http://example.com/%zz", "http://example.com/%25zz"),
        ("http://example.com/a//b", "http://example.com/a//b"),
        ("http://example.com/?b=2&a=1", "http://example.com/?b=2&a=1"),
        ("http://example.com/?", "http://example.com/"),
        ("http://example.com/?q=a+b&r=%7e", "http://example.com/?q=a+b&r=~"),
        ("http://example.com/?q=<x>", "http://example.com/?q=%3Cx%3E"),
        ("  http://example.com/a\n\t ", "http://example.com/a"),
        ("http://exa\nmple.com/", "http://example.com/"),
        ("http://example.com\\a\\b?c\\d", "http://example.com/a/b?c%5Cd"),
        ("http://EXAMPLE.com./", "http://example.com/"),
        ("http://bücher.de/", "http://xn--bcher-kva.de/"),
        ("http://BÜCHER.de/", "http://xn--bcher-kva.de/"),
        ("http://xn--bcher-kva.de/", "http://xn--bcher-kva.de/"),
        ("http://%62ad.example/", "http://bad.example/"),
        ("http://[::FFFF:1.2.3.4]:8080/", "http://[::ffff:102:304]:8080/"),
        ("http://[2001:DB8:0::1]/", "http://[2001:db8::1]/"),
        ("http://User:P%61ss@example.com/", "http://User:Pass@example.com/"),
        ("http://127.0.0.1:8000/x", "http://127.0.0.1:8000/x"),
    ],
)
def test_canonical_form(given: str, canonical: str) -> None:
    assert canonicalize(given) == canonical


def test_query_order_is_kept_unless_sorting_is_asked_for() -> None:
    url = "http://example.com/s?z=1&a=2&m=3"
    assert canonicalize(url) == url
    assert canonicalize(url, sort_query=True) == "http://example.com/s?a=2&m=3&z=1"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "example.com/no-scheme",
        "//example.com/no-scheme",
        "http:example.com",
        "http:///path-only",
        "http://exa mple.com/",
        "http://example.com:99999/",
        "http://example.com:8x/",
        "http://[::1/",
        "http://[not-ipv6]/",
        "http://a..b/",
        "http://%ff%fe/",
        "http://xn--a.xn--b.\u0378/",
    ],
)
def test_invalid_urls_raise_invalid_url(bad: str) -> None:
    with pytest.raises(InvalidURL):
        canonicalize(bad)


@pytest.mark.parametrize("url", ["ftp://example.com/", "mailto:a@b.c", "javascript:void(0)"])
def test_other_schemes_are_unsupported(url: str) -> None:
    with pytest.raises(UnsupportedScheme, match="unsupported URL scheme"):
        canonicalize(url)


def test_non_string_is_invalid() -> None:
    with pytest.raises(InvalidURL, match="string"):
        canonicalize(b"http://example.com/")  # type: ignore[arg-type]


def test_fingerprint_is_blake2b_128_of_the_canonical_url() -> None:
    url = "HTTP://Example.com:80/a/../b#x"
    expected = hashlib.blake2b(b"http://example.com/b", digest_size=16).digest()
    assert fingerprint(url) == expected
    assert fingerprint_canonical("http://example.com/b") == expected
    assert len(fingerprint(url)) == 16


def test_equivalent_spellings_share_a_fingerprint_and_others_do_not() -> None:
    same = {fingerprint(u) for u in ["http://a.test/x", "http://A.TEST:80/x#f", "http://a.test/%78"]}
    assert len(same) == 1
    different = {fingerprint(u) for u in ["http://a.test/x", "https://a.test/x", "http://a.test/X"]}
    assert len(different) == 3


def test_parts_give_host_key_and_origin() -> None:
    plain = canonical_parts("https://Example.com/a")
    assert (plain.scheme, plain.host, plain.port) == ("https", "example.com", 443)
    assert (plain.host_key, plain.origin) == ("example.com", "https://example.com")
    ported = canonical_parts("http://127.0.0.1:8001/x")
    assert (ported.host_key, ported.origin) == ("127.0.0.1:8001", "http://127.0.0.1:8001")
    assert host_key("http://a.test/") == host_key("https://a.test/") == "a.test"
    assert host_key("http://[::1]:9000/") == "[::1]:9000"


def test_bytes_smuggled_in_as_surrogates_are_escaped_as_those_bytes() -> None:
    # `crawl mirror` reads argv, which Python decodes with surrogateescape: `\xe9` typed in a
    # Latin-1 terminal arrives as U+DCE9 and means the byte 0xE9.
    assert canonicalize("http://h/caf\udce9?q=\udce9") == "http://h/caf%E9?q=%E9"
    assert canonicalize("http://h/caf\u00e9") == "http://h/caf%C3%A9"
    assert canonicalize("http://h/\ud800") == "http://h/%ED%A0%80"  # no byte behind it: kept
