"""A worker follows a legacy-encoded page's links with their query in the page's encoding."""

from __future__ import annotations

from pathlib import Path

from crawler.demo_site import SiteSpec, site_in_thread
from crawler.demo_site.resources import Body
from tests.workers.support import by_url, records
from tests.workers.test_worker import crawl_in_process


async def test_a_worker_sends_the_query_of_a_windows_1252_page_in_windows_1252(
    tmp_path: Path,
) -> None:
    with site_in_thread(SiteSpec(pages=3, hosts=1)) as served:
        routes = served.site.hosts[0].routes
        home = routes["/"]
        assert isinstance(home, Body)
        extra = b'<a href="/latin">l</a><a href="/meta">m</a></body>'
        routes["/"] = Body(home.data.replace(b"</body>", extra), home.content_type)
        latin = '<a href="/caf\u00e9?q=caf\u00e9">x</a>'.encode("cp1252")
        routes["/latin"] = Body(latin, "text/html; charset=windows-1252")
        # Declared in the page only: the Content-Type has no charset.
        meta = '<meta charset="shift_jis"><a href="/jis?q=\u2261">x</a>'.encode("shift_jis")
        routes["/meta"] = Body(meta, "text/html")
        counting = await crawl_in_process(tmp_path, served.seeds[:1])
        origin = served.site.hosts[0].origin
    assert f"{origin}/caf%C3%A9?q=caf%E9" in counting.sent
    assert f"{origin}/jis?q=%81%DF" in counting.sent
    found = by_url(records(tmp_path / "out"))
    assert f"{origin}/caf%C3%A9?q=caf%E9" in found
    assert f"{origin}/jis?q=%81%DF" in found
