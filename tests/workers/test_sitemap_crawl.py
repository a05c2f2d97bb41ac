"""`crawl run --sitemaps`: pages no link reaches are found through robots.txt's Sitemap: lines,
a sitemap index, a gzipped sitemap and a plain one, with robots.txt and scope still obeyed."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import Outcome
from tests.support.handler_server import QuietHandler, handler_server
from tests.workers.support import by_url, crawl, records

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def _urlset(*paths: str) -> bytes:
    entries = "".join(f"<url><loc>{{origin}}{path}</loc></url>" for path in paths)
    return f'<?xml version="1.0"?><urlset {NS}>{entries}</urlset>'.encode()


ROUTES: dict[str, tuple[str, bytes]] = {
    "/": ("text/html", b'<html><body><a href="/linked.html">linked</a></body></html>'),
    "/linked.html": ("text/html", b'<html><body><a href="/deeper.html">d</a></body></html>'),
    "/deeper.html": ("text/html", b"<html><body>deep</body></html>"),
    "/robots.txt": (
        "text/plain",
        b"User-agent: *\nDisallow: /private/\nSitemap: {origin}/maps/index.xml\n",
    ),
    "/maps/index.xml": (
        "application/xml",
        (
            f"<sitemapindex {NS}><sitemap><loc>{{origin}}/maps/a.xml</loc></sitemap>"
            f"<sitemap><loc>{{origin}}/maps/b.xml.gz</loc></sitemap>"
            f"<sitemap><loc>{{origin}}/maps/moved.xml</loc></sitemap></sitemapindex>"
        ).encode(),
    ),
    "/maps/a.xml": ("application/xml", _urlset("/orphan1.html", "/orphan2.html")),
    "/maps/b.xml.gz": ("application/gzip", _urlset("/orphan3.html", "/private/hidden.html")),
    "/maps/c.txt": ("text/plain", b"{origin}/orphan4.html\nhttp://elsewhere.test/x\n"),
}
REDIRECTS = {"/maps/moved.xml": "/maps/c.txt"}
ORPHAN_PAGE = b'<html><body><a href="/from-orphan.html">next</a></body></html>'


class _SiteHandler(QuietHandler):
    def do_GET(self) -> None:
        origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.path in REDIRECTS:
            self.answer(301, b"", Location=REDIRECTS[self.path])
            return
        content_type, body = ROUTES.get(self.path, ("text/html", b""))
        if self.path not in ROUTES:
            if not self.path.startswith(("/orphan", "/from-orphan", "/private/")):
                self.send_error(404)
                return
            body = ORPHAN_PAGE
        body = body.replace(b"{origin}", origin.encode())
        if self.path.endswith(".gz"):
            body = gzip.compress(body)
        self.answer(200, body, content_type)


@pytest.fixture
def origin() -> Iterator[str]:
    with handler_server(_SiteHandler) as origin:
        yield origin


def run(origin: str, workdir: Path, *args: str) -> dict[str, Outcome]:
    seeds = workdir / "seeds.txt"
    seeds.write_text(origin + "/\n")
    done = crawl("run", seeds, "--out", workdir / "out", "--workers", "1", "--no-progress",
                 *args, cwd=workdir)
    assert done.returncode == 0, done.stderr
    found = by_url(records(workdir / "out"))
    assert all(len(fetches) == 1 for fetches in found.values())
    prefix = len(origin)
    return {url[prefix:]: fetches[0].outcome for url, fetches in found.items()}


def test_sitemaps_find_pages_no_link_reaches(origin: str, workdir: Path) -> None:
    got = run(origin, workdir, "--sitemaps")
    pages = ["/", "/linked.html", "/deeper.html", "/orphan1.html", "/orphan2.html"]
    pages += ["/orphan3.html", "/orphan4.html", "/from-orphan.html"]
    maps = ["/robots.txt", "/maps/index.xml", "/maps/a.xml", "/maps/b.xml.gz", "/maps/c.txt"]
    assert {path: got[path] for path in pages + maps} == dict.fromkeys(pages + maps, Outcome.STORED)
    assert got["/maps/moved.xml"] is Outcome.NOT_STORED  # its redirect, recorded as it came
    assert got["/private/hidden.html"] is Outcome.SKIPPED  # listed, but robots.txt says no
    assert set(got) == set(pages + maps) | {"/maps/moved.xml", "/private/hidden.html"}


def test_without_sitemaps_only_links_are_followed(origin: str, workdir: Path) -> None:
    assert set(run(origin, workdir)) == {"/", "/linked.html", "/deeper.html"}


def test_listed_pages_are_as_deep_as_seeds(origin: str, workdir: Path) -> None:
    # Depth 0: the seeds and what the sitemaps list; nothing linked from either.
    got = run(origin, workdir, "--sitemaps", "--max-depth", "0")
    assert "/linked.html" not in got and "/from-orphan.html" not in got
    assert {"/orphan1.html", "/orphan3.html", "/orphan4.html"} <= set(got)


def test_accept_type_does_not_stop_sitemaps_being_read(origin: str, workdir: Path) -> None:
    got = run(origin, workdir, "--sitemaps", "--accept-type", "application/pdf")
    assert got["/maps/a.xml"] is Outcome.STORED and got["/robots.txt"] is Outcome.STORED
    assert got["/orphan1.html"] is Outcome.STORED


def test_include_patterns_scope_the_listed_pages_not_the_sitemaps(
    origin: str, workdir: Path
) -> None:
    """`--include /orphan` keeps the sitemaps that list the orphans (they match no pattern,
    and were dropped without a word), and applies to what they list."""
    got = run(origin, workdir, "--sitemaps", "--include", "/orphan")
    assert {"/maps/index.xml", "/maps/a.xml", "/maps/b.xml.gz", "/maps/c.txt"} <= set(got)
    assert {got[f"/orphan{n}.html"] for n in (1, 2, 3, 4)} == {Outcome.STORED}
    assert "/linked.html" not in got and "/private/hidden.html" not in got
