"""A crawl without a depth limit against a spider trap ends by itself: a server that answers any
path with a page whose relative link `a/` leads one level deeper, for ever."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import Outcome
from tests.support.handler_server import QuietHandler, handler_server
from tests.workers.support import crawl, records


class _TrapHandler(QuietHandler):
    def do_GET(self) -> None:
        self.answer(200, b'<html><body><a href="a/">deeper</a> <a href="/">home</a></body></html>')


@pytest.fixture
def trap_origin() -> Iterator[str]:
    with handler_server(_TrapHandler) as origin:
        yield origin


def trap_crawl(origin: str, workdir: Path, *args: str) -> tuple[list[str], dict[str, object]]:
    seeds = workdir / "seeds.txt"
    seeds.write_text(origin + "/\n")
    out = workdir / "out"
    done = crawl(
        "run", seeds, "--out", out, "--workers", "1", "--no-robots", "--no-progress", *args,
        cwd=workdir, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    found = records(out)
    assert all(record.outcome is Outcome.STORED for record in found)
    status = crawl("status", out, "--json", cwd=workdir)
    return sorted(record.url for record in found), json.loads(status.stdout)


def test_a_path_that_repeats_itself_is_not_followed_past_three_copies(
    trap_origin: str, workdir: Path
) -> None:
    urls, status = trap_crawl(trap_origin, workdir)
    assert urls == [f"{trap_origin}/{'a/' * n}" for n in range(4)]
    assert status["out_of_scope"] >= 1


def test_the_url_length_limit_ends_a_trap_when_repeats_are_allowed(
    trap_origin: str, workdir: Path
) -> None:
    urls, _ = trap_crawl(
        trap_origin, workdir, "--max-path-repeats", "none", "--max-url-length", "100"
    )
    deepest = max(urls, key=len)
    assert len(deepest) <= 100 < len(deepest) + len("a/")
    assert len(urls) == (len(deepest) - len(trap_origin) - 1) // 2 + 1
