"""Nothing a caller passes may put a line break into a request: every place a value reaches the
wire, against a real peer that records what arrived.

Values that end up in a header line or request line are refused with ValueError before a
connection is opened (the peer sees nothing); values that are encoded on the way (query
parameters, cookies, multipart names and filenames, credentials) arrive encoded, in one piece.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from yarl import URL

from crawler.http import BasicAuth, ClientSession, FormData, TCPConnector
from tests.http.raw_server import Request, ServerState, raw_server, response, serve_forever
from tests.support.form_parser import parse_form
from tests.support.recording_proxy import RecordingProxy
from tests.support.upload_sink import HashingSink, SinkState, start_server
from tests.support.ws_server import WebSocketTestServer, running_ws_server

SMUGGLED = "x\r\nX-Injected: 1"
BREAKS = ["a\r\nX-Injected: 1", "a\nX-Injected: 1", "a\rX-Injected: 1", "a\x00b"]


@pytest.fixture
async def echo() -> AsyncIterator[tuple[ServerState, str]]:
    state = ServerState()
    async with raw_server(serve_forever(lambda _r: response(200, b"ok"), state), state) as base:
        yield state, base


@pytest.fixture
async def session() -> AsyncIterator[ClientSession]:
    async with ClientSession(connector=TCPConnector()) as client:
        yield client


def only_request(state: ServerState) -> Request:
    [request] = state.requests
    assert "x-injected" not in request.headers
    return request


# --- refused before anything is sent ---------------------------------------------------------


@pytest.mark.parametrize("method", ["GET / HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET", "GET\n", "GE T"])
async def test_method(echo: tuple[ServerState, str], session: ClientSession, method: str) -> None:
    state, base = echo
    with pytest.raises(ValueError, match="method"):
        await session.request(method, base + "/")
    assert state.connections == 0


@pytest.mark.parametrize("bad", BREAKS)
async def test_url_string(echo: tuple[ServerState, str], session: ClientSession, bad: str) -> None:
    state, base = echo
    with pytest.raises(ValueError):
        await session.get(base + "/" + bad)
    assert state.connections == 0


async def test_pre_encoded_url_object(
    echo: tuple[ServerState, str], session: ClientSession
) -> None:
    state, base = echo
    # yarl drops CR/LF from an encoded=True URL but keeps the space: the target is refused.
    url = URL(base + "/a\r\nX-Injected: 1", encoded=True)
    with pytest.raises(ValueError, match="target"):
        await session.get(url)
    assert state.connections == 0


@pytest.mark.parametrize("bad", ["/a\r\n/", "/a\n", "/a\x00"])
async def test_base_url(echo: tuple[ServerState, str], bad: str) -> None:
    state, base = echo
    # yarl would drop the characters and the session would ask for another path.
    with pytest.raises(ValueError, match="base_url"):
        ClientSession(base_url=base + bad)
    assert state.connections == 0


@pytest.mark.parametrize("bad", ["\r\n", "\n", "\x00"])
async def test_proxy_url(echo: tuple[ServerState, str], bad: str) -> None:
    state, base = echo
    async with RecordingProxy() as proxy:
        evil = proxy.url.replace("127.0.0.1", "127.0.0.1" + bad)
        async with ClientSession() as session:
            with pytest.raises(ValueError, match="proxy"):
                await session.get(base + "/", proxy=evil)
        with pytest.raises(ValueError, match="proxy"):
            ClientSession(proxy=evil)
        assert proxy.requests == []
    assert state.connections == 0


@pytest.mark.parametrize("bad", BREAKS)
@pytest.mark.parametrize("where", ["value", "name", "session"])
async def test_headers(
    echo: tuple[ServerState, str], bad: str, where: str
) -> None:
    state, base = echo
    headers = {"X-Name": bad} if where != "name" else {bad: "v"}
    session_headers = headers if where == "session" else None
    async with ClientSession(headers=session_headers) as session:
        with pytest.raises(ValueError):
            await session.get(base + "/", headers=None if where == "session" else headers)
    assert state.connections == 0


@pytest.mark.parametrize("bad", BREAKS)
async def test_proxy_headers_for_a_plain_proxy(session: ClientSession, bad: str) -> None:
    async with RecordingProxy() as proxy:
        with pytest.raises(ValueError):
            await session.get(
                "http://origin.test/", proxy=proxy.url, proxy_headers={"X-Via": bad}
            )
        assert proxy.requests == []


@pytest.mark.parametrize("bad", BREAKS)
async def test_proxy_headers_for_a_connect_tunnel(session: ClientSession, bad: str) -> None:
    async with RecordingProxy() as proxy:
        with pytest.raises(ValueError):
            await session.get(
                "https://origin.test/", proxy=proxy.url, proxy_headers={"X-Via": bad}
            )
        assert proxy.requests == []
        assert session.connector is not None and session.connector.stats().acquired == 0


async def test_compress_token(echo: tuple[ServerState, str], session: ClientSession) -> None:
    state, base = echo
    with pytest.raises(ValueError):
        await session.post(base + "/", data=b"x", compress="deflate\r\nX-Injected: 1")
    assert state.connections == 0


async def test_form_part_content_type() -> None:
    form = FormData()
    with pytest.raises(ValueError, match="control characters"):
        form.add_field("f", b"x", filename="f.bin", content_type="text/plain\r\nX-Injected: 1")


@pytest.fixture
async def ws_server() -> AsyncIterator[WebSocketTestServer]:
    async with running_ws_server() as server:
        yield server


@pytest.mark.parametrize(
    "kwargs",
    [
        {"headers": {"X-Name": SMUGGLED}},
        {"headers": {SMUGGLED: "v"}},
        {"protocols": ["chat\r\nX-Injected: 1"]},
        {"protocols": ["two words"]},
        {"origin": "http://o.test\r\nX-Injected: 1"},
        {"proxy_headers": {"X-Via": SMUGGLED}, "proxy": "http://127.0.0.1:9"},
    ],
    ids=["header-value", "header-name", "protocol", "protocol-space", "origin", "proxy-header"],
)
async def test_websocket_handshake_parts(
    ws_server: WebSocketTestServer, session: ClientSession, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        await session.ws_connect(ws_server.url("/echo"), **kwargs)
    assert ws_server.requests == []


async def test_websocket_url(ws_server: WebSocketTestServer, session: ClientSession) -> None:
    with pytest.raises(ValueError):
        await session.ws_connect(ws_server.url("/echo\r\nX-Injected: 1"))
    assert ws_server.requests == []


async def test_websocket_session_headers(ws_server: WebSocketTestServer) -> None:
    async with ClientSession(headers={"X-Name": SMUGGLED}) as session:
        with pytest.raises(ValueError):
            await session.ws_connect(ws_server.url("/echo"))
    assert ws_server.requests == []


# --- encoded on the way: arrives in one piece --------------------------------------------------


async def test_params_are_percent_encoded(
    echo: tuple[ServerState, str], session: ClientSession
) -> None:
    state, base = echo
    async with session.get(base + "/p", params={"q": SMUGGLED}) as resp:
        assert resp.status == 200
    assert only_request(state).target == "/p?q=x%0D%0AX-Injected:+1"


async def test_cookie_values_are_quoted(
    echo: tuple[ServerState, str], session: ClientSession
) -> None:
    state, base = echo
    async with session.get(base + "/c", cookies={"k": SMUGGLED}) as resp:
        assert resp.status == 200
    cookie = only_request(state).headers["cookie"]
    assert "\r" not in cookie and "\n" not in cookie
    assert cookie.startswith("k=")


async def test_credentials_are_base64(
    echo: tuple[ServerState, str], session: ClientSession
) -> None:
    state, base = echo
    auth = BasicAuth("user", "pass\r\nX-Injected: 1")
    async with session.get(base + "/a", auth=auth) as resp:
        assert resp.status == 200
    assert BasicAuth.decode(only_request(state).headers["authorization"]) == auth


async def test_multipart_names_and_filenames_are_escaped_like_browsers() -> None:
    state = SinkState()
    server, url = await start_server(lambda: HashingSink(state))
    name = 'field"; filename="evil.sh"\r\nX-Injected: 1\r\n\r\nbody'
    filename = 'a"\r\nContent-Type: text/html\r\n.txt'
    form = FormData()
    form.add_field(name, "value")
    form.add_field("upload", io.BytesIO(b"content"), filename=filename)
    async with server, ClientSession() as session, session.post(url + "/form", data=form) as resp:
        assert resp.status == 200
    [received] = state.requests
    assert received.body is not None
    fields, files = parse_multipart(received.body, received.headers["content-type"])
    # On the wire: quotes and line breaks percent-encoded inside the quoted value.
    assert b'name="field%22; filename=%22evil.sh%22%0D%0AX-Injected: 1%0D%0A%0D%0Abody"\r\n' in (
        received.body
    )
    # Parsed back: exactly the two parts, each under its own name, nothing injected between them
    # (werkzeug turns %22 back into a quote, as the HTML spec has servers do).
    assert list(fields) == ['field"; filename="evil.sh"%0D%0AX-Injected: 1%0D%0A%0D%0Abody']
    assert list(fields.values()) == ["value"]
    assert list(files) == ["upload"]
    assert files["upload"].filename == 'a"%0D%0AContent-Type: text/html%0D%0A.txt'
    assert files["upload"].content_type == "text/plain"  # guessed from ".txt", not injected
    assert files["upload"].read() == b"content"


def parse_multipart(body: bytes, content_type: str) -> tuple[Any, Any]:
    return parse_form(body, content_type)


# --- a caller's Content-Length frames the body, or is refused ----------------------------------


async def _stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


@pytest.mark.parametrize(
    ("headers", "options", "refusal"),
    [
        # The rest of the body would be read as the next request on the connection.
        ({"Content-Length": "6"}, {"data": b"x=1\r\n\r\nDELETE /admin HTTP/1.1\r\n\r\n"}, "says 6"),
        ({"Content-Length": "9"}, {"data": b"short"}, "says 9 bytes but the body has 5"),
        ({"Content-Length": "3"}, {}, "says 3 bytes but the body has 0"),
        ({"Content-Length": "3", "Transfer-Encoding": "gzip"}, {"data": b"abc"}, "Transfer-Enc"),
        ({"Content-Length": "3"}, {"data": b"abc", "chunked": True}, "chunked can not"),
        ({"Content-Length": "3"}, {"data": b"abc", "compress": True}, "compress can not"),
        ({"Content-Length": "-3"}, {"data": b"abc"}, "whole number"),
        ({"Content-Length": "3, 3"}, {"data": b"abc"}, "whole number"),
        ({"Content-Length": "0x3"}, {"data": b"abc"}, "whole number"),
    ],
)
async def test_a_content_length_that_does_not_frame_the_body_is_refused(
    echo: tuple[ServerState, str],
    session: ClientSession,
    headers: dict[str, str],
    options: dict[str, Any],
    refusal: str,
) -> None:
    state, base = echo
    with pytest.raises(ValueError, match=refusal):
        await session.post(base + "/upload", headers=headers, **options)
    assert state.connections == 0


async def test_a_stream_under_a_content_length_is_sent_with_that_framing_only(
    echo: tuple[ServerState, str], session: ClientSession
) -> None:
    state, base = echo
    headers = {"Content-Length": "6"}
    async with session.post(base + "/a", data=_stream(b"abc", b"def"), headers=headers) as resp:
        assert resp.status == 200
    async with session.get(base + "/next") as resp:  # the same connection, still in step
        assert resp.status == 200
    first, second = state.requests
    assert (first.body, first.headers["content-length"]) == (b"abcdef", "6")
    assert "transfer-encoding" not in first.headers
    assert (second.method, second.target) == ("GET", "/next")
    assert state.connections == 1


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        ((b"abc", b"DELETE /admin HTTP/1.1\r\nHost: x\r\n\r\n"), "longer than its Content-Length"),
        ((b"ab",), "ended 1 bytes short of its Content-Length"),
    ],
)
async def test_a_stream_that_breaks_its_content_length_fails_and_smuggles_nothing(
    session: ClientSession, chunks: tuple[bytes, ...], message: str
) -> None:
    from crawler.http import ClientPayloadError

    state = ServerState()

    async def hold_body(reader: Any, writer: Any) -> None:
        # Reads the head, then whatever comes until the client gives up on the connection.
        state.connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        state.requests.append(Request("POST", "/", {}, head, await reader.read()))
        writer.close()

    async with raw_server(hold_body, state) as base:
        with pytest.raises(ClientPayloadError, match=message):
            await session.post(base + "/", data=_stream(*chunks), headers={"Content-Length": "3"})
        for _ in range(200):  # the client dropped the connection: the server reads to its end
            if state.requests:
                break
            await asyncio.sleep(0.01)
    [request] = state.requests
    assert b"Transfer-Encoding" not in request.raw_head
    assert b"DELETE" not in request.body and len(request.body) <= 3
