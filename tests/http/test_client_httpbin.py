"""The client guide's sections, as written, against a local httpbin."""

from __future__ import annotations

import json

import pytest
from multidict import CIMultiDictProxy, MultiDict
from yarl import URL

import crawler.http as http
from crawler.http import ClientSession, ContentTypeError, StreamReader, TCPConnector


@pytest.fixture
async def session():
    async with ClientSession() as session:
        yield session
        stats = session.connector.stats()
        assert (stats.acquired, stats.waiters, stats.opening) == (0, 0, 0)


# --- Make a Request ---------------------------------------------------------------------------


async def test_get_gives_status_and_text(httpbin, session: ClientSession) -> None:
    async with session.get(httpbin.url + "/get") as resp:
        assert resp.status == 200
        assert '"url"' in await resp.text()


async def test_post_sends_bytes(httpbin, session: ClientSession) -> None:
    async with session.post(httpbin.url + "/post", data=b"data") as resp:
        assert (await resp.json())["data"] == "data"


@pytest.mark.parametrize("method", ["put", "patch"])
async def test_put_and_patch_send_bytes(httpbin, session: ClientSession, method: str) -> None:
    async with getattr(session, method)(f"{httpbin.url}/{method}", data=b"data") as resp:
        assert (await resp.json())["data"] == "data"


async def test_delete(httpbin, session: ClientSession) -> None:
    async with session.delete(httpbin.url + "/delete") as resp:
        assert resp.status == 200
        assert (await resp.json())["url"].endswith("/delete")


async def test_head_has_status_and_headers_but_no_body(httpbin, session: ClientSession) -> None:
    async with session.head(httpbin.url + "/get") as resp:
        assert resp.status == 200
        assert int(resp.headers["Content-Length"]) > 0
        assert await resp.read() == b""


async def test_options(httpbin, session: ClientSession) -> None:
    async with session.options(httpbin.url + "/get") as resp:
        assert resp.status == 200
        assert "GET" in resp.headers["Allow"]


async def test_request_with_any_method(httpbin, session: ClientSession) -> None:
    async with session.request("PATCH", httpbin.url + "/anything") as resp:
        assert (await resp.json())["method"] == "PATCH"


async def test_a_request_can_be_awaited_without_async_with(httpbin, session: ClientSession) -> None:
    resp = await session.get(httpbin.url + "/get")
    assert resp.status == 200
    assert (await resp.json())["url"].endswith("/get")
    resp.release()


# --- Passing Parameters In URLs ---------------------------------------------------------------


async def test_params_dict(httpbin, session: ClientSession) -> None:
    params = {"key1": "value1", "key2": "value2"}
    async with session.get(httpbin.url + "/get", params=params) as resp:
        assert isinstance(resp.url, URL)
        assert str(resp.url) == httpbin.url + "/get?key1=value1&key2=value2"
        assert (await resp.json())["args"] == params


async def test_params_list_of_pairs_repeats_keys(httpbin, session: ClientSession) -> None:
    params = [("key", "value1"), ("key", "value2")]
    async with session.get(httpbin.url + "/get", params=params) as resp:
        assert str(resp.url) == httpbin.url + "/get?key=value1&key=value2"
        assert (await resp.json())["args"] == {"key": ["value1", "value2"]}


async def test_params_multidict(httpbin, session: ClientSession) -> None:
    params = MultiDict([("a", "1"), ("a", "2"), ("b", "3")])
    async with session.get(httpbin.url + "/get", params=params) as resp:
        assert str(resp.url) == httpbin.url + "/get?a=1&a=2&b=3"


async def test_params_str_is_sent_as_given_and_plus_stays_plus(
    httpbin, session: ClientSession
) -> None:
    async with session.get(httpbin.url + "/get", params="key=value+1") as resp:
        assert str(resp.url) == httpbin.url + "/get?key=value+1"
        # the server reads the + as a space: proof that it went out unencoded
        assert (await resp.json())["args"] == {"key": "value 1"}


async def test_params_are_added_to_an_existing_query(httpbin, session: ClientSession) -> None:
    async with session.get(httpbin.url + "/get?a=1", params={"b": "2"}) as resp:
        assert (await resp.json())["args"] == {"a": "1", "b": "2"}


async def test_params_values_are_encoded(httpbin, session: ClientSession) -> None:
    async with session.get(httpbin.url + "/get", params={"q": "a b&c=d/é"}) as resp:
        assert (await resp.json())["args"] == {"q": "a b&c=d/é"}


# --- Response Content -------------------------------------------------------------------------


async def test_text_decodes_utf8(httpbin, session: ClientSession) -> None:
    async with session.get(httpbin.url + "/encoding/utf8") as resp:
        assert "∮ E⋅da = Q" in await resp.text()


async def test_text_with_a_custom_encoding(httpbin, session: ClientSession) -> None:
    async with session.get(httpbin.url + "/get") as resp:
        assert '"url"' in await resp.text(encoding="windows-1251")


async def test_read_gives_bytes(httpbin, session: ClientSession) -> None:
    async with session.get(httpbin.url + "/bytes/3000", params={"seed": "1"}) as resp:
        body = await resp.read()
        assert isinstance(body, bytes) and len(body) == 3000
        assert await resp.read() is body  # read twice: same bytes


@pytest.mark.parametrize("path,flag", [("/gzip", "gzipped"), ("/deflate", "deflated"),
                                       ("/brotli", "brotli")])
async def test_compressed_bodies_are_decoded(
    httpbin, session: ClientSession, path: str, flag: str
) -> None:
    async with session.get(httpbin.url + path) as resp:
        assert (await resp.json())[flag] is True


async def test_auto_decompress_off_keeps_the_raw_bytes(httpbin) -> None:
    async with (
        ClientSession(auto_decompress=False) as session,
        session.get(httpbin.url + "/gzip") as resp,
    ):
        raw = await resp.read()
        assert raw[:2] == b"\x1f\x8b"


async def test_json(httpbin, session: ClientSession) -> None:
    async with session.get(httpbin.url + "/json") as resp:
        assert "slideshow" in await resp.json()


async def test_json_with_custom_loads(httpbin, session: ClientSession) -> None:
    seen: list[str] = []

    def loads(text: str) -> object:
        seen.append(text)
        return json.loads(text)

    async with session.get(httpbin.url + "/json") as resp:
        await resp.json(loads=loads)
    assert seen and "slideshow" in seen[0]


async def test_json_on_a_non_json_type_raises_content_type_error(
    httpbin, session: ClientSession
) -> None:
    async with session.get(httpbin.url + "/html") as resp:
        with pytest.raises(ContentTypeError) as info:
            await resp.json()
        assert info.value.status == 200
        assert "text/html" in info.value.message
        # content_type=None skips the check (and the body is then not JSON)
        with pytest.raises(ValueError):
            await resp.json(content_type=None)


async def test_json_decoding_failure_raises(httpbin, session: ClientSession) -> None:
    async with session.get(httpbin.url + "/html") as resp:
        with pytest.raises(json.JSONDecodeError):
            await resp.json(content_type="text/html")


# --- Streaming Response Content ---------------------------------------------------------------


async def test_content_is_a_stream_reader(httpbin, session: ClientSession) -> None:
    async with session.get(httpbin.url + "/stream-bytes/50000?chunk_size=1000&seed=3") as resp:
        assert isinstance(resp.content, StreamReader)
        first = await resp.content.read(10)
        assert len(first) == 10
        rest = b""
        while True:
            chunk = await resp.content.read(4096)
            if not chunk:
                break
            assert len(chunk) <= 4096
            rest += chunk
        assert len(first + rest) == 50000
        assert resp.content.at_eof()


async def test_iter_chunked_and_iter_any(httpbin, session: ClientSession) -> None:
    url = httpbin.url + "/stream-bytes/20000?chunk_size=700&seed=5"
    async with session.get(url) as resp:
        chunked = b"".join([c async for c in resp.content.iter_chunked(1024)])
    async with session.get(url) as resp:
        anys = b"".join([c async for c in resp.content.iter_any()])
    assert chunked == anys and len(chunked) == 20000


async def test_streamed_gzip_is_decoded_while_streaming(httpbin, session: ClientSession) -> None:
    async with session.get(httpbin.url + "/gzip") as resp:
        text = b"".join([c async for c in resp.content.iter_chunked(16)])
        assert json.loads(text)["gzipped"] is True


# --- Releasing Response -----------------------------------------------------------------------


async def test_release_after_reading_leaves_nothing_acquired(httpbin, session) -> None:
    resp = await session.get(httpbin.url + "/get")
    await resp.read()
    await resp.release()
    assert session.connector.stats().acquired == 0


async def test_release_of_an_unread_body_closes_the_connection(httpbin, session) -> None:
    resp = await session.get(httpbin.url + "/stream-bytes/2000000?chunk_size=1000")
    conn = resp.connection
    assert conn is not None and not conn.is_closed
    await resp.release()
    assert conn.is_closed
    assert session.connector.stats().acquired == 0


# --- Custom Headers ---------------------------------------------------------------------------


async def test_custom_headers_are_sent(httpbin, session: ClientSession) -> None:
    payload = {"some": "data"}
    headers = {"content-type": "application/json", "X-Custom": "yes"}
    async with session.post(
        httpbin.url + "/post", data=json.dumps(payload), headers=headers
    ) as resp:
        body = await resp.json()
    assert body["json"] == payload
    assert body["headers"]["Content-Type"] == "application/json"
    assert body["headers"]["X-Custom"] == "yes"


async def test_session_headers_and_request_headers_merge(httpbin) -> None:
    async with (
        ClientSession(headers={"X-A": "session", "X-B": "session"}) as session,
        session.get(httpbin.url + "/headers", headers={"x-b": "request"}) as resp,
    ):
        headers = (await resp.json())["headers"]
    assert headers["X-A"] == "session" and headers["X-B"] == "request"


async def test_default_headers(httpbin, session: ClientSession) -> None:
    async with session.get(httpbin.url + "/headers") as resp:
        headers = (await resp.json())["headers"]
    assert headers["Accept"] == "*/*"
    assert "gzip" in headers["Accept-Encoding"]
    assert headers["User-Agent"].startswith("Python/")
    assert headers["Host"] == f"{httpbin.host}:{httpbin.port}"


async def test_skip_auto_headers(httpbin) -> None:
    async with (
        ClientSession(skip_auto_headers=["User-Agent"]) as session,
        session.get(httpbin.url + "/headers", skip_auto_headers=["Accept-Encoding"]) as resp,
    ):
        headers = (await resp.json())["headers"]
    assert "User-Agent" not in headers and "Accept-Encoding" not in headers
    assert headers["Accept"] == "*/*"


async def test_a_caller_header_replaces_the_automatic_one(httpbin, session) -> None:
    async with session.get(httpbin.url + "/headers", headers={"user-agent": "crawler"}) as resp:
        assert (await resp.json())["headers"]["User-Agent"] == "crawler"


# --- Custom Cookies ---------------------------------------------------------------------------


async def test_session_cookies_are_sent(httpbin) -> None:
    cookies = {"cookies_are": "working"}
    async with (
        ClientSession(cookies=cookies) as session,
        session.get(httpbin.url + "/cookies") as resp,
    ):
        assert await resp.json() == {"cookies": {"cookies_are": "working"}}


async def test_request_cookies_are_sent(httpbin, session: ClientSession) -> None:
    async with session.get(httpbin.url + "/cookies", cookies={"a": "1"}) as resp:
        assert await resp.json() == {"cookies": {"a": "1"}}


# --- Limiting connection pool size ------------------------------------------------------------


async def test_connector_limits(httpbin) -> None:
    conn = TCPConnector(limit=30)
    assert conn.limit == 30
    async with ClientSession(connector=conn) as session, session.get(httpbin.url + "/get") as resp:
        assert resp.status == 200
    unlimited = TCPConnector(limit=None)
    assert unlimited.limit == 0
    await unlimited.close()


# --- Response Status Codes / Headers / Cookies / History --------------------------------------


@pytest.mark.parametrize("status", [200, 201, 404, 500])
async def test_status_codes(httpbin, session: ClientSession, status: int) -> None:
    async with session.get(f"{httpbin.url}/status/{status}") as resp:
        assert resp.status == status
        assert resp.ok is (status < 400)


async def test_headers_are_case_insensitive_multidict(httpbin, session) -> None:
    async with session.get(httpbin.url + "/get") as resp:
        assert isinstance(resp.headers, CIMultiDictProxy)
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.headers.get("content-type") == "application/json"
        assert resp.headers["CONTENT-TYPE"] == "application/json"


async def test_raw_headers_are_byte_pairs(httpbin, session: ClientSession) -> None:
    async with session.get(httpbin.url + "/get") as resp:
        raw = resp.raw_headers
        assert isinstance(raw, tuple)
        assert (b"Content-Type", b"application/json") in raw
        assert all(isinstance(n, bytes) and isinstance(v, bytes) for n, v in raw)


async def test_repeated_headers_are_kept(httpbin, session: ClientSession) -> None:
    url = httpbin.url + "/response-headers?X-Rep=1&X-Rep=2"
    async with session.get(url) as resp:
        assert resp.headers.getall("X-Rep") == ["1", "2"]


async def test_response_cookies_hold_this_response_set_cookie(httpbin) -> None:
    url = httpbin.url + "/cookies/set?example_cookie_name=v1"
    # httpbin runs on 127.0.0.1: an IP host, whose cookies only an unsafe jar keeps
    async with ClientSession(cookie_jar=http.CookieJar(unsafe=True)) as session:
        async with session.get(url, allow_redirects=False) as resp:
            assert resp.status == 302
            assert resp.cookies["example_cookie_name"].value == "v1"
        async with session.get(url) as resp:
            # the final response of the chain set nothing, but the session's jar kept it
            assert "example_cookie_name" not in resp.cookies
            assert (await resp.json())["cookies"] == {"example_cookie_name": "v1"}


async def test_default_jar_keeps_no_cookies_from_ip_hosts(httpbin, session) -> None:
    async with session.get(httpbin.url + "/cookies/set?a=1") as resp:
        assert (await resp.json())["cookies"] == {}
    assert len(session.cookie_jar) == 0


async def test_history_lists_every_redirect(httpbin, session: ClientSession) -> None:
    async with session.get(httpbin.url + "/redirect/2") as resp:
        assert resp.status == 200
        assert str(resp.url) == httpbin.url + "/get"
        assert [r.status for r in resp.history] == [302, 302]
        assert str(resp.history[0].url) == httpbin.url + "/redirect/2"
        assert repr(resp.history[0]).startswith(f"<ClientResponse({httpbin.url}/redirect/2) [302")


async def test_history_is_empty_without_redirects(httpbin, session: ClientSession) -> None:
    async with session.get(httpbin.url + "/redirect/1", allow_redirects=False) as resp:
        assert resp.status == 302 and resp.history == ()
    async with session.get(httpbin.url + "/get") as resp:
        assert resp.history == ()


# --- Response metadata ------------------------------------------------------------------------


async def test_response_fields(httpbin, session: ClientSession) -> None:
    async with session.get(httpbin.url + "/get#frag") as resp:
        assert resp.method == "GET"
        assert resp.reason == "OK"
        assert resp.version == (1, 1)
        assert str(resp.real_url) == httpbin.url + "/get#frag"
        assert str(resp.url) == httpbin.url + "/get"
        assert resp.content_type == "application/json"
        info = resp.request_info
        assert info.method == "GET" and info.headers["Accept"] == "*/*"


async def test_raise_for_status(httpbin, session: ClientSession) -> None:
    async with session.get(httpbin.url + "/status/418") as resp:
        with pytest.raises(http.ClientResponseError) as info:
            resp.raise_for_status()
    assert info.value.status == 418
    assert "418" in str(info.value)


async def test_session_raise_for_status(httpbin) -> None:
    async with ClientSession(raise_for_status=True) as session:
        with pytest.raises(http.ClientResponseError) as info:
            await session.get(httpbin.url + "/status/503")
        assert info.value.status == 503
        async with session.get(httpbin.url + "/status/404", raise_for_status=False) as resp:
            assert resp.status == 404
        assert session.connector.stats().acquired == 0


async def test_base_url(httpbin) -> None:
    async with ClientSession(base_url=httpbin.url + "/anything/") as session:
        async with session.get("sub/path", params={"a": "1"}) as resp:
            assert str(resp.url) == httpbin.url + "/anything/sub/path?a=1"
        async with session.get("/get") as resp:
            assert str(resp.url) == httpbin.url + "/get"
