"""robots.txt's Crawl-delay holds from the first request: the tasks a worker leased before it
read robots.txt (up to --per-host of them) do not all go out at once."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

from tests.support.handler_server import QuietHandler, handler_server
from tests.workers.support import crawl

DELAY = 0.4


class Polite(QuietHandler):
    starts: list[tuple[float, str]] = []
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            self.starts.append((time.monotonic(), self.path))
        if self.path == "/robots.txt":
            self.answer(200, f"User-agent: *\nCrawl-delay: {DELAY}\n".encode(), "text/plain")
        else:
            self.answer(200, b"<p>page</p>")


def test_seeds_leased_before_robots_txt_was_read_are_spaced_by_its_delay(workdir: Path) -> None:
    Polite.starts = []
    with handler_server(Polite) as origin:
        seeds = workdir / "seeds.txt"
        seeds.write_text("".join(f"{origin}/p{n}\n" for n in range(4)))
        done = crawl("run", seeds, "--out", workdir / "out", "--workers", "1", "--per-host", "4",
                     "--no-progress", cwd=workdir)  # fmt: skip
        assert done.returncode == 0, done.stderr
    paths = [path for _, path in Polite.starts]
    assert paths[0] == "/robots.txt" and sorted(paths[1:]) == [f"/p{n}" for n in range(4)]
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(Polite.starts)]
    # Every page a delay after the request before it (the robots.txt counts as one).
    assert all(gap >= DELAY * 0.9 for gap in gaps), gaps
