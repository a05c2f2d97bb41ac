"""Redirects in a crawl are not links: the target keeps the redirect's depth, and is fetched
only through the frontier (in scope, allowed by robots.txt, once), also at --max-depth. Only a
job of listed URLs (`crawl mirror`) follows redirects inside the fetch, as `wget URL` does."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from tests.support.handler_server import QuietHandler, handler_server
from tests.workers.support import crawl


class Site(QuietHandler):
    """/ links to /r (302 off-site) and /r2 (302 to a disallowed path); /start redirects to
    /home, which links to /child. Every request is logged on the class."""

    seen: list[str] = []
    lock = threading.Lock()
    elsewhere = ""  # the other server's origin

    def do_GET(self) -> None:
        with self.lock:
            self.seen.append(self.path)
        if self.path == "/robots.txt":
            self.answer(200, b"User-agent: *\nDisallow: /private/\n", "text/plain")
        elif self.path == "/":
            self.answer(200, b'<a href="/r">off</a> <a href="/r2">private</a>')
        elif self.path == "/r":
            self.answer(302, b"", Location=f"{self.elsewhere}/offsite-secret")
        elif self.path == "/r2":
            self.answer(302, b"", Location="/private/x")
        elif self.path == "/start":
            self.answer(301, b"", Location="/home")
        elif self.path == "/home":
            self.answer(200, b'<a href="/child">child</a>')
        else:
            self.answer(200, b"<p>page</p>")


class Elsewhere(QuietHandler):
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.answer(200, b"<p>not ours</p>")


def exported(out: Path, workdir: Path) -> dict[str, dict]:
    done = crawl("export", out, cwd=workdir)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return {row["url"].split("/", 3)[3]: row for row in rows}


def test_at_the_depth_limit_a_redirect_goes_through_scope_and_robots(workdir: Path) -> None:
    Site.seen, Elsewhere.seen = [], []
    with handler_server(Site) as origin, handler_server(Elsewhere) as other:
        Site.elsewhere = other
        seeds = workdir / "seeds.txt"
        # Another host: scope compares hosts, and both servers listen on 127.0.0.1.
        seeds.write_text(origin.replace("127.0.0.1", "localhost") + "/\n")
        out = workdir / "out"
        done = crawl("run", seeds, "--out", out, "--max-depth", "1", "--workers", "1",
                     "--no-progress", cwd=workdir)  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert Elsewhere.seen == []  # off-site: not fetched, not even its robots.txt
    assert "/private/x" not in Site.seen  # disallowed by robots.txt
    rows = exported(out, workdir)
    assert rows["r"]["status"] == 302 and rows["r2"]["status"] == 302
    assert rows["private/x"]["outcome"] == "skipped"
    assert "disallowed by" in rows["private/x"]["error"]
    assert rows["private/x"]["meta"]["depth"] == 1  # the redirect's depth, not one more


def test_a_seed_that_redirects_loses_no_depth(workdir: Path) -> None:
    Site.seen = []
    with handler_server(Site) as origin:
        seeds = workdir / "seeds.txt"
        seeds.write_text(origin + "/start\n")
        out = workdir / "out"
        done = crawl("run", seeds, "--out", out, "--max-depth", "1", "--workers", "1",
                     "--no-progress", cwd=workdir)  # fmt: skip
        assert done.returncode == 0, done.stderr
    rows = exported(out, workdir)
    assert rows["start"]["status"] == 301
    assert (rows["home"]["meta"]["depth"], rows["child"]["meta"]["depth"]) == (0, 1)


def test_mirror_follows_a_redirect_to_another_host_itself(workdir: Path) -> None:
    Site.seen, Elsewhere.seen = [], []
    with handler_server(Site) as origin, handler_server(Elsewhere) as other:
        Site.elsewhere = other
        out = workdir / "out"
        done = crawl("mirror", origin + "/r", "--out", out, "--no-progress", cwd=workdir)
        assert done.returncode == 0, done.stderr
    assert Elsewhere.seen == ["/offsite-secret"]
    (row,) = exported(out, workdir).values()
    assert row["status"] == 200 and row["final_url"] == other + "/offsite-secret"
