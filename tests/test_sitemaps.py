"""Sitemap parsing: robots.txt Sitemap: lines, <urlset>, <sitemapindex>, text, gzip, and the
limits and refusals that keep a hostile sitemap from costing more than a fair one."""

from __future__ import annotations

import gzip

import pytest

from crawler import sitemaps
from crawler.sitemaps import parse_sitemap, robots_sitemaps

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def urlset(*locs: str) -> bytes:
    entries = "".join(f"<url><loc>{loc}</loc><lastmod>2026-01-01</lastmod></url>" for loc in locs)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset {NS}>{entries}</urlset>'.encode()


def test_robots_txt_sitemap_lines_in_any_case_resolved_and_deduplicated() -> None:
    text = (
        "User-agent: *\nDisallow: /private\n"
        "Sitemap: https://a.test/s1.xml\n"
        "SITEMAP: /s2.xml.gz   # a comment\n"
        "sitemap:https://a.test/s1.xml\n"
    )
    assert robots_sitemaps(text, "https://a.test") == [
        "https://a.test/s1.xml",
        "https://a.test/s2.xml.gz",
    ]


def test_a_robots_txt_without_sitemap_lines_gives_the_conventional_place() -> None:
    assert robots_sitemaps("User-agent: *\nDisallow:\n", "http://a.test:8080") == [
        "http://a.test:8080/sitemap.xml"
    ]


def test_a_urlset_lists_pages() -> None:
    listed = parse_sitemap(urlset("http://a.test/1", " http://a.test/2 "), "http://a.test/s.xml")
    assert (listed.pages, listed.sitemaps, listed.problem) == (
        ["http://a.test/1", "http://a.test/2"],
        [],
        None,
    )


def test_extensions_locs_are_not_pages() -> None:
    """Only the sitemap namespace's <loc> lists a page (sitemaps.org); an image or video
    extension's <image:loc> names a picture of the page. A sitemap without xmlns still reads."""
    image = 'xmlns:image="http://www.google.com/schemas/sitemap-image/1.1"'
    body = (
        f"<urlset {NS} {image}><url><loc>http://a.test/page</loc>"
        "<image:image><image:loc>https://cdn.test/photo.jpg</image:loc></image:image></url>"
        "</urlset>"
    )
    assert parse_sitemap(body.encode(), "http://a.test/s.xml").pages == ["http://a.test/page"]
    plain = b"<urlset><url><loc>http://a.test/p</loc></url></urlset>"
    assert parse_sitemap(plain, "http://a.test/s.xml").pages == ["http://a.test/p"]


def test_an_index_lists_sitemaps() -> None:
    index = f"<sitemapindex {NS}><sitemap><loc>http://a.test/s1.xml</loc></sitemap>"
    index += "<sitemap><loc>/s2.xml</loc></sitemap></sitemapindex>"
    listed = parse_sitemap(index.encode(), "http://a.test/index.xml")
    assert listed.sitemaps == ["http://a.test/s1.xml", "http://a.test/s2.xml"]
    assert listed.pages == []


def test_gzip_is_undone_and_a_text_sitemap_is_one_url_a_line() -> None:
    packed = gzip.compress(urlset("http://a.test/z"))
    assert parse_sitemap(packed, "http://a.test/s.xml.gz").pages == ["http://a.test/z"]
    text = b"\xef\xbb\xbfhttp://a.test/x\r\n\r\nhttp://a.test/y\n"
    assert parse_sitemap(text, "http://a.test/s.txt").pages == ["http://a.test/x", "http://a.test/y"]


def test_a_dtd_is_refused_so_entities_cannot_expand() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><urlset><url><loc>&b;</loc></url></urlset>'
    )
    listed = parse_sitemap(laughs, "http://a.test/")
    assert listed.pages == [] and listed.problem == "refused: DTDForbidden"
    external = b'<!DOCTYPE u [<!ENTITY x SYSTEM "file:///etc/passwd">]><urlset><url><loc>&x;</loc>'
    assert parse_sitemap(external, "http://a.test/").problem == "refused: DTDForbidden"


def test_a_gzip_bomb_is_cut_at_the_protocol_s_50_mb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sitemaps, "MAX_SITEMAP_BYTES", 1 << 20)
    head = b"<urlset><url><loc>http://a.test/kept</loc></url>"
    bomb = gzip.compress(head + b" " * (64 << 20))  # 64 MiB of spaces in 64 KiB
    assert len(bomb) < 100_000
    listed = parse_sitemap(bomb, "http://a.test/")
    assert listed.pages == ["http://a.test/kept"]
    assert listed.problem == f"larger than {1 << 20:,} bytes uncompressed"


def test_at_most_50_000_urls_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sitemaps, "MAX_SITEMAP_URLS", 3)
    listed = parse_sitemap(urlset(*(f"http://a.test/{i}" for i in range(5))), "http://a.test/")
    assert len(listed.pages) == 3 and listed.problem == "more than 3 URLs"


def test_what_is_not_a_sitemap_lists_nothing() -> None:
    html = parse_sitemap(b"<html><body><a href='/x'>x</a></body></html>", "http://a.test/")
    assert (html.pages, html.problem) == ([], "not a sitemap: the root element is <html>")
    torn = parse_sitemap(b"<urlset><url><loc>http://a.test/1</loc></url><url><lo", "http://a/")
    assert torn.pages == ["http://a.test/1"] and torn.problem is not None
    assert "malformed XML" in torn.problem
    broken_gzip = parse_sitemap(b"\x1f\x8bnot gzip at all", "http://a.test/")
    assert broken_gzip.pages == [] and broken_gzip.problem is not None
