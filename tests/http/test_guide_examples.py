"""The client guide's examples for request bodies, transport and WebSockets, run as written.

One test per guide section (../seed/client-guide.txt), with `aiohttp` read as `crawler.http` and
httpbin.org, python.org and friends read as local peers: pytest-httpbin's `httpbin` and
`httpbin_secure`, httpbin on werkzeug (`running_httpbin`, which takes chunked uploads and Unix
sockets), a DNS server, tinyproxy and a `websockets` server on loopback. Where the guide's code
cannot run as printed the smallest change is made and said: `yield from` coroutines became an
async generator (Python 3.11 has no `@asyncio.coroutine`), MD5 pins became SHA-256 ones (MD5 is
refused), and the StreamReader example ends its stream with `feed_eof()`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
import zlib
from binascii import unhexlify
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pytest_httpbin import certs as httpbin_certs

import crawler.http as aiohttp
from crawler.http import (
    ClientConnectorCertificateError,
    ClientSession,
    FingerprintMismatch,
    FormData,
    StreamReader,
)
from crawler.http.resolver import AsyncResolver
from tests.support.binaries import require_binary
from tests.support.dns_server import TinyDNSServer
from tests.support.httpbin_server import running_httpbin
from tests.support.tinyproxy import TinyProxy
from tests.support.ws_server import WebSocketTestServer, running_ws_server


def data_url_bytes(value: str) -> bytes:
    """httpbin echoes a body that is not UTF-8 as a base64 data URL."""
    header, _, encoded = value.partition(",")
    assert header.startswith("data:") and header.endswith(";base64"), value[:80]
    return base64.b64decode(encoded)


def httpbin_server_der() -> bytes:
    pem = (Path(httpbin_certs.__file__).parent / "certs" / "server.pem").read_text()
    return ssl.PEM_cert_to_DER_cert(pem)


def assert_pool_idle(session: ClientSession) -> None:
    assert session.connector is not None
    assert session.connector.stats().acquired == 0


# --- Make a Request (the bodies) -------------------------------------------------------------


async def test_make_a_request(httpbin) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(httpbin.url + "/post", data=b"data") as resp:
            assert (await resp.json())["data"] == "data"
        async with session.put(httpbin.url + "/put", data=b"data") as resp:
            assert (await resp.json())["data"] == "data"
        async with session.delete(httpbin.url + "/delete") as resp:
            assert resp.status == 200
        async with session.head(httpbin.url + "/get") as resp:
            assert resp.status == 200
        async with session.options(httpbin.url + "/get") as resp:
            assert resp.status == 200
        async with session.patch(httpbin.url + "/patch", data=b"data") as resp:
            assert (await resp.json())["data"] == "data"
        assert_pool_idle(session)


# --- Custom Headers ----------------------------------------------------------------------------


async def test_custom_headers(httpbin) -> None:
    url = httpbin.url + "/post"
    payload = {"some": "data"}
    headers = {"content-type": "application/json"}

    async with ClientSession() as session:
        resp = await session.post(url, data=json.dumps(payload), headers=headers)
        echoed = await resp.json()
    assert echoed["json"] == payload
    assert echoed["headers"]["Content-Type"] == "application/json"


# --- More complicated POST requests ------------------------------------------------------------


async def test_more_complicated_post_requests(httpbin) -> None:
    async with ClientSession() as session:
        payload = {"key1": "value1", "key2": "value2"}
        async with session.post(httpbin.url + "/post", data=payload) as resp:
            echoed = json.loads(await resp.text())
        assert echoed["form"] == {"key2": "value2", "key1": "value1"}

        url = httpbin.url + "/post"  # the guide's https://api.github.com/some/endpoint
        payload = {"some": "data"}
        async with session.post(url, data=json.dumps(payload)) as resp:
            echoed = await resp.json()
        assert echoed["data"] == json.dumps(payload)
        assert echoed["headers"]["Content-Type"] == "text/plain; charset=utf-8"


# --- POST a Multipart-Encoded File -------------------------------------------------------------


async def test_post_a_multipart_encoded_file(
    httpbin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    await asyncio.to_thread(Path("report.xls").write_bytes, b"\xd0\xcf\x11\xe0 spreadsheet")

    async with ClientSession() as session:
        url = httpbin.url + "/post"
        files = {"file": open("report.xls", "rb")}  # noqa: SIM115  (the guide's code)

        resp = await session.post(url, data=files)
        echoed = await resp.json()
        assert files["file"].closed  # the body is done with, and closed, as aiohttp does
        assert data_url_bytes(echoed["files"]["file"]) == b"\xd0\xcf\x11\xe0 spreadsheet"
        assert echoed["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")

        url = httpbin.url + "/post"
        data = FormData()
        data.add_field(
            "file",
            open("report.xls", "rb"),  # noqa: SIM115
            filename="report.xls",
            content_type="application/vnd.ms-excel",
        )

        resp = await session.post(url, data=data)
        echoed = await resp.json()
        assert data_url_bytes(echoed["files"]["file"]) == b"\xd0\xcf\x11\xe0 spreadsheet"


# --- Streaming uploads -------------------------------------------------------------------------


async def test_streaming_uploads(tmp_path: Path) -> None:
    massive = hashlib.sha256(b"seed").digest() * (64 * 1024)  # 2 MiB of the same 32 bytes
    (tmp_path / "massive-body").write_bytes(massive)
    chunks = [b"chunk one, ", b"chunk two, ", b"chunk three"]

    async def read_some_data_from_somewhere(queue: list[bytes]) -> bytes:
        await asyncio.sleep(0)
        return queue.pop(0) if queue else b""

    # The guide's `@asyncio.coroutine` generator, as the async generator Python 3.11 allows.
    async def my_coroutine() -> AsyncIterator[bytes]:
        queue = list(chunks)
        while True:
            chunk = await read_some_data_from_somewhere(queue)
            if not chunk:
                return
            yield chunk

    async def feed_stream(resp: aiohttp.ClientResponse, stream: StreamReader) -> str:
        h = hashlib.sha256()

        while True:
            chunk = await resp.content.readany()
            if not chunk:
                break
            h.update(chunk)
            stream.feed_data(chunk)

        stream.feed_eof()  # not in the guide: without it the upload never ends
        return h.hexdigest()

    with running_httpbin() as httpbin_url:
        async with ClientSession() as session:
            # A file object is streamed (sized: Content-Length).
            with open(tmp_path / "massive-body", "rb") as f:
                resp = await session.post(httpbin_url + "/post", data=f)
                echoed = await resp.json()
            assert data_url_bytes(echoed["data"]) == massive
            assert echoed["headers"]["Content-Length"] == str(len(massive))

            # A generator of bytes is streamed chunked.
            resp = await session.post(httpbin_url + "/post", data=my_coroutine())
            echoed = await resp.json()
            assert echoed["data"] == "".join(c.decode() for c in chunks)
            assert echoed["headers"]["Transfer-Encoding"] == "chunked"

            # A StreamReader fed by this task while another one uploads it.
            loop = asyncio.get_running_loop()
            resp = await session.get(httpbin_url + "/bytes/300000?seed=3")
            stream = StreamReader()
            upload = loop.create_task(session.post(httpbin_url + "/post", data=stream))

            file_hash = await feed_stream(resp, stream)
            echoed = await (await upload).json()
            assert hashlib.sha256(data_url_bytes(echoed["data"])).hexdigest() == file_hash

            # A response's content is a StreamReader: chain a GET into a POST.
            r = await session.get(httpbin_url + "/bytes/200000?seed=4")
            expected = await (await session.get(httpbin_url + "/bytes/200000?seed=4")).read()
            posted = await session.post(httpbin_url + "/post", data=r.content)
            assert data_url_bytes((await posted.json())["data"]) == expected
            assert_pool_idle(session)


# --- Uploading pre-compressed data -------------------------------------------------------------


async def test_uploading_pre_compressed_data(httpbin) -> None:
    seen: list[dict] = []

    async def my_coroutine(session: ClientSession, headers: dict, my_data: bytes) -> None:
        data = zlib.compress(my_data)
        headers = {"Content-Encoding": "deflate"}
        async with session.post(
            httpbin.url + "/post", data=data, headers=headers, compress=False
        ) as resp:
            seen.append(await resp.json())

    my_data = b"already compressed before it reaches the client " * 100
    async with ClientSession() as session:
        await my_coroutine(session, {}, my_data)
    [echoed] = seen
    assert zlib.decompress(data_url_bytes(echoed["data"])) == my_data
    assert echoed["headers"]["Content-Encoding"] == "deflate"


# --- Connectors ---------------------------------------------------------------------------------


async def test_connectors(httpbin) -> None:
    conn = aiohttp.TCPConnector()
    session = aiohttp.ClientSession(connector=conn)
    async with session.get(httpbin.url + "/get") as resp:
        assert resp.status == 200
    assert session.connector is conn
    await session.close()
    assert conn.closed


# --- Limiting connection pool size -------------------------------------------------------------


async def test_limiting_connection_pool_size() -> None:
    conn = aiohttp.TCPConnector(limit=30)
    assert conn.limit == 30
    await conn.close()

    conn = aiohttp.TCPConnector(limit=None)
    assert conn.limit == 0  # no limit
    await conn.close()

    # And the limit holds: eight slow requests through two slots.
    conn = aiohttp.TCPConnector(limit=2)
    highest = 0
    with running_httpbin() as httpbin_url:
        async with aiohttp.ClientSession(connector=conn) as session:

            async def watch() -> None:
                nonlocal highest
                while True:
                    highest = max(highest, conn.stats().acquired)
                    await asyncio.sleep(0.005)

            async def fetch() -> int:
                async with session.get(httpbin_url + "/delay/0.1") as resp:
                    await resp.read()
                    return resp.status

            watcher = asyncio.create_task(watch())
            statuses = await asyncio.gather(*(fetch() for _ in range(8)))
            watcher.cancel()
    assert statuses == [200] * 8
    assert highest == 2


# --- Resolving using custom nameservers --------------------------------------------------------


async def test_resolving_using_custom_nameservers(httpbin) -> None:
    with TinyDNSServer({"httpbin.test": ["127.0.0.1"]}) as dns:
        # The guide's ["8.8.8.8", "8.8.4.4"], read as the DNS server on loopback.
        resolver = AsyncResolver(nameservers=[dns.nameserver])
        conn = aiohttp.TCPConnector(resolver=resolver)
        async with (
            aiohttp.ClientSession(connector=conn) as session,
            session.get(f"http://httpbin.test:{httpbin.port}/get") as resp,
        ):
            echoed = await resp.json()
        await resolver.close()
        assert dns.queries("httpbin.test") >= 1
    assert echoed["headers"]["Host"] == f"httpbin.test:{httpbin.port}"


# --- SSL control for TCP sockets ---------------------------------------------------------------


async def test_ssl_control_for_tcp_sockets(httpbin_secure) -> None:
    url = httpbin_secure.url + "/get"  # the guide's https://example.com

    # Strict checks by default: httpbin's test CA is in no trust store.
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ClientConnectorCertificateError):
            await session.get(url)

    conn = aiohttp.TCPConnector(verify_ssl=False)
    session = aiohttp.ClientSession(connector=conn)
    r = await session.get(url)
    assert r.status == 200
    await session.close()

    sslcontext = ssl.create_default_context(cafile=httpbin_certs.where())
    conn = aiohttp.TCPConnector(ssl_context=sslcontext)
    session = aiohttp.ClientSession(connector=conn)
    r = await session.get(url)
    assert r.status == 200
    await session.close()

    # Pinning, with SHA-256 (the guide's MD5 pins are refused, naming SHA-256).
    with pytest.raises(ValueError, match="SHA-256"):
        aiohttp.TCPConnector(fingerprint=b"\xa2\x06G\xad\xaa\xf5\xd8\\J\x99^by;\x06=")
    bad_sha256 = hashlib.sha256(b"a bogus certificate").digest()
    conn = aiohttp.TCPConnector(fingerprint=bad_sha256)
    session = aiohttp.ClientSession(connector=conn)
    exc = None
    try:
        r = await session.get(url)
    except FingerprintMismatch as e:
        exc = e
    await session.close()
    assert exc is not None
    assert exc.expected == bad_sha256

    # httpbin's certificate's actual SHA-256, of the DER encoding.
    actual = hashlib.sha256(httpbin_server_der()).digest()
    assert exc.got == actual

    # Tip: a hexadecimal digest becomes the binary pin with unhexlify.
    sha256_hex = actual.hex()
    assert unhexlify(sha256_hex) == actual
    conn = aiohttp.TCPConnector(fingerprint=unhexlify(sha256_hex))
    async with aiohttp.ClientSession(connector=conn) as session:
        r = await session.get(url)
        assert r.status == 200
        r.release()


# --- Unix domain sockets -----------------------------------------------------------------------


async def test_unix_domain_sockets(tmp_path: Path) -> None:
    path = str(tmp_path / "httpbin.sock")  # the guide's /path/to/socket
    with running_httpbin(unix_path=path):
        conn = aiohttp.UnixConnector(path=path)
        session = aiohttp.ClientSession(connector=conn)
        async with session.get("http://any.host.name/get?via=unix") as resp:
            echoed = await resp.json()
        await session.close()
    assert echoed["headers"]["Host"] == "any.host.name"
    assert echoed["args"] == {"via": "unix"}


# --- Proxy support -----------------------------------------------------------------------------


async def test_proxy_support(httpbin) -> None:
    url = httpbin.url + "/get"  # the guide's http://python.org
    plain = TinyProxy(require_binary("tinyproxy"))
    guarded = TinyProxy(require_binary("tinyproxy"), basic_auth=("user", "pass"))
    plain.start()
    guarded.start()
    try:
        async with aiohttp.ClientSession() as session:  # noqa: SIM117  (the guide's shape)
            async with session.get(url, proxy=plain.url) as resp:
                assert resp.status == 200

        async with aiohttp.ClientSession() as session:
            proxy_auth = aiohttp.BasicAuth("user", "pass")
            async with session.get(url, proxy=guarded.url, proxy_auth=proxy_auth) as resp:
                assert resp.status == 200
            async with session.get(url, proxy=guarded.url) as resp:
                assert resp.status == 407  # the credentials are what let the others through

        async with aiohttp.ClientSession() as session:
            with_credentials = guarded.url.replace("http://", "http://user:pass@")
            async with session.get(url, proxy=with_credentials) as resp:
                assert resp.status == 200
                assert "Proxy-Authorization" not in (await resp.json())["headers"]

        assert f"GET {url}" in plain.log()
        assert guarded.log().count(f"GET {url}") >= 2
    finally:
        plain.close()
        guarded.close()


# --- WebSockets --------------------------------------------------------------------------------


@pytest.fixture
async def ws_server() -> AsyncIterator[WebSocketTestServer]:
    async with running_ws_server() as server:
        yield server


async def test_websockets(ws_server: WebSocketTestServer) -> None:
    session = aiohttp.ClientSession()
    async with session.ws_connect(ws_server.http_url("/guide")) as ws:

        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                if msg.data == "close cmd":
                    await ws.close()
                    break
                else:
                    ws.send_str(msg.data + "/answer")  # un-awaited, as the guide has it
            elif msg.type == aiohttp.WSMsgType.CLOSED:  # noqa: SIM114  (the guide's shape)
                break
            elif msg.type == aiohttp.WSMsgType.ERROR:
                break

    await session.close()
    assert ws_server.answers == ["hello/answer"]
    assert await ws_server.next_close() == ("/guide", 1000, "")
