"""`--nofollow` in a crawl: rel="nofollow" links, `<meta name="robots">` and `X-Robots-Tag`
pages are not followed; without the flag every link is."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.support.handler_server import QuietHandler, handler_server
from tests.workers.support import crawl


class Site(QuietHandler):
    """/ links to one page per way of saying nofollow, each linking to its own child."""

    seen: set[str] = set()
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            self.seen.add(self.path)
        if self.path == "/":
            self.answer(
                200,
                b'<a href="/header">h</a> <a href="/scoped">s</a> <a href="/other">o</a>'
                b' <a href="/meta">m</a> <a href="/plain">p</a>'
                b' <a rel="nofollow" href="/rel-child">r</a>',
            )
        elif self.path == "/header":
            self.answer(200, b'<a href="/header-child">c</a>', X_Robots_Tag="noindex, nofollow")
        elif self.path == "/scoped":
            self.answer(200, b'<a href="/scoped-child">c</a>', X_Robots_Tag="crawl: none")
        elif self.path == "/other":
            self.answer(200, b'<a href="/other-child">c</a>', X_Robots_Tag="otherbot: nofollow")
        elif self.path == "/meta":
            self.answer(
                200, b'<meta name="robots" content="nofollow"><a href="/meta-child">c</a>'
            )
        elif self.path == "/plain":
            self.answer(200, b'<a href="/plain-child">c</a>')
        else:
            self.answer(200, b"<p>leaf</p>")


PAGES = {"/", "/header", "/scoped", "/other", "/meta", "/plain"}
CHILDREN = {"/header-child", "/scoped-child", "/other-child", "/meta-child", "/plain-child"}


@pytest.mark.parametrize("flag", ["--nofollow", "--follow-all"])
def test_nofollow_in_links_meta_and_headers(workdir: Path, flag: str) -> None:
    Site.seen = set()
    with handler_server(Site) as origin:
        seeds = workdir / "seeds.txt"
        seeds.write_text(origin + "/\n")
        done = crawl(
            "run", seeds, "--out", workdir / "out", "--workers", "1", "--no-robots",
            "--no-progress", "--user-agent", "crawl/9 (+test)", flag, cwd=workdir,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    fetched = Site.seen - {"/robots.txt"}
    if flag == "--follow-all":
        assert fetched == PAGES | CHILDREN | {"/rel-child"}
    else:
        # The other bot's nofollow is not ours; the plain page is followed as ever.
        assert fetched == PAGES | {"/other-child", "/plain-child"}
