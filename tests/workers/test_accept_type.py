"""`crawl run --accept-type`: bodies of other types are not downloaded or kept, HTML still is
(for its links), and each refusal is on record."""

from __future__ import annotations

from pathlib import Path

from crawler.demo_site import SiteSpec, site_in_thread
from storage import Outcome
from tests.workers.support import by_url, crawl, expected_crawl, records


def test_only_accepted_types_and_html_are_kept(workdir: Path) -> None:
    with site_in_thread(SiteSpec(pages=20, hosts=1)) as served:
        seeds = workdir / "seeds.txt"
        seeds.write_text(served.seeds[0] + "\n")
        out = workdir / "out"
        done = crawl(
            "run", seeds, "--out", out, "--workers", "1", "--no-robots", "--no-progress",
            "--accept-type", "application/pdf", "--accept-type", "image/*", cwd=workdir,
        )
        assert done.returncode == 0, done.stderr
        origin = served.site.hosts[0].origin
        expected = expected_crawl(served.site, robots=False)
    found = by_url(records(out))
    assert set(found) == expected.urls  # every URL still has its one record
    css, binary = found[f"{origin}/static/style.css"][0], found[f"{origin}/files/data.bin"][0]
    for record, kind in ((css, "text/css; charset=utf-8"), (binary, "application/octet-stream")):
        assert record.outcome is Outcome.SKIPPED
        assert record.error == f"Content-Type {kind} not accepted"
        assert record.path is None and record.received == 0
    assert not list((out / "files").rglob("data.bin*")) and not list((out / "files").rglob("*.css"))
    pages = [r for (r,) in found.values() if r.content_type and "html" in r.content_type]
    assert pages and all(r.outcome in (Outcome.STORED, Outcome.HTTP_ERROR) for r in pages)
    status = crawl("status", out, "--json", cwd=workdir).stdout
    assert '"skipped": 2' in status
