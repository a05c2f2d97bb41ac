"""A URL that is both a file and a directory (`/a`, then `/a/b`): `/a`'s file moves aside to
`a%%file` once `/a/b` is stored, after `/a`'s record was written. The export names the file
where it is, and a --recrawl still revalidates it (a 304) instead of fetching it again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.support.handler_server import QuietHandler, handler_server
from tests.workers.support import crawl

PAGES = {
    "/": b'<html><body><a href="/a">a</a></body></html>',
    "/a": b'<html><body><a href="/a/b">b</a></body></html>',
    "/a/b": b"<html><body>leaf</body></html>",
}


class Site(QuietHandler):
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("If-None-Match")))
        body = PAGES.get(self.path)
        if body is None:
            self.answer(404, b"no")
            return
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.answer(200, body, ETag=etag)


def test_a_displaced_file_is_exported_where_it_is_and_revalidated(workdir: Path) -> None:
    out = workdir / "out"
    with handler_server(Site) as origin:
        seeds = workdir / "seeds.txt"
        seeds.write_text(origin + "/\n")
        args = ["run", seeds, "--out", out, "--no-robots", "--no-progress", "--workers", "1"]
        first = crawl(*args, cwd=workdir)
        assert first.returncode == 0, first.stderr
        exported = crawl("export", out, "--format", "jsonl", cwd=workdir)
        rows = {row["url"]: row for row in map(json.loads, exported.stdout.splitlines())}
        a = rows[origin + "/a"]
        assert a["path"].endswith("/a%%file")
        stored = out / a["path"]
        assert stored.is_file() and hashlib.sha256(stored.read_bytes()).hexdigest() == a["sha256"]
        assert (out / rows[origin + "/a/b"]["path"]).read_bytes() == PAGES["/a/b"]

        Site.seen.clear()
        again = crawl(*args, "--recrawl", cwd=workdir)
        assert again.returncode == 0, again.stderr
    asked = dict(Site.seen)
    assert asked["/a"] is not None, "the displaced /a was revalidated, not fetched anew"
    assert all(tag is not None for tag in asked.values())
