"""Cookies end to end: a real loopback server sets them, the session sends them back.

Scenarios on 127.0.0.1 run through our ClientSession and aiohttp's (both with unsafe jars,
since the host is an IP) and must put the same Cookie headers on the wire. Scenarios that
need host names use a resolver sending every name to 127.0.0.1.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import aiohttp

from crawler.http import ClientSession, CookieJar, TCPConnector
from crawler.http.resolver import AbstractResolver, ResolveResult
from tests.http.raw_server import Request, ServerState, raw_server, response, serve_forever


class LoopbackResolver(AbstractResolver):
    """Every name is 127.0.0.1, so tests can use www.shop.test and api.shop.test."""

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host="127.0.0.1", port=port,
                              family=socket.AF_INET, proto=0, flags=0)]

    async def close(self) -> None:
        pass


def set_cookies(*fields: str, status: int = 200, location: str | None = None) -> bytes:
    """A response with several Set-Cookie fields (a dict of headers could hold one)."""
    extra = "".join(f"Set-Cookie: {field}\r\n" for field in fields)
    if location is not None:
        extra += f"Location: {location}\r\n"
    head = response(status, b"", reason="OK" if status == 200 else "Found")
    return head.replace(b"\r\n\r\n", ("\r\n" + extra.rstrip("\r\n") + "\r\n\r\n").encode(), 1)


def cookies_seen(state: ServerState) -> list[str | None]:
    return [request.headers.get("cookie") for request in state.requests]


Answer = Callable[[Request], bytes]


async def with_ours(answer: Answer, paths: list[str], jar_options: dict[str, Any],
                    request_cookies: dict[str, str] | None = None,
                    session_cookies: dict[str, str] | None = None) -> list[str | None]:
    state = ServerState()
    async with (
        raw_server(serve_forever(answer, state)) as base,
        ClientSession(cookie_jar=CookieJar(unsafe=True, **jar_options),
                      cookies=session_cookies) as session,
    ):
        for path in paths:
            async with session.get(base + path, cookies=request_cookies) as resp:
                await resp.read()
    return cookies_seen(state)


async def with_aiohttp(answer: Answer, paths: list[str], jar_options: dict[str, Any],
                       request_cookies: dict[str, str] | None = None,
                       session_cookies: dict[str, str] | None = None) -> list[str | None]:
    state = ServerState()
    async with (
        raw_server(serve_forever(answer, state)) as base,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True, **jar_options),
                              cookies=session_cookies) as session,
    ):
        for path in paths:
            async with session.get(base + path, cookies=request_cookies) as resp:
                await resp.read()
    return cookies_seen(state)


async def same_on_the_wire(answer: Answer, paths: list[str], **options: Any) -> list[str | None]:
    jar_options = options.pop("jar_options", {})
    ours = await with_ours(answer, paths, jar_options, **options)
    theirs = await with_aiohttp(answer, paths, jar_options, **options)
    assert ours == theirs
    return ours


async def test_two_set_cookie_fields_for_one_name_and_two_paths() -> None:
    # The session stored response.cookies, a mapping by name: "a=root; Path=/" was lost.
    def answer(request: Request) -> bytes:
        if request.target == "/set":
            return set_cookies("a=root; Path=/", "a=deep; Path=/x")
        return response(200)

    seen = await same_on_the_wire(answer, ["/set", "/", "/x/y"])
    assert seen == [None, "a=root", "a=deep"]


async def test_one_cookie_per_field_and_values_with_spaces() -> None:
    # SimpleCookie.load made "b" a cookie of its own and dropped "c=x y" altogether.
    def answer(request: Request) -> bytes:
        if request.target == "/set":
            return set_cookies("a=1;b=2", "c=x y", "d=1; HttpOnly, junk=2")
        return response(200)

    seen = await with_ours(answer, ["/set", "/"], {})
    assert seen[1] is not None
    assert sorted(seen[1].split("; ")) == ["a=1", "c=x y", "d=1"]
    theirs = await with_aiohttp(answer, ["/set", "/"], {})
    assert theirs[1] is not None
    # aiohttp keeps the same cookies; it re-quotes the spaced value ("x y") when sending.
    assert sorted(p.split("=")[0] for p in theirs[1].split("; ")) == ["a", "c", "d"]


async def test_a_server_cookie_replaces_a_session_default_of_the_same_name() -> None:
    # ClientSession(cookies={"sid": "initial"}) kept sending "initial" after the server
    # set sid=new.
    def answer(request: Request) -> bytes:
        if request.target == "/login":
            return set_cookies("sid=new; Path=/")
        return response(200)

    seen = await same_on_the_wire(answer, ["/login", "/"], session_cookies={"sid": "initial"})
    assert seen == ["sid=initial", "sid=new"]


async def test_request_cookies_with_quote_cookie_false() -> None:
    # The per-request jar ignored the session jar's quote_cookie.
    seen = await same_on_the_wire(lambda r: response(200), ["/"],
                                  jar_options={"quote_cookie": False},
                                  request_cookies={"a": "x y"})
    assert seen == ["a=x y"]


async def test_request_cookies_join_and_override_the_jar() -> None:
    def answer(request: Request) -> bytes:
        if request.target == "/set":
            return set_cookies("a=jar", "b=jar")
        return response(200)

    seen = await same_on_the_wire(answer, ["/set", "/"], request_cookies={"b": "request"})
    assert seen[1] is not None
    assert sorted(seen[1].split("; ")) == ["a=jar", "b=request"]


async def test_a_huge_max_age_does_not_fail_the_request() -> None:
    # OverflowError from now + int(...) escaped from session.get.
    def answer(request: Request) -> bytes:
        return set_cookies("a=1; Max-Age=" + "9" * 400) if request.target == "/set" else (
            response(200))

    assert await same_on_the_wire(answer, ["/set", "/"]) == [None, "a=1"]


async def test_cookies_set_on_a_redirect_follow_their_domain_rules() -> None:
    state = ServerState()
    port_holder: list[str] = []

    def answer(request: Request) -> bytes:
        if request.target == "/start":
            return set_cookies(
                "host=1", "dom=1; Domain=shop.test", "tld=1; Domain=test",
                "p=root; Path=/", "p=next; Path=/next",
                status=302, location=f"http://api.shop.test:{port_holder[0]}/next/page",
            )
        return response(200)

    connector = TCPConnector(resolver=LoopbackResolver())
    async with (
        raw_server(serve_forever(answer, state)) as base,
        ClientSession(connector=connector) as session,
    ):
        port_holder.append(base.rsplit(":", 1)[1])
        async with session.get(f"http://www.shop.test:{port_holder[0]}/start") as resp:
            assert resp.status == 200
            assert [r.status for r in resp.history] == [302]
            # response.cookies is a mapping: the last field of a name.
            assert resp.history[0].cookies["p"].value == "next"
        async with session.get(f"http://api.shop.test:{port_holder[0]}/") as resp:
            await resp.read()
        names = {morsel.key for morsel in session.cookie_jar}
    # Host-only cookies stay with www; "Domain=test" (a TLD) is refused; both "p" are kept.
    assert names == {"host", "dom", "p"}
    assert len(session.cookie_jar) == 4
    seen = cookies_seen(state)
    assert seen[0] is None
    assert seen[1] is not None and sorted(seen[1].split("; ")) == ["dom=1"]
    assert seen[2] == "dom=1"


async def test_clear_domain_and_clear_on_a_live_session() -> None:
    state = ServerState()

    def answer(request: Request) -> bytes:
        if request.target == "/set":
            return set_cookies("a=1; Domain=shop.test", "b=1")
        return response(200)

    async with (
        raw_server(serve_forever(answer, state)) as base,
        ClientSession(connector=TCPConnector(resolver=LoopbackResolver())) as session,
    ):
        port = base.rsplit(":", 1)[1]
        www = f"http://www.shop.test:{port}"
        await (await session.get(www + "/set")).read()
        session.cookie_jar.update_cookies({"c": "1"})
        assert len(session.cookie_jar) == 3
        session.cookie_jar.clear_domain("shop.test")
        await (await session.get(www + "/")).read()
        session.cookie_jar.clear()
        await (await session.get(www + "/")).read()
    assert cookies_seen(state) == [None, "c=1", None]


async def test_cookies_from_a_redirect_response_go_on_the_redirected_request() -> None:
    def answer(request: Request) -> bytes:
        if request.target == "/start":
            return set_cookies("host=1", "p=root; Path=/", "p=next; Path=/next",
                               status=302, location="/next/page")
        return response(200)

    ours = await with_ours(answer, ["/start"], {})
    theirs = await with_aiohttp(answer, ["/start"], {})
    assert ours[0] is None and theirs[0] is None
    # RFC 6265 5.4 puts longer paths first; aiohttp puts them last. The same cookies go.
    assert ours[1] == "p=next; host=1"
    assert theirs[1] is not None and sorted(theirs[1].split("; ")) == ["host=1", "p=next"]
