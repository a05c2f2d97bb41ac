"""Redirects: method and body rules, limits, history, and credentials across origins."""

from __future__ import annotations

import pytest

from crawler.http import (
    BasicAuth,
    ClientSession,
    CookieJar,
    InvalidUrlRedirectClientError,
    NonHttpUrlRedirectClientError,
    RedirectClientError,
    TooManyRedirects,
)
from tests.http.raw_server import Request, ServerState, raw_server, response, serve_forever


def redirect_to(location: str, status: int = 302) -> bytes:
    return response(status, b"moved", {"Location": location}, reason="Redirect")


@pytest.mark.parametrize("status", [301, 302, 303])
async def test_301_302_303_turn_a_post_into_a_get_without_body(httpbin, status: int) -> None:
    async with ClientSession() as session:
        url = f"{httpbin.url}/redirect-to?url=/anything&status_code={status}"
        async with session.post(url, data=b"payload") as resp:
            body = await resp.json()
    assert body["method"] == "GET"
    assert body["data"] == ""
    assert "Content-Length" not in body["headers"] and "Content-Type" not in body["headers"]
    assert resp.history[0].status == status


@pytest.mark.parametrize("status", [307, 308])
async def test_307_308_keep_method_and_body(httpbin, status: int) -> None:
    async with ClientSession() as session:
        url = f"{httpbin.url}/redirect-to?url=/anything&status_code={status}"
        async with session.post(url, data=b"payload") as resp:
            body = await resp.json()
    assert body["method"] == "POST"
    assert body["data"] == "payload"


async def test_303_keeps_head_a_head() -> None:
    state = ServerState()

    def answer(request: Request) -> bytes:
        if request.target == "/start":
            return redirect_to("/end", 303)
        return response(200, b"", {"X-Method": request.method})

    async with (
        raw_server(serve_forever(answer, state)) as base, ClientSession() as session,
        session.head(base + "/start", allow_redirects=True) as resp,
    ):
        assert resp.headers["X-Method"] == "HEAD"
    assert [r.method for r in state.requests] == ["HEAD", "HEAD"]


async def test_allow_redirects_false_returns_the_redirect(httpbin) -> None:
    async with (
        ClientSession() as session,
        session.get(httpbin.url + "/redirect/1", allow_redirects=False) as resp,
    ):
        assert resp.status == 302
        assert resp.headers["Location"] == "/get"


async def test_max_redirects_raises_with_the_history(httpbin) -> None:
    async with ClientSession() as session:
        with pytest.raises(TooManyRedirects) as info:
            await session.get(httpbin.url + "/redirect/5", max_redirects=3)
        assert len(info.value.history) == 4
        assert all(r.status == 302 for r in info.value.history)
        assert str(info.value.request_info.url) == httpbin.url + "/redirect/5"
        async with session.get(httpbin.url + "/redirect/3", max_redirects=3) as resp:
            assert resp.status == 200 and len(resp.history) == 3
        assert session.connector.stats().acquired == 0


async def test_default_max_redirects_is_ten(httpbin) -> None:
    async with ClientSession() as session:
        async with session.get(httpbin.url + "/redirect/10") as resp:
            assert len(resp.history) == 10
        with pytest.raises(TooManyRedirects):
            await session.get(httpbin.url + "/redirect/11")


async def test_a_redirect_loop_ends_in_too_many_redirects() -> None:
    async with (
        raw_server(serve_forever(lambda r: redirect_to(r.target))) as base,
        ClientSession() as session,
    ):
        with pytest.raises(TooManyRedirects):
            await session.get(base + "/loop")
        assert session.connector.stats().acquired == 0


async def test_redirect_connections_are_reused() -> None:
    state = ServerState()

    def answer(request: Request) -> bytes:
        step = int(request.target.strip("/"))
        return redirect_to(f"/{step + 1}") if step < 4 else response(200, b"done")

    async with (
        raw_server(serve_forever(answer, state), state) as base, ClientSession() as session,
        session.get(base + "/0") as resp,
    ):
        assert await resp.read() == b"done"
    assert state.connections == 1 and len(state.requests) == 5


async def test_authorization_and_cookie_headers_do_not_follow_to_another_origin(httpbin) -> None:
    state = ServerState()
    target = httpbin.url + "/headers"
    async with (
        raw_server(serve_forever(lambda r: redirect_to(target), state)) as base,
        ClientSession() as session,
    ):
        headers = {"Authorization": "Bearer secret", "Cookie": "session=secret"}
        async with session.get(base + "/x", headers=headers, cookies={"c": "secret"}) as resp:
            seen = (await resp.json())["headers"]
    # the first origin got them ...
    first = state.requests[0].headers
    assert first["authorization"] == "Bearer secret"
    assert "session=secret" in first["cookie"] and "c=secret" in first["cookie"]
    # ... the second one did not
    assert "Authorization" not in seen
    assert "Cookie" not in seen


async def test_basic_auth_does_not_follow_to_another_origin(httpbin) -> None:
    state = ServerState()
    async with (
        raw_server(serve_forever(lambda r: redirect_to(httpbin.url + "/headers"), state)) as base,
        ClientSession() as session,
        session.get(base + "/x", auth=BasicAuth("user", "pass")) as resp,
    ):
        seen = (await resp.json())["headers"]
    assert state.requests[0].headers["authorization"].startswith("Basic ")
    assert "Authorization" not in seen


async def test_credentials_stay_on_a_same_origin_redirect() -> None:
    state = ServerState()

    def answer(request: Request) -> bytes:
        return redirect_to("/b") if request.target == "/a" else response(200)

    async with raw_server(serve_forever(answer, state)) as base, ClientSession() as session:
        await (await session.get(base + "/a", headers={"Authorization": "t"})).read()
    assert [r.headers.get("authorization") for r in state.requests] == ["t", "t"]


async def test_jar_cookies_follow_their_own_domain_rules(httpbin) -> None:
    def answer(request: Request) -> bytes:
        return response(302, b"", {"Location": httpbin.url + "/cookies",
                                   "Set-Cookie": "jar=1; Path=/"})

    async with (
        raw_server(serve_forever(answer)) as base,
        ClientSession(cookie_jar=CookieJar(unsafe=True)) as session,
        session.get(base + "/") as resp,
    ):
        # same IP, another port: cookies do not isolate by port (RFC 6265 section 8.5)
        assert (await resp.json())["cookies"] == {"jar": "1"}


async def test_redirect_to_a_non_http_scheme_is_refused() -> None:
    async with (
        raw_server(serve_forever(lambda r: redirect_to("ftp://example.com/f"))) as base,
        ClientSession() as session,
    ):
        with pytest.raises(NonHttpUrlRedirectClientError):
            await session.get(base + "/")
        assert session.connector.stats().acquired == 0


async def test_redirect_to_an_invalid_url_is_refused() -> None:
    async with (
        raw_server(serve_forever(lambda r: redirect_to("http://"))) as base,
        ClientSession() as session,
    ):
        with pytest.raises(InvalidUrlRedirectClientError):
            await session.get(base + "/")


async def test_a_one_shot_body_cannot_be_replayed_on_307() -> None:
    async def gen():
        yield b"streamed"

    def answer(request: Request) -> bytes:
        return redirect_to("/b", 307) if request.target == "/a" else response(200)

    async with raw_server(serve_forever(answer)) as base, ClientSession() as session:
        with pytest.raises(RedirectClientError, match="cannot be sent again"):
            await session.post(base + "/a", data=gen())
        assert session.connector.stats().acquired == 0


async def test_relative_location_is_resolved_against_the_request_url() -> None:
    state = ServerState()

    def answer(request: Request) -> bytes:
        return redirect_to("next?x=1") if request.target == "/dir/start" else response(200)

    async with (
        raw_server(serve_forever(answer, state)) as base, ClientSession() as session,
        session.get(base + "/dir/start") as resp,
    ):
        assert str(resp.url) == base + "/dir/next?x=1"
    assert state.requests[1].target == "/dir/next?x=1"


@pytest.mark.parametrize("status", [301, 302])
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_301_302_keep_any_method_but_post_with_its_body(
    httpbin, status: int, method: str
) -> None:
    # Only POST becomes GET on a 301/302 (RFC 9110 15.4.2-3): a DELETE stays a DELETE.
    async with ClientSession() as session:
        url = f"{httpbin.url}/redirect-to?url=/anything&status_code={status}"
        async with session.request(method, url, data=b"payload") as resp:
            body = await resp.json()
    assert (body["method"], body["data"]) == (method, "payload")
    assert resp.method == method and resp.history[0].status == status


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_303_makes_any_method_a_get(httpbin, method: str) -> None:
    async with ClientSession() as session:
        url = f"{httpbin.url}/redirect-to?url=/anything&status_code=303"
        async with session.request(method, url, data=b"payload") as resp:
            body = await resp.json()
    assert (body["method"], body["data"]) == ("GET", "")


@pytest.mark.parametrize("location", ["/a b?c d", "/a\x01b"])
async def test_an_unquoted_location_that_cannot_be_sent_is_a_redirect_error(
    location: str,
) -> None:
    async with (
        raw_server(serve_forever(lambda r: redirect_to(location))) as base,
        ClientSession(requote_redirect_url=False) as session,
    ):
        with pytest.raises(InvalidUrlRedirectClientError, match="spaces or controls"):
            await session.get(base + "/")


async def test_credentials_with_only_a_password_in_a_location_are_used_and_kept_out() -> None:
    state = ServerState()

    def answer(request: Request) -> bytes:
        if request.target == "/a":
            return redirect_to(f"http://:pw@{request.headers['host']}/b")
        return response(200)

    async with (
        raw_server(serve_forever(answer, state)) as base,
        ClientSession() as session,
        session.get(base + "/a") as resp,
    ):
        assert resp.status == 200 and "pw" not in str(resp.url)
    assert state.requests[1].headers["authorization"] == BasicAuth("", "pw").encode()
