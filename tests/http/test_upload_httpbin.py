"""The guide's request-body and auth sections against local httpbin: what the server received.

httpbin (on wsgiref) reads only sized bodies, so everything here has a Content-Length; chunked,
compressed and streamed uploads are checked against our own servers in test_upload_streaming.py.
"""

from __future__ import annotations

import base64
import io
import json
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from crawler.http import BasicAuth, ClientSession, FormData, TCPConnector


def data_url_bytes(value: str) -> tuple[str, bytes]:
    """httpbin returns undecodable bodies as data URLs: (content type, bytes)."""
    header, _, encoded = value.partition(",")
    assert header.startswith("data:") and header.endswith(";base64"), value[:80]
    return header[5 : -len(";base64")], base64.b64decode(encoded)


@pytest.fixture
async def session() -> AsyncIterator[ClientSession]:
    async with ClientSession() as client:
        yield client


async def post_json(session: ClientSession, url: str, **kwargs: Any) -> dict[str, Any]:
    async with session.post(url, **kwargs) as response:
        assert response.status == 200, await response.text()
        return dict(await response.json())


# --- Custom Headers / More complicated POST requests -----------------------------------------


async def test_dict_is_form_encoded(httpbin, session: ClientSession) -> None:
    payload = {"key1": "value1", "key2": "value2"}
    echoed = await post_json(session, httpbin.url + "/post", data=payload)
    assert echoed["form"] == payload
    assert echoed["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


async def test_list_of_pairs_keeps_repeated_keys(httpbin, session: ClientSession) -> None:
    echoed = await post_json(
        session, httpbin.url + "/post", data=[("k", "1"), ("k", "2"), ("other", "x y")]
    )
    assert echoed["form"] == {"k": ["1", "2"], "other": "x y"}


async def test_str_is_posted_directly_as_utf8_text(httpbin, session: ClientSession) -> None:
    payload = {"some": "dätä"}
    echoed = await post_json(session, httpbin.url + "/post", data=json.dumps(payload))
    assert echoed["data"] == json.dumps(payload)
    assert echoed["json"] == payload
    assert echoed["headers"]["Content-Type"] == "text/plain; charset=utf-8"


async def test_custom_content_type_header_is_sent(httpbin, session: ClientSession) -> None:
    payload = {"some": "data"}
    echoed = await post_json(
        session,
        httpbin.url + "/post",
        data=json.dumps(payload),
        headers={"content-type": "application/json"},
    )
    assert echoed["json"] == payload
    assert echoed["headers"]["Content-Type"] == "application/json"


async def test_str_follows_the_charset_of_the_callers_content_type(
    httpbin, session: ClientSession
) -> None:
    echoed = await post_json(
        session,
        httpbin.url + "/post",
        data="café",
        headers={"Content-Type": "text/plain; charset=latin-1"},
    )
    _, raw = data_url_bytes(echoed["data"])
    assert raw == "café".encode("latin-1")


async def test_raw_bytes_are_sent_with_their_length(httpbin, session: ClientSession) -> None:
    raw = bytes(range(256)) * 4
    echoed = await post_json(session, httpbin.url + "/post", data=raw)
    content_type, received = data_url_bytes(echoed["data"])
    assert received == raw
    assert content_type == "application/octet-stream"
    assert echoed["headers"]["Content-Length"] == str(len(raw))


async def test_json_argument_is_serialized(httpbin, session: ClientSession) -> None:
    payload = {"a": [1, 2, {"b": None}], "ü": True}
    echoed = await post_json(session, httpbin.url + "/post", json=payload)
    assert echoed["json"] == payload
    assert echoed["headers"]["Content-Type"] == "application/json"


async def test_session_json_serialize_is_used(httpbin) -> None:
    def compact(obj: object) -> str:
        return json.dumps(obj, separators=(",", ":"), sort_keys=True)

    async with ClientSession(json_serialize=compact) as session:
        echoed = await post_json(session, httpbin.url + "/post", json={"b": 1, "a": 2})
    assert echoed["data"] == '{"a":2,"b":1}'


async def test_data_and_json_together_are_a_value_error(httpbin, session: ClientSession) -> None:
    with pytest.raises(ValueError, match="data and json"):
        await session.post(httpbin.url + "/post", data=b"x", json={"x": 1})


@pytest.mark.parametrize("method", ["put", "patch"])
async def test_put_and_patch_carry_bodies(httpbin, session: ClientSession, method: str) -> None:
    async with session.request(method.upper(), httpbin.url + f"/{method}", data={"k": "v"}) as r:
        assert r.status == 200
        assert (await r.json())["form"] == {"k": "v"}


async def test_anything_echoes_method_body_and_headers(httpbin, session: ClientSession) -> None:
    async with session.request(
        "DELETE", httpbin.url + "/anything/x", data=b"gone", headers={"X-Why": "test"}
    ) as response:
        echoed = await response.json()
    assert echoed["method"] == "DELETE"
    assert echoed["data"] == "gone"
    assert echoed["headers"]["X-Why"] == "test"


# --- POST a Multipart-Encoded File -----------------------------------------------------------


async def test_dict_with_open_file_uploads_multipart(
    httpbin, session: ClientSession, tmp_path: Path
) -> None:
    path = tmp_path / "report.csv"
    path.write_bytes(b"a,b\n1,2\n")
    with path.open("rb") as file:
        echoed = await post_json(
            session, httpbin.url + "/post", data={"file": file, "note": "numbers"}
        )
    assert echoed["files"] == {"file": "a,b\n1,2\n"}
    assert echoed["form"] == {"note": "numbers"}
    assert echoed["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")


async def test_formdata_file_with_filename_and_content_type(
    httpbin, session: ClientSession, tmp_path: Path
) -> None:
    path = tmp_path / "local.bin"
    content = b"\xd0\xcf\x11\xe0" + bytes(range(256)) * 20
    path.write_bytes(content)
    data = FormData()
    with path.open("rb") as file:
        data.add_field("file", file, filename="report.xls", content_type="application/vnd.ms-excel")
        echoed = await post_json(session, httpbin.url + "/post", data=data)
    content_type, received = data_url_bytes(echoed["files"]["file"])
    assert content_type == "application/vnd.ms-excel"
    assert received == content
    assert "Transfer-Encoding" not in echoed["headers"]  # a sized multipart body


async def test_several_files_and_fields_in_one_form(httpbin, session: ClientSession) -> None:
    data = FormData()
    data.add_field("field", "välue")
    data.add_field("first", io.BytesIO(b"one"), filename="1.txt")
    data.add_field("second", io.BytesIO(b"two"), filename="2.txt")
    echoed = await post_json(session, httpbin.url + "/post", data=data)
    assert echoed["form"] == {"field": "välue"}
    assert echoed["files"] == {"first": "one", "second": "two"}


# --- Streaming uploads (sized) ---------------------------------------------------------------


async def test_file_object_is_streamed_with_content_length(
    httpbin, session: ClientSession, tmp_path: Path
) -> None:
    path = tmp_path / "massive-body"
    content = bytes(range(256)) * 4096  # 1 MiB
    path.write_bytes(content)
    with path.open("rb") as file:
        echoed = await post_json(session, httpbin.url + "/post", data=file)
    _, received = data_url_bytes(echoed["data"])
    assert received == content
    assert echoed["headers"]["Content-Length"] == str(len(content))
    assert "Transfer-Encoding" not in echoed["headers"]


# --- Uploading pre-compressed data -----------------------------------------------------------


async def test_precompressed_body_is_sent_untouched(httpbin, session: ClientSession) -> None:
    original = b"my data " * 1000
    compressed = zlib.compress(original)
    echoed = await post_json(
        session,
        httpbin.url + "/post",
        data=compressed,
        headers={"Content-Encoding": "deflate"},
        compress=False,
    )
    _, received = data_url_bytes(echoed["data"])
    assert received == compressed
    assert zlib.decompress(received) == original
    assert echoed["headers"]["Content-Encoding"] == "deflate"


async def test_compress_with_a_content_encoding_header_is_a_value_error(
    httpbin, session: ClientSession
) -> None:
    with pytest.raises(ValueError, match="Content-Encoding"):
        await session.post(
            httpbin.url + "/post", data=b"x", headers={"Content-Encoding": "gzip"}, compress=True
        )


# --- auth ------------------------------------------------------------------------------------


async def test_basic_auth_per_request(httpbin, session: ClientSession) -> None:
    url = httpbin.url + "/basic-auth/user/pass"
    async with session.get(url, auth=BasicAuth("user", "pass")) as response:
        assert response.status == 200
        assert await response.json() == {"authenticated": True, "user": "user"}
    async with session.get(url, auth=BasicAuth("user", "wrong")) as response:
        assert response.status == 401
    async with session.get(url) as response:
        assert response.status == 401


async def test_basic_auth_per_session(httpbin) -> None:
    url = httpbin.url + "/basic-auth/user/pass"
    async with ClientSession(auth=BasicAuth("user", "pass")) as session, session.get(url) as r:
        assert r.status == 200


async def test_request_auth_overrides_session_auth(httpbin) -> None:
    async with ClientSession(auth=BasicAuth("user", "wrong")) as session:
        url = httpbin.url + "/basic-auth/user/pass"
        async with session.get(url, auth=BasicAuth("user", "pass")) as response:
            assert response.status == 200


async def test_non_latin1_credentials_with_utf8_encoding(httpbin, session: ClientSession) -> None:
    url = httpbin.url + "/headers"
    async with session.get(url, auth=BasicAuth("usér", "pässwörd", "utf-8")) as response:
        header = (await response.json())["headers"]["Authorization"]
    assert BasicAuth.decode(header, encoding="utf-8") == BasicAuth("usér", "pässwörd", "utf-8")


async def test_url_credentials_become_basic_auth(httpbin, session: ClientSession) -> None:
    url = URL(httpbin.url + "/basic-auth/user/p%40ss").with_user("user").with_password("p@ss")
    async with session.get(url) as response:
        assert response.status == 200
        assert await response.json() == {"authenticated": True, "user": "user"}


async def test_url_credentials_are_not_in_the_request_line(httpbin, session: ClientSession) -> None:
    url = URL(httpbin.url + "/anything").with_user("user").with_password("pass")
    async with session.get(url) as response:
        echoed = await response.json()
    assert "user" not in echoed["url"] and "pass" not in echoed["url"]
    assert echoed["headers"]["Authorization"] == BasicAuth("user", "pass").encode()


async def test_url_credentials_and_auth_together_are_a_value_error(
    httpbin, session: ClientSession
) -> None:
    url = URL(httpbin.url + "/get").with_user("user").with_password("pass")
    with pytest.raises(ValueError):
        await session.get(url, auth=BasicAuth("other", "x"))


async def test_auth_is_kept_on_a_same_origin_redirect(httpbin, session: ClientSession) -> None:
    url = URL(httpbin.url + "/redirect-to").with_query(url="/headers")
    async with session.get(url, auth=BasicAuth("user", "pass")) as response:
        assert len(response.history) == 1
        headers = (await response.json())["headers"]
    assert headers["Authorization"] == BasicAuth("user", "pass").encode()


async def test_auth_never_follows_a_redirect_to_another_origin(
    httpbin, session: ClientSession
) -> None:
    # Same server under another host name: another origin as far as credentials go.
    other = URL(httpbin.url).with_host("localhost") / "headers"
    url = URL(httpbin.url + "/redirect-to").with_query(url=str(other))
    async with session.get(url, auth=BasicAuth("user", "pass")) as response:
        assert response.url.host == "localhost"
        headers = (await response.json())["headers"]
    assert "Authorization" not in headers


async def test_url_credentials_never_follow_a_redirect_to_another_origin(httpbin) -> None:
    other = URL(httpbin.url).with_host("localhost") / "headers"
    url = URL(httpbin.url + "/redirect-to").with_query(url=str(other))
    url = url.with_user("user").with_password("pass")
    async with ClientSession() as session, session.get(url) as response:
        headers = (await response.json())["headers"]
    assert "Authorization" not in headers


async def test_credentials_in_a_location_become_basic_auth_for_that_url(httpbin) -> None:
    # httpbin's /basic-auth/u/p answers 200 only to those credentials, 401 otherwise.
    target = URL(httpbin.url).with_user("u").with_password("p") / "basic-auth" / "u" / "p"
    url = URL(httpbin.url + "/redirect-to").with_query(url=str(target))
    async with ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert [hop.status for hop in response.history] == [302]
        assert response.url.user is None and response.url.password is None
        assert (await response.json()) == {"authenticated": True, "user": "u"}
        assert response.request_info.headers["Authorization"] == BasicAuth("u", "p").encode()


async def test_credentials_in_a_location_replace_the_callers_auth(httpbin) -> None:
    target = URL(httpbin.url).with_user("u").with_password("p") / "basic-auth" / "u" / "p"
    url = URL(httpbin.url + "/redirect-to").with_query(url=str(target))
    async with (
        ClientSession() as session,
        session.get(url, auth=BasicAuth("caller", "secret")) as response,
    ):
        assert response.status == 200
        sent = response.request_info.headers["Authorization"]
    assert sent == BasicAuth("u", "p").encode()


# --- redirects with bodies -------------------------------------------------------------------


@pytest.mark.parametrize("status", [307, 308])
async def test_307_and_308_resend_a_replayable_body(
    httpbin, session: ClientSession, status: int
) -> None:
    url = URL(httpbin.url + "/redirect-to").with_query(url="/post", status_code=status)
    async with session.post(url, data={"k": "v"}) as response:
        assert response.status == 200
        assert [hop.status for hop in response.history] == [status]
        assert (await response.json())["form"] == {"k": "v"}


async def test_307_resends_a_file_from_its_start(
    httpbin, session: ClientSession, tmp_path: Path
) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"file contents")
    url = URL(httpbin.url + "/redirect-to").with_query(url="/post", status_code=307)
    with path.open("rb") as file:
        async with session.post(url, data=file) as response:
            echoed = await response.json()
    assert echoed["data"] == "file contents"


async def test_303_switches_to_get_and_drops_the_body(httpbin, session: ClientSession) -> None:
    url = URL(httpbin.url + "/redirect-to").with_query(url="/get", status_code=303)
    async with session.post(url, data=b"dropped") as response:
        assert response.status == 200
        assert response.method == "GET"
        echoed = await response.json()
    assert "Content-Length" not in echoed["headers"]


async def test_connections_go_back_to_the_pool(httpbin) -> None:
    connector = TCPConnector()
    async with ClientSession(connector=connector) as session:
        for data in (b"raw", {"k": "v"}, FormData({"f": io.BytesIO(b"x")})):
            await post_json(session, httpbin.url + "/post", data=data)
        assert connector.stats().acquired == 0


async def test_expect100_reaches_a_server_that_ignores_expect(
    httpbin, session: ClientSession
) -> None:
    # wsgiref never answers "100 Continue": after a short wait the body goes anyway (RFC 9110
    # 10.1.1), instead of the upload stalling until a timeout.
    echoed = await post_json(session, httpbin.url + "/post", data=b"sent anyway", expect100=True)
    assert echoed["data"] == "sent anyway"
    assert echoed["headers"]["Expect"] == "100-continue"
