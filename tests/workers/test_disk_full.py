"""A disk that fills up mid-crawl: the crawl stops (exit 75) with a one-line reason, hands its
URLs back untried, records nothing as complete, and, once there is room, the same command
resumes the cut file with Range and ends byte-identical. The disk is a small tmpfs over OUT.
Body writes stop while the last `storage.room.RESERVE_BYTES` are free, which leaves the
frontier room to take the URLs back (a SQLite commit needs some)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from crawler.demo_site import GeneratedBody, SiteSpec, site_in_thread
from storage import Outcome
from tests.support.small_disk import small_disk
from tests.workers.support import crawl, records

MiB = 1 << 20


@pytest.mark.timeout(300)
@pytest.mark.parametrize("command", ["mirror", "run"])
def test_a_full_disk_stops_the_crawl_and_it_resumes_once_there_is_room(
    workdir: Path, command: str
) -> None:
    out = workdir / "out"
    size = 64 * MiB
    with (
        site_in_thread(SiteSpec(pages=20, big_files=(size,)), log_requests=True) as served,
        small_disk(out, 40 * MiB) as disk,
    ):
        big = served.site.hosts[0].routes["/files/big-0.bin"]
        assert isinstance(big, GeneratedBody)
        big_url = served.seeds[0] + "files/big-0.bin"
        if command == "mirror":
            args = ["mirror", big_url, served.seeds[0]]
        else:
            seeds = workdir / "seeds.txt"
            seeds.write_text(served.seeds[0] + "\n")
            args = ["run", seeds, "--no-robots"]
        args += ["--out", out, "--no-progress", "--workers", "2"]
        full = crawl(*args, cwd=workdir)
        assert full.returncode == 75, full.stderr
        assert "Traceback" not in full.stderr, full.stderr
        assert "No space left on device" in full.stderr
        assert "free space and run the same command again" in full.stderr
        left = {path.name: path for path in (out / "files").rglob("big-0.bin*")}
        # A cut file never looks complete: its `.part`, and the state to resume it with.
        assert set(left) == {"big-0.bin.part", "big-0.bin.part.json"}
        assert 0 < left["big-0.bin.part"].stat().st_size < size
        assert not any(r.url == big_url and r.outcome is Outcome.STORED for r in records(out))

        disk.grow(160 * MiB)
        again = crawl(*args, cwd=workdir)
        assert again.returncode == 0, again.stderr
        ranges = [e.range for e in served.server.log or [] if e.path == "/files/big-0.bin"]
        # Read before the tmpfs (and all of OUT with it) goes away.
        (done,) = [r for r in records(out) if r.url == big_url and r.outcome is Outcome.STORED]
        assert done.path is not None
        stored_sha256 = hashlib.sha256((out / done.path).read_bytes()).hexdigest()
    assert done.resumed_from is not None and done.resumed_from > 0
    assert ranges[0] is None and ranges[-1] == f"bytes={done.resumed_from}-"
    assert done.sha256 == stored_sha256 == big.sha256()
    # Handed back, not failed: no attempt of the big file was spent on the full disk.
    assert done.meta["attempt"] == 1, full.stderr
