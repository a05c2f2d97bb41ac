"""Session behaviour: URLs, injection, auth, lifecycle warnings, text decoding, request bodies."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest
from yarl import URL

from crawler.http import (
    BasicAuth,
    ClientSession,
    InvalidURL,
    NonHttpUrlClientError,
    TCPConnector,
)
from tests.http.raw_server import (
    Request,
    ServerState,
    raw_server,
    response,
    serve_forever,
)


def echo_server(state: ServerState):
    return raw_server(serve_forever(lambda r: response(200, b"ok"), state), state)


# --- URLs and injection -----------------------------------------------------------------------


@pytest.mark.parametrize("url", ["not a url", "http://", "//no-scheme/x", "/relative"])
async def test_invalid_urls_raise_invalid_url(url: str) -> None:
    async with ClientSession() as session:
        with pytest.raises(InvalidURL):
            await session.get(url)


async def test_non_http_scheme_is_refused() -> None:
    async with ClientSession() as session:
        with pytest.raises(NonHttpUrlClientError):
            await session.get("ftp://example.com/file")


@pytest.mark.parametrize("bad", ["/a\r\nX-Injected: 1", "/a\nb", "/a\x00b"])
async def test_cr_lf_nul_in_a_url_raise_before_anything_is_sent(bad: str) -> None:
    state = ServerState()
    async with echo_server(state) as base, ClientSession() as session:
        with pytest.raises(InvalidURL):
            await session.get(base + bad)
    assert state.connections == 0


@pytest.mark.parametrize(
    "headers",
    [{"X-A": "v\r\nX-Injected: 1"}, {"X-A": "v\n"}, {"X-A": "\x00"}, {"X A": "v"}, {"X\r\n": "v"}],
)
async def test_cr_lf_nul_in_headers_raise_before_anything_is_sent(headers) -> None:
    state = ServerState()
    async with echo_server(state) as base, ClientSession() as session:
        with pytest.raises(ValueError):
            await session.get(base, headers=headers)
        assert session.connector.stats().acquired == 0
    assert state.connections == 0


@pytest.mark.parametrize("method", ["GET /x HTTP/1.1\r\n", "G ET", "GET\x00"])
async def test_bad_methods_are_refused(method: str) -> None:
    state = ServerState()
    async with echo_server(state) as base, ClientSession() as session:
        with pytest.raises(ValueError, match="method"):
            await session.request(method, base)
    assert state.connections == 0


async def test_url_object_is_accepted_and_path_is_encoded() -> None:
    state = ServerState()
    async with (
        echo_server(state) as base, ClientSession() as session,
        session.get(URL(base) / "a b" / "ü") as resp,
    ):
        assert resp.status == 200
    assert state.requests[0].target == "/a%20b/%C3%BC"


# --- auth ---------------------------------------------------------------------------------------


async def test_credentials_in_the_url_become_basic_auth(httpbin) -> None:
    url = URL(httpbin.url + "/basic-auth/user/pa ss").with_user("user").with_password("pa ss")
    async with ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        assert (await resp.json())["authenticated"] is True
        assert resp.url.user is None


async def test_a_password_without_a_user_in_the_url_is_basic_auth_too(httpbin) -> None:
    url = httpbin.url.replace("http://", "http://:secret@") + "/headers"
    async with ClientSession() as session, session.get(url) as resp:
        sent = (await resp.json())["headers"]["Authorization"]
        assert sent == BasicAuth("", "secret").encode()
        for seen in (resp.url, resp.real_url, resp.request_info.url):
            assert "secret" not in str(seen)


async def test_a_base_url_must_end_in_a_slash() -> None:
    # Joined by RFC 3986, "/api/v1" + "users" is "/api/users": refused rather than guessed.
    with pytest.raises(ValueError, match="trailing '/'"):
        ClientSession(base_url="http://127.0.0.1/api/v1")


async def test_auth_argument_and_session_auth(httpbin) -> None:
    async with ClientSession(auth=BasicAuth("user", "pw")) as session:
        async with session.get(httpbin.url + "/basic-auth/user/pw") as resp:
            assert resp.status == 200
        async with session.get(httpbin.url + "/basic-auth/u2/p2",
                               auth=BasicAuth("u2", "p2")) as resp:
            assert resp.status == 200


async def test_url_credentials_and_auth_together_raise(httpbin) -> None:
    async with ClientSession() as session:
        with pytest.raises(ValueError, match="credentials encoded in URL"):
            await session.get(URL(httpbin.url).with_user("a"), auth=BasicAuth("b"))


async def test_url_credentials_never_reach_the_request_line() -> None:
    state = ServerState()
    async with echo_server(state) as base, ClientSession() as session:
        url = URL(base + "/p").with_user("u").with_password("secret")
        await (await session.get(url)).read()
    request = state.requests[0]
    assert b"secret" not in request.raw_head.split(b"\r\n")[0]
    assert request.headers["authorization"] == BasicAuth("u", "secret").encode()


# --- lifecycle ----------------------------------------------------------------------------------


async def test_unclosed_session_warns_once_with_where_it_was_created() -> None:
    session = ClientSession()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del session
        gc.collect()
    messages = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert len(messages) == 1
    assert "Unclosed client session" in messages[0]
    assert "test_session.py" in messages[0]


async def test_closed_session_refuses_requests() -> None:
    session = ClientSession()
    await session.close()
    assert session.closed
    with pytest.raises(RuntimeError, match="closed"):
        await session.get("http://127.0.0.1:1/")


async def test_connector_owner_false_leaves_the_connector_open() -> None:
    state = ServerState()
    connector = TCPConnector()
    async with echo_server(state) as base:
        async with ClientSession(connector=connector, connector_owner=False) as session:
            await (await session.get(base)).read()
        assert not connector.closed
        async with ClientSession(connector=connector, connector_owner=False) as session:
            await (await session.get(base)).read()
        await connector.close()
    assert state.connections == 1  # the second session reused the first one's connection


async def test_session_closes_its_own_connector() -> None:
    async with ClientSession() as session:
        connector = session.connector
    assert connector is not None and connector.closed


# --- text decoding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["Café crème".encode("cp1252"), ("Съешь же ещё этих мягких булок. " * 20).encode("cp1251")],
)
async def test_text_without_charset_is_utf8_unless_the_session_resolves_it(body: bytes) -> None:
    """As in aiohttp: no guessing (a guess from a short body decodes "successfully" into
    nonsense: b"Caf\xe9 cr\xe8me" came out as 'Cafﻠ crﻟme'); `fallback_charset_resolver`
    decides instead, given the response and the body."""
    answer = serve_forever(lambda r: response(200, body, {"Content-Type": "text/plain"}))
    async with raw_server(answer) as base, ClientSession() as session, session.get(base) as resp:
        assert resp.get_encoding() == "utf-8"
        with pytest.raises(UnicodeDecodeError):
            await resp.text()
        assert await resp.text(errors="replace") == body.decode("utf-8", "replace")
    seen: list[tuple[int, bytes]] = []

    def resolve(resp: object, content: bytes) -> str:
        seen.append((resp.status, content))  # type: ignore[attr-defined]
        return "cp1252" if content.startswith(b"Caf") else "cp1251"

    expected = body.decode("cp1252" if body.startswith(b"Caf") else "cp1251")
    async with (
        raw_server(answer) as base,
        ClientSession(fallback_charset_resolver=resolve) as session,
        session.get(base) as resp,
    ):
        assert await resp.text() == expected
    assert seen == [(200, body)]


async def test_text_uses_the_content_type_charset() -> None:
    body = "häßlich".encode("latin-1")
    answer = serve_forever(
        lambda r: response(200, body, {"Content-Type": "text/plain; charset=ISO-8859-1"})
    )
    async with raw_server(answer) as base, ClientSession() as session, session.get(base) as resp:
        assert resp.charset == "ISO-8859-1"
        assert await resp.text() == "häßlich"
        assert await resp.text(errors="replace", encoding="ascii") == "h\ufffd\ufffdlich"


async def test_json_accepts_structured_json_types() -> None:
    answer = serve_forever(
        lambda r: response(200, b'{"a": 1}', {"Content-Type": "application/vnd.api+json"})
    )
    async with raw_server(answer) as base, ClientSession() as session, session.get(base) as resp:
        assert await resp.json() == {"a": 1}


async def test_json_of_an_empty_body_is_none() -> None:
    answer = serve_forever(lambda r: response(200, b"", {"Content-Type": "application/json"}))
    async with raw_server(answer) as base, ClientSession() as session, session.get(base) as resp:
        assert await resp.json() is None


# --- request bodies through the write path ------------------------------------------------------


async def test_bytes_body_has_content_length() -> None:
    state = ServerState()
    async with echo_server(state) as base, ClientSession() as session:
        await (await session.post(base, data=b"x" * 100_000)).read()
    request = state.requests[0]
    assert request.headers["content-length"] == "100000" and request.body == b"x" * 100_000


async def test_post_without_body_sends_content_length_zero() -> None:
    state = ServerState()
    async with echo_server(state) as base, ClientSession() as session:
        await (await session.post(base)).read()
        await (await session.get(base)).read()
    assert state.requests[0].headers["content-length"] == "0"
    assert "content-length" not in state.requests[1].headers


async def test_async_generator_body_is_sent_chunked() -> None:
    state = ServerState()

    async def gen():
        for i in range(50):
            yield b"part%d;" % i

    async with echo_server(state) as base, ClientSession() as session:
        await (await session.post(base, data=gen())).read()
    request = state.requests[0]
    assert request.headers["transfer-encoding"] == "chunked"
    assert request.body == b"".join(b"part%d;" % i for i in range(50))


async def test_chunked_true_frames_a_sized_body() -> None:
    state = ServerState()
    async with echo_server(state) as base, ClientSession() as session:
        await (await session.post(base, data=b"abc", chunked=True)).read()
    assert state.requests[0].headers["transfer-encoding"] == "chunked"
    assert "content-length" not in state.requests[0].headers
    assert state.requests[0].body == b"abc"


async def test_data_and_json_together_raise() -> None:
    async with ClientSession() as session:
        with pytest.raises(ValueError, match="data and json"):
            await session.post("http://127.0.0.1:1/", data=b"a", json={"a": 1})


async def test_json_body(httpbin) -> None:
    async with (
        ClientSession() as session,
        session.post(httpbin.url + "/post", json={"k": [1, 2]}) as resp,
    ):
        body = await resp.json()
    assert body["json"] == {"k": [1, 2]}
    assert body["headers"]["Content-Type"] == "application/json"


async def test_a_body_failing_half_way_closes_the_connection_and_reports_why() -> None:
    state = ServerState()

    async def broken():
        yield b"first part"
        raise OSError("disk went away")

    async with echo_server(state) as base, ClientSession() as session:
        with pytest.raises(OSError, match="disk went away"):
            await session.post(base, data=broken())
        stats = session.connector.stats()
        assert (stats.acquired, stats.idle) == (0, 0)
        await (await session.get(base)).read()
    assert state.connections == 2


async def test_a_large_streamed_upload_respects_back_pressure() -> None:
    received = 0

    async def handler(reader, writer) -> None:
        nonlocal received
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"chunked" in head.lower()
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            received += size
            await asyncio.sleep(0)  # a slow reader
            if size == 0:
                break
        writer.write(response(200, b"done"))
        await writer.drain()

    async def gen():
        block = b"u" * 65536
        for _ in range(400):
            yield block

    async with (
        raw_server(handler) as base, ClientSession() as session,
        session.post(base, data=gen()) as resp,
    ):
        assert await resp.read() == b"done"
    assert received == 400 * 65536


async def test_expect100_waits_for_continue_then_sends_the_body() -> None:
    got: list[bytes] = []

    async def handler(reader, writer) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"expect: 100-continue" in head.lower()
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await reader.readexactly(11)
        got.append(body)
        writer.write(response(200, b"thanks"))
        await writer.drain()

    async with raw_server(handler) as base, ClientSession() as session, session.post(
        base, data=b"hello world", expect100=True
    ) as resp:
        assert await resp.read() == b"thanks"
    assert got == [b"hello world"]


async def test_expect100_final_status_means_the_body_is_never_sent() -> None:
    state = ServerState()
    sent_body = False

    async def handler(reader, writer) -> None:
        nonlocal sent_body
        request = await read_request_head(reader)
        state.requests.append(request)
        writer.write(response(417, b"no", reason="Expectation Failed"))
        await writer.drain()
        try:
            extra = await asyncio.wait_for(reader.read(100), 0.5)
            sent_body = bool(extra)
        except TimeoutError:
            sent_body = False

    async def gen():
        yield b"secret body"

    async with raw_server(handler, state) as base, ClientSession() as session:
        async with session.post(
            base, data=gen(), expect100=True, headers={"Expect": "100-continue"}
        ) as resp:
            assert resp.status == 417
            await resp.read()
        assert session.connector.stats().idle == 0  # closed, not reused
    assert not sent_body


async def read_request_head(reader: asyncio.StreamReader) -> Request:
    head = await reader.readuntil(b"\r\n\r\n")
    return Request("POST", "/", {}, head)


async def test_compress_deflate_sends_compressed_body() -> None:
    import zlib

    state = ServerState()
    async with echo_server(state) as base, ClientSession() as session:
        await (await session.post(base, data=b"z" * 10000, compress="deflate")).read()
    request = state.requests[0]
    assert request.headers["content-encoding"] == "deflate"
    assert zlib.decompress(request.body) == b"z" * 10000


async def test_stream_reader_as_body_pipes_a_response_into_a_request() -> None:
    state = ServerState()
    payload = bytes(range(256)) * 4000

    def answer(request: Request) -> bytes:
        return response(200, payload if request.method == "GET" else b"stored")

    async with raw_server(serve_forever(answer, state), state) as base, ClientSession() as session:
        source = await session.get(base + "/source")
        async with session.post(base + "/sink", data=source.content) as resp:
            assert await resp.read() == b"stored"
        source.release()
        assert session.connector.stats().acquired == 0
    assert state.requests[1].body == payload


async def test_read_bufsize_and_ok_with_many_small_pieces() -> None:
    async with (
        raw_server(serve_forever(lambda r: response(200, b"q" * 300_000))) as base,
        ClientSession(read_bufsize=1024) as session,
        session.get(base) as resp,
    ):
        assert len(await resp.read()) == 300_000


def test_session_can_be_created_outside_a_running_loop() -> None:
    async def use(session: ClientSession) -> None:
        await session.close()

    session = ClientSession()
    asyncio.run(use(session))
    assert session.closed

