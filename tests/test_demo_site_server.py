"""The demo site server, spoken to with the standard library's HTTP client and raw sockets."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import os
import re
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from crawler.demo_site import (
    Body,
    DemoSiteProcess,
    GeneratedBody,
    NginxSite,
    ServedSite,
    SiteSpec,
    build_site,
    site_in_thread,
    start_site,
    write_site,
)
from tests.support.binaries import require_binary
from tests.support.ports import free_port

SPEC = SiteSpec(pages=60, hosts=2, faults=True, big_files=(3_000_000,))


@pytest.fixture(scope="module")
def served() -> Iterator[ServedSite]:
    with site_in_thread(SPEC, log_requests=True) as running:
        yield running


def connect(served: ServedSite, host: int = 0) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", served.site.hosts[host].port, timeout=10)


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send `data`, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def expected_body(served: ServedSite, path: str, host: int = 0) -> bytes:
    resource = served.site.hosts[host].routes[path]
    assert isinstance(resource, Body | GeneratedBody)
    return b"".join(resource.chunks(0, resource.size))


def test_pages_are_served_as_generated(served: ServedSite) -> None:
    for url in served.site.page_urls()[:10]:
        with urllib.request.urlopen(url, timeout=10) as response:
            path, host = urlsplit(url).path, served.site.page_urls().index(url) % 2
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
            assert response.read() == expected_body(served, path, host)


def test_keep_alive_serves_many_requests_on_one_connection(served: ServedSite) -> None:
    opened_before = served.server.connections_opened
    connection = connect(served)
    try:
        for path in ("/", "/robots.txt", "/static/style.css", "/files/data.bin", "/"):
            connection.request("GET", path)
            response = connection.getresponse()
            assert response.status == 200
            assert response.read() == expected_body(served, path)
    finally:
        connection.close()
    assert served.server.connections_opened == opened_before + 1


def test_unknown_paths_get_404(served: ServedSite) -> None:
    connection = connect(served)
    try:
        connection.request("GET", "/missing.html")
        response = connection.getresponse()
        assert response.status == 404
        response.read()
        connection.request("GET", "/")  # the connection is still usable after a 404
        assert connection.getresponse().status == 200
    finally:
        connection.close()


def test_redirects_carry_their_location(served: ServedSite) -> None:
    connection = connect(served, host=1)
    try:
        connection.request("GET", "/chain/1")
        first = connection.getresponse()
        first.read()
        connection.request("GET", "/chain/2")
        second = connection.getresponse()
        second.read()
    finally:
        connection.close()
    assert (first.status, first.headers["Location"]) == (302, "/chain/2")
    assert (second.status, second.headers["Location"]) == (307, served.seeds[0])


def test_head_sends_headers_without_a_body(served: ServedSite) -> None:
    connection = connect(served)
    try:
        connection.request("HEAD", "/files/big-0.bin")
        response = connection.getresponse()
        assert response.status == 200
        assert response.headers["Content-Length"] == "3000000"
        assert response.read() == b""
        connection.request("GET", "/robots.txt")
        assert connection.getresponse().read() == expected_body(served, "/robots.txt")
    finally:
        connection.close()


def test_a_large_generated_file_streams_whole(served: ServedSite) -> None:
    big = served.site.hosts[0].routes["/files/big-0.bin"]
    assert isinstance(big, GeneratedBody)
    with urllib.request.urlopen(served.seeds[0] + "files/big-0.bin", timeout=30) as response:
        digest = hashlib.sha256(response.read()).hexdigest()
    assert digest == big.sha256()


def test_range_requests_resume_a_download(served: ServedSite) -> None:
    whole = expected_body(served, "/files/big-0.bin")
    connection = connect(served)
    try:
        connection.request("HEAD", "/files/big-0.bin")
        head = connection.getresponse()
        head.read()
        etag = head.headers["ETag"]
        connection.request("GET", "/files/big-0.bin", headers={"Range": "bytes=1234567-"})
        partial = connection.getresponse()
        assert partial.status == 206
        assert partial.headers["Content-Range"] == "bytes 1234567-2999999/3000000"
        assert partial.read() == whole[1234567:]
        connection.request(
            "GET", "/files/big-0.bin", headers={"Range": "bytes=10-19", "If-Range": etag}
        )
        assert connection.getresponse().read() == whole[10:20]
    finally:
        connection.close()


def test_a_stale_if_range_gets_the_whole_body(served: ServedSite) -> None:
    connection = connect(served)
    try:
        connection.request(
            "GET", "/files/data.bin", headers={"Range": "bytes=10-", "If-Range": '"stale"'}
        )
        response = connection.getresponse()
        assert response.status == 200
        assert response.read() == expected_body(served, "/files/data.bin")
    finally:
        connection.close()


def test_if_none_match_gets_304_for_the_current_etag_only(served: ServedSite) -> None:
    path = urlsplit(served.site.page_urls()[3]).path
    host = served.site.page_urls().index(served.site.page_urls()[3]) % 2
    connection = connect(served, host)
    try:
        connection.request("GET", path)
        first = connection.getresponse()
        first.read()
        etag = first.headers["ETag"]
        answers = []
        for header in (etag, f'"other", W/{etag}', "*", '"stale"'):
            connection.request("GET", path, headers={"If-None-Match": header})
            response = connection.getresponse()
            answers.append((response.status, response.read(), response.headers["ETag"]))
    finally:
        connection.close()
    unchanged = (304, b"", etag)
    assert answers[:3] == [unchanged] * 3  # the connection stays usable after each 304
    assert answers[3] == (200, expected_body(served, path, host), etag)


def test_a_range_past_the_end_gets_416(served: ServedSite) -> None:
    connection = connect(served)
    try:
        connection.request("GET", "/files/data.bin", headers={"Range": "bytes=65536-"})
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert response.status == 416
    assert response.headers["Content-Range"] == "bytes */65536"


def test_pipelined_requests_are_answered_in_order(served: ServedSite) -> None:
    port = served.site.hosts[0].port
    requests = (
        b"GET /robots.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"
        b"HEAD /files/data.bin HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /static/style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    answer = raw_exchange(port, requests)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert statuses == [b"200", b"404", b"200", b"200"]
    assert answer.endswith(expected_body(served, "/static/style.css"))
    assert answer.index(b"Disallow: /private/") < answer.index(b"Not Found")


def test_requests_pipelined_behind_a_streamed_download_wait_their_turn(served: ServedSite) -> None:
    requests = (
        b"GET /files/big-0.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-299999\r\n\r\n"
        b"GET /robots.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    answer = raw_exchange(served.site.hosts[0].port, requests)
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 206 ")
    assert rest[:300_000] == expected_body(served, "/files/big-0.bin")[:300_000]
    assert rest[300_000:].startswith(b"HTTP/1.1 200 OK")
    assert rest.endswith(b"Disallow: /private/\n")


def test_http_1_0_and_connection_close_end_the_connection(served: ServedSite) -> None:
    port = served.site.hosts[0].port
    answer = raw_exchange(port, b"GET /robots.txt HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"Disallow: /private/\n")
    answer = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"Connection: close" in answer and answer.endswith(b"</html>\n")


def test_garbage_gets_400_and_a_closed_connection(served: ServedSite) -> None:
    answer = raw_exchange(served.site.hosts[0].port, b"NOT HTTP AT ALL\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


def test_an_oversized_url_gets_414(served: ServedSite) -> None:
    request = b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert raw_exchange(served.site.hosts[0].port, request).startswith(b"HTTP/1.1 414 ")


def test_post_gets_405(served: ServedSite) -> None:
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    assert raw_exchange(served.site.hosts[0].port, request).startswith(b"HTTP/1.1 405 ")


def test_flaky_pages_fail_then_recover(served: ServedSite) -> None:
    statuses = []
    retry_after = []
    for _ in range(3):
        connection = connect(served)
        try:
            connection.request("GET", "/flaky/503")
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
            connection.request("GET", "/flaky/429")
            response = connection.getresponse()
            response.read()
            retry_after.append((response.status, response.headers["Retry-After"]))
        finally:
            connection.close()
    assert statuses == [503, 503, 200]
    assert retry_after == [(429, "1"), (200, None), (200, None)]


def test_hostile_paths_get_404_not_a_file(served: ServedSite) -> None:
    for target in (b"/../../../../etc/passwd", b"/%2e%2e/%2e%2e/etc/passwd", b"/..%2f..%2fetc"):
        answer = raw_exchange(
            served.site.hosts[0].port, b"GET " + target + b" HTTP/1.1\r\nConnection: close\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 404 "), target


def test_the_request_log_records_what_was_fetched(served: ServedSite) -> None:
    assert served.server.log is not None
    before = len(served.server.log)
    with urllib.request.urlopen(served.seeds[1] + "robots.txt", timeout=10) as response:
        response.read()
    entry = served.server.log[before]
    assert (entry.host, entry.method, entry.path, entry.status) == (1, "GET", "/robots.txt", 200)


def test_a_client_that_vanishes_mid_download_does_not_hurt_the_server(served: ServedSite) -> None:
    with socket.create_connection(("127.0.0.1", served.site.hosts[0].port), timeout=10) as sock:
        sock.sendall(b"GET /files/big-0.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(1000).startswith(b"HTTP/1.1 200 OK")
    with urllib.request.urlopen(served.seeds[0] + "robots.txt", timeout=10) as response:
        assert response.status == 200


# --- serving from files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    spec = SiteSpec(pages=30, hosts=2, big_files=(2_500_000,))
    write_site(build_site(spec, [free_port(), free_port()]), root)
    (root / "secret.txt").write_text("outside every host folder")
    os.symlink("/etc/passwd", root / "h0" / "passwd-link")
    os.symlink(root / "secret.txt", root / "h0" / "secret-link")
    return root


def test_a_written_folder_serves_the_same_bytes(site_folder: Path) -> None:
    with site_in_thread(root=site_folder) as running:
        for url in [*running.site.page_urls()[:6], running.seeds[0] + "files/big-0.bin"]:
            resource = running.site.resource(url)
            assert isinstance(resource, Body | GeneratedBody)
            with urllib.request.urlopen(url, timeout=30) as response:
                assert response.read() == b"".join(resource.chunks(0, resource.size))


def test_a_written_folder_keeps_redirects_and_ranges(site_folder: Path) -> None:
    with site_in_thread(root=site_folder) as running:
        connection = http.client.HTTPConnection("127.0.0.1", running.site.hosts[0].port, timeout=10)
        try:
            connection.request("GET", "/moved")
            moved = connection.getresponse()
            moved.read()
            connection.request("GET", "/files/big-0.bin", headers={"Range": "bytes=2000000-"})
            partial = connection.getresponse()
            data = partial.read()
        finally:
            connection.close()
    assert moved.status == 301
    assert partial.status == 206 and len(data) == 500_000


@pytest.mark.parametrize(
    "target",
    [
        b"/../site.json",
        b"/%2e%2e/site.json",
        b"/..%2fsecret.txt",
        b"/sec0/../../secret.txt",
        b"/passwd-link",
        b"/secret-link",
        b"/%00",
        b"/..\\secret.txt",
    ],
)
def test_nothing_outside_the_host_folder_is_served(site_folder: Path, target: bytes) -> None:
    with site_in_thread(root=site_folder) as running:
        answer = raw_exchange(
            running.site.hosts[0].port, b"GET " + target + b" HTTP/1.1\r\nConnection: close\r\n\r\n"
        )
    assert answer.startswith(b"HTTP/1.1 404 ")
    assert b"outside every host folder" not in answer and b"root:" not in answer


# --- other ways to run it ----------------------------------------------------------------------


async def test_serving_in_the_running_loop_and_closing_mid_download() -> None:
    served = await start_site(SiteSpec(pages=5, big_files=(50_000_000,)), rate=1_000_000)
    port = served.site.hosts[0].port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /files/big-0.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    # The download is rate limited to far less than its size: closing must not wait for it.
    await served.close()
    rest = await reader.read()  # ends: the server cut the download instead of finishing it
    assert len(head) + len(rest) < 50_000_000
    writer.close()
    await writer.wait_closed()


def test_a_rate_limited_download_arrives_whole() -> None:
    with site_in_thread(SiteSpec(pages=5, big_files=(200_000,)), rate=2_000_000) as running:
        with urllib.request.urlopen(running.seeds[0] + "files/big-0.bin", timeout=30) as response:
            data = response.read()
        big = running.site.hosts[0].routes["/files/big-0.bin"]
        assert isinstance(big, GeneratedBody)
        assert data == big.read()


def test_latency_holds_answers_and_the_server_counts_overlapping_requests() -> None:
    with site_in_thread(SiteSpec(pages=10, hosts=2), latency=1.0) as running:
        port = running.site.hosts[0].port
        sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
        try:
            for sock in sockets:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            # A pipelined second request on one connection is received (and counted) at once.
            sockets[0].sendall(b"GET /robots.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            answers = [sock.recv(65536) for sock in sockets]
            assert all(answer.startswith(b"HTTP/1.1 200 OK") for answer in answers)
        finally:
            for sock in sockets:
                sock.close()
        assert running.server.max_active == [4, 0]
        deadline = time.monotonic() + 10
        while running.server.active != [0, 0] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert running.server.active == [0, 0]


def test_requests_one_after_another_never_overlap() -> None:
    with site_in_thread(SiteSpec(pages=10), latency=0.01) as running:
        connection = http.client.HTTPConnection("127.0.0.1", running.site.hosts[0].port, timeout=10)
        try:
            for path in ("/", "/robots.txt", "/files/data.bin", "/moved"):
                connection.request("GET", path)
                connection.getresponse().read()
        finally:
            connection.close()
        assert running.server.max_active == [1]


def test_demo_site_process_serves_until_stopped() -> None:
    with DemoSiteProcess(["--pages", "20", "--hosts", "2"]) as process:
        assert len(process.seeds) == 2
        with urllib.request.urlopen(process.seeds[1], timeout=10) as response:
            assert b"<title>Page 1</title>" in response.read()
        port = process.ports[0]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_demo_site_process_reports_a_failed_start() -> None:
    with pytest.raises(RuntimeError, match="demo site exited"):
        DemoSiteProcess(["--pages", "1", "--hosts", "3"]).__enter__()


def test_nginx_serves_a_written_folder(tmp_path: Path) -> None:
    binary = require_binary("nginx")
    spec = SiteSpec(pages=20, hosts=2)
    site = build_site(spec, [free_port(), free_port()])
    write_site(site, tmp_path)
    with NginxSite(tmp_path, binary=binary) as nginx:
        page_url = site.page_urls()[5]
        with urllib.request.urlopen(page_url, timeout=10) as response:
            resource = site.resource(page_url)
            assert isinstance(resource, Body)
            assert response.read() == resource.data
            assert "text/html" in response.headers["Content-Type"]
        connection = http.client.HTTPConnection("127.0.0.1", site.hosts[1].port, timeout=10)
        try:
            connection.request("GET", "/chain/1")
            redirect = connection.getresponse()
            redirect.read()
            connection.request("GET", "/missing.html")
            missing = connection.getresponse()
            missing.read()
        finally:
            connection.close()
        assert (redirect.status, redirect.headers["Location"]) == (302, "/chain/2")
        assert missing.status == 404
        assert nginx.seeds == site.seeds
