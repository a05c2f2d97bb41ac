"""The demo site generator: deterministic content, the promised structure, files on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from crawler.demo_site import (
    Body,
    Flaky,
    GeneratedBody,
    Redirect,
    SiteError,
    SiteSpec,
    build_site,
    load_site,
    read_manifest,
    write_site,
)
from crawler.demo_site.__main__ import main as demo_main
from crawler.demo_site.hosts import safe_relative_path
from crawler.demo_site.responses import UNSATISFIABLE, if_range_allows, parse_range, plan
from crawler.extract import extract_links_from_body

PORTS = [18001, 18002, 18003]


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def body_bytes(resource: object) -> bytes:
    assert isinstance(resource, Body | GeneratedBody)
    return b"".join(resource.chunks(0, resource.size))


# --- generation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec_args",
    [
        {"hosts": 0},
        {"pages": 2, "hosts": 3},
        {"links_per_page": -1},
        {"binary_bytes": 0},
        {"big_files": (10, 0)},
    ],
)
def test_impossible_specs_are_refused(spec_args: dict[str, object]) -> None:
    with pytest.raises(SiteError):
        SiteSpec(**spec_args)  # type: ignore[arg-type]


def test_ports_must_match_hosts() -> None:
    with pytest.raises(SiteError, match="3 hosts need 3 ports"):
        build_site(SiteSpec(pages=10, hosts=3), [1, 2])


def test_the_same_spec_gives_byte_identical_sites() -> None:
    spec = SiteSpec(pages=120, hosts=3, faults=True, big_files=(100_000,))
    first, second = build_site(spec, PORTS), build_site(spec, PORTS)
    for host_a, host_b in zip(first.hosts, second.hosts, strict=True):
        assert host_a.routes.keys() == host_b.routes.keys()
        for path, resource in host_a.routes.items():
            other = host_b.routes[path]
            if isinstance(resource, Body | GeneratedBody):
                assert body_bytes(resource) == body_bytes(other)
            else:
                assert resource == other
    assert first.links == second.links


def test_another_seed_gives_another_site() -> None:
    one = build_site(SiteSpec(pages=30, seed=1), PORTS[:1])
    two = build_site(SiteSpec(pages=30, seed=2), PORTS[:1])
    assert body_bytes(one.hosts[0].routes["/"]) != body_bytes(two.hosts[0].routes["/"])


def test_pages_are_spread_over_the_hosts() -> None:
    site = build_site(SiteSpec(pages=300, hosts=3), PORTS)
    assert len(site.page_urls()) == 300
    assert len(set(site.page_urls())) == 300
    per_host = [sum(url.startswith(host.origin) for url in site.page_urls()) for host in site.hosts]
    assert per_host == [100, 100, 100]
    assert site.seeds == [f"http://127.0.0.1:{port}/" for port in PORTS]


def test_every_page_is_reachable_from_the_seeds() -> None:
    site = build_site(SiteSpec(pages=500, hosts=3, links_per_page=0), PORTS)
    assert set(site.page_urls()) <= set(site.reachable())


def test_robots_txt_disallows_a_folder_that_pages_link_to() -> None:
    site = build_site(SiteSpec(pages=20, hosts=2), PORTS[:2])
    for host in site.hosts:
        robots = host.routes["/robots.txt"]
        assert isinstance(robots, Body)
        assert b"Disallow: /private/" in robots.data
    private = {url for url in site.reachable(robots=False) if "/private/" in url}
    assert len(private) == 4  # two pages on each host
    assert not any("/private/" in url for url in site.reachable(robots=True))


def test_site_has_redirects_a_404_link_a_binary_and_cross_host_links() -> None:
    site = build_site(SiteSpec(pages=60, hosts=3), PORTS)
    host = site.hosts[1]
    assert isinstance(host.routes["/moved"], Redirect)
    chain_end = host.routes["/chain/2"]
    assert isinstance(chain_end, Redirect) and chain_end.location == site.hosts[2].origin + "/"
    assert "/missing.html" not in host.routes
    assert host.origin + "/missing.html" in site.reachable()
    data = host.routes["/files/data.bin"]
    assert isinstance(data, Body) and data.content_type == "application/octet-stream"
    assert len(data.data) == 64 * 1024
    cross = [
        link
        for url, links in site.links.items()
        if url.startswith(host.origin)
        for link in links
        if not link.startswith(host.origin)
    ]
    assert cross


def test_the_html_links_are_the_link_graph() -> None:
    site = build_site(SiteSpec(pages=80, hosts=2, faults=True), PORTS[:2])
    for url, links in site.links.items():
        resource = site.resource(url)
        assert isinstance(resource, Body)
        assert extract_links_from_body(resource.data, url, resource.content_type) == list(links)


def test_links_come_in_the_forms_a_crawler_must_resolve() -> None:
    site = build_site(SiteSpec(pages=200, hosts=2), PORTS[:2])
    html = b"".join(
        body_bytes(resource)
        for host in site.hosts
        for resource in host.routes.values()
        if isinstance(resource, Body) and resource.content_type.startswith("text/html")
    )
    for form in (b'href="../', b'href="//127.0.0.1', b'href="http://127.0.0.1', b"#part"):
        assert form in html
    assert b'href="/sec' in html


def test_big_files_and_faults_are_on_the_first_host() -> None:
    site = build_site(SiteSpec(pages=10, hosts=2, big_files=(5_000_000,), faults=True), PORTS[:2])
    routes = site.hosts[0].routes
    big = routes["/files/big-0.bin"]
    assert isinstance(big, GeneratedBody) and big.size == 5_000_000
    assert isinstance(routes["/flaky/429"], Flaky)
    assert isinstance(routes["/loop/a"], Redirect)
    assert "/flaky/429" not in site.hosts[1].routes
    assert site.hosts[0].origin + "/files/big-0.bin" in site.reachable()


def test_a_redirect_loop_ends_in_reachable() -> None:
    site = build_site(SiteSpec(pages=5, faults=True), PORTS[:1])
    reachable = site.reachable()
    assert site.hosts[0].origin + "/loop/a" in reachable
    assert site.hosts[0].origin + "/loop/b" in reachable


def test_generated_bodies_are_deterministic_and_have_no_repeated_blocks() -> None:
    body = GeneratedBody(300_000, seed=7)
    data = body.read()
    assert len(data) == 300_000
    assert data == GeneratedBody(300_000, seed=7).read()
    blocks = [data[i : i + 65536] for i in range(0, 4 * 65536, 65536)]
    assert len(set(blocks)) == 4
    assert b"".join(body.chunks(1000, 200_000)) == data[1000:200_000]
    assert body.sha256() == hashlib.sha256(data).hexdigest()


# --- on disk -----------------------------------------------------------------------------------


def test_writing_twice_gives_identical_trees(tmp_path: Path) -> None:
    spec = SiteSpec(pages=40, hosts=2, big_files=(300_000,))
    write_site(build_site(spec, PORTS[:2]), tmp_path / "a")
    write_site(build_site(spec, PORTS[:2]), tmp_path / "b")
    first, second = tree_digest(tmp_path / "a"), tree_digest(tmp_path / "b")
    assert first == second
    assert "h0/index.html" in first and "h1/index.html" in first
    assert "h0/files/big-0.bin" in first
    assert (tmp_path / "a/h0/files/big-0.bin").stat().st_size == 300_000


def test_manifest_round_trips(tmp_path: Path) -> None:
    spec = SiteSpec(pages=30, hosts=3, big_files=(1000,), faults=True)
    write_site(build_site(spec, PORTS), tmp_path)
    assert read_manifest(tmp_path) == (spec, "127.0.0.1", PORTS)
    site, hosts = load_site(tmp_path)
    assert site.seeds == [f"http://127.0.0.1:{port}/" for port in PORTS]
    assert len(hosts) == 3
    assert isinstance(hosts[0].lookup("/moved"), Redirect)
    home = hosts[0].lookup("/")
    assert isinstance(home, Body)
    assert home.data == body_bytes(site.hosts[0].routes["/"])


def test_a_folder_without_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SiteError, match="not a generated site folder"):
        load_site(tmp_path)
    (tmp_path / "site.json").write_text("{broken")
    with pytest.raises(SiteError, match="cannot read"):
        load_site(tmp_path)


def test_command_line_writes_a_site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo_main(["--pages", "12", "--hosts", "2", "--out", str(tmp_path / "s")]) == 0
    assert "http://127.0.0.1:8001/" in capsys.readouterr().out
    spec, _, ports = read_manifest(tmp_path / "s")
    assert (spec.pages, spec.hosts, ports) == (12, 2, [8001, 8002])


def test_command_line_reports_an_impossible_site(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo_main(["--pages", "1", "--hosts", "2"]) == 1
    assert "cannot cover" in capsys.readouterr().err


# --- request paths and responses, without a server ---------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/../x",
        "/a/../../x",
        "/%2e%2e/x",
        "/..%2fx",
        "/a/%2E%2E/%2e%2E/x",
        "/x%00",
        "/a\\..\\x",
        "/%ff",
    ],
)
def test_paths_that_climb_or_smuggle_are_refused(path: str) -> None:
    assert safe_relative_path(path) is None


def test_ordinary_paths_are_split_into_segments() -> None:
    assert safe_relative_path("/a//b/c%20d.html") == ["a", "b", "c d.html"]
    assert safe_relative_path("/") == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", (0, 100)),
        ("bytes=100-", (100, 1000)),
        ("bytes=-100", (900, 1000)),
        ("bytes=-5000", (0, 1000)),
        ("bytes=990-2000", (990, 1000)),
        ("bytes=1000-", UNSATISFIABLE),
        ("bytes=-0", UNSATISFIABLE),
        ("bytes=5-1", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=x-", None),
    ],
)
def test_range_headers(header: str | None, expected: object) -> None:
    assert parse_range(header, 1000) == expected


def test_if_range_compares_strong_etags_and_exact_dates() -> None:
    assert if_range_allows(None, '"a"', "date")
    assert if_range_allows('"a"', '"a"', "date")
    assert not if_range_allows('"b"', '"a"', "date")
    assert not if_range_allows('W/"a"', '"a"', "date")
    assert if_range_allows("date", '"a"', "date")
    assert not if_range_allows("other date", '"a"', "date")


def test_flaky_plan_fails_then_recovers() -> None:
    page = Body(b"ok", "text/plain")
    flaky = Flaky(failures=2, status=503, then=page, retry_after=3)
    first = plan(flaky, "GET", failures_so_far=0)
    assert first.status == 503 and ("Retry-After", "3") in first.headers
    assert plan(flaky, "GET", failures_so_far=1).status == 503
    assert plan(flaky, "GET", failures_so_far=2).status == 200


def test_other_methods_are_not_allowed() -> None:
    response = plan(Body(b"x", "text/plain"), "POST")
    assert response.status == 405 and ("Allow", "GET, HEAD") in response.headers
