"""Refreshes in a crawl are redirects: a page whose `<meta http-equiv="refresh">` (or whose
`Refresh` header) sends the browser on has its target crawled at the page's own depth, so a
seed that refreshes to its real home page loses no --max-depth level. A refresh far in the
future is not followed, nor is any in `crawl mirror` (listed files, as `wget URL`)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from tests.support.handler_server import QuietHandler, handler_server
from tests.workers.support import crawl


def refreshing(content: str, extra: str = "") -> bytes:
    return f'<html><head><meta http-equiv="refresh" content="{content}"></head>{extra}'.encode()


class Site(QuietHandler):
    """/meta-seed refreshes (a <meta>) to /home/, /header-seed (a header, on a text/plain page)
    to /home2/; each home links one level down, /home/child refreshes again. /slow-* refresh
    in 300 s. Every request is logged on the class."""

    seen: list[str] = []
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            self.seen.append(self.path)
        if self.path == "/robots.txt":
            self.answer(404, b"", "text/plain")
        elif self.path == "/meta-seed":
            self.answer(200, refreshing("0; URL='/home/'"))
        elif self.path == "/header-seed":
            self.answer(200, b"moved", "text/plain", Refresh="0;url=/home2/")
        elif self.path == "/home/":
            self.answer(200, b'<a href="/home/child">child</a>')
        elif self.path == "/home/child":
            # At the depth limit: its links are not followed, its refresh is.
            self.answer(200, refreshing("1; url=/leaf", '<a href="/home/grandchild">g</a>'))
        elif self.path == "/leaf":
            self.answer(200, b'<a href="/beyond">beyond</a>')
        elif self.path == "/home2/":
            self.answer(200, b'<a href="/home2/child">child</a>')
        elif self.path == "/slow-meta":
            self.answer(200, refreshing("300; url=/slow-meta-target"))
        elif self.path == "/slow-header":
            self.answer(200, b"<p>wait</p>", Refresh="300; url=/slow-header-target")
        else:
            self.answer(200, b"<p>page</p>")


def exported(out: Path, workdir: Path) -> dict[str, dict]:
    done = crawl("export", out, cwd=workdir)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return {"/" + row["url"].split("/", 3)[3]: row for row in rows}


def test_a_refresh_is_followed_at_the_pages_own_depth(workdir: Path) -> None:
    Site.seen = []
    with handler_server(Site) as origin:
        seeds = workdir / "seeds.txt"
        seeds.write_text(
            "".join(f"{origin}/{path}\n" for path in ("meta-seed", "header-seed", "slow-meta",
                                                      "slow-header"))
        )  # fmt: skip
        out = workdir / "out"
        done = crawl("run", seeds, "--out", out, "--max-depth", "1", "--workers", "1",
                     "--no-progress", cwd=workdir)  # fmt: skip
        assert done.returncode == 0, done.stderr
    rows = exported(out, workdir)
    depths = {path: row["meta"]["depth"] for path, row in rows.items() if path != "/robots.txt"}
    assert depths == {
        "/meta-seed": 0,
        "/home/": 0,  # the refresh's target: the seed's depth, not one more
        "/home/child": 1,
        "/leaf": 1,  # refreshed to from a page at the depth limit
        "/header-seed": 0,
        "/home2/": 0,
        "/home2/child": 1,
        "/slow-meta": 0,
        "/slow-header": 0,
    }
    # The refreshing pages are recorded as what they are: 200s, stored.
    for path in ("/meta-seed", "/header-seed", "/home/child"):
        assert (rows[path]["status"], rows[path]["outcome"]) == (200, "stored"), path
    assert not {"/home/grandchild", "/beyond", "/slow-meta-target", "/slow-header-target"} & set(
        Site.seen
    )


def test_mirror_does_not_follow_a_refresh(workdir: Path) -> None:
    Site.seen = []
    with handler_server(Site) as origin:
        out = workdir / "out"
        done = crawl("mirror", origin + "/meta-seed", origin + "/header-seed", "--out", out,
                     "--no-progress", cwd=workdir)  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert sorted(Site.seen) == ["/header-seed", "/meta-seed"]
    rows = exported(out, workdir)
    assert sorted(rows) == ["/header-seed", "/meta-seed"]
