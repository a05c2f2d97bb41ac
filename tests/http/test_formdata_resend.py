"""A FormData body sent again: 307/308 resends, the same form posted twice, one-shot streams,
and when the form's files are closed. Real servers on loopback, real files on disk."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crawler.http import (
    ClientPayloadError,
    ClientSession,
    FormData,
    RedirectClientError,
)
from tests.http.raw_server import Handler, Request, ServerState, raw_server, response, serve_forever
from tests.support.form_parser import parse_form

# Bigger than one file read (1 MiB), so a resend has to seek back over several chunks.
FILE_SIZE = 3 * 1024 * 1024 + 17


@pytest.fixture
def upload(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(FILE_SIZE)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    return path, data


def file_part(request: Request) -> bytes:
    """The uploaded file as a real multipart parser (werkzeug, httpbin's) reads it."""
    fields, files = parse_form(request.body, request.headers["content-type"])
    assert fields["x"] == "1"
    return files["file"].read()  # type: ignore[no-any-return]


def answer_ok(state: ServerState | None = None) -> Handler:
    return serve_forever(lambda _: response(200), state)


def form_with(file: object) -> FormData:
    form = FormData()
    form.add_field("x", "1")
    form.add_field("file", file, filename="upload.bin")
    return form


@pytest.mark.parametrize("status", [307, 308])
async def test_307_308_resend_a_multipart_file_upload_to_the_new_location(
    upload: tuple[Path, bytes], status: int
) -> None:
    path, data = upload
    first, second = ServerState(), ServerState()
    ok = serve_forever(lambda _: response(200, b"done"), second)
    async with raw_server(ok) as target:

        def moved(_: Request) -> bytes:
            return response(status, b"", {"Location": target + "/landed"}, reason="Moved")

        async with raw_server(serve_forever(moved, first)) as origin, ClientSession() as session:
            with path.open("rb") as file:
                form = form_with(file)
                async with session.post(origin + "/up", data=form) as resp:
                    assert resp.status == 200
                    assert resp.method == "POST"
                    assert [r.status for r in resp.history] == [status]
                await asyncio.sleep(0.05)  # past the session's after-send cleanup
                assert not file.closed  # the form owns it: it could be posted again
    (sent,) = first.requests
    (resent,) = second.requests
    assert resent.method == "POST"
    assert resent.body == sent.body  # byte for byte, boundary included
    assert resent.headers["content-length"] == str(len(sent.body))
    assert file_part(resent) == data


async def test_303_turns_the_upload_into_a_get_without_a_body(upload: tuple[Path, bytes]) -> None:
    path, _ = upload
    state = ServerState()

    def answer(request: Request) -> bytes:
        if request.target == "/up":
            return response(303, b"", {"Location": "/seen"}, reason="See Other")
        return response(200, b"done")

    async with raw_server(serve_forever(answer, state)) as base, ClientSession() as session:
        with path.open("rb") as file:
            async with session.post(base + "/up", data=form_with(file)) as resp:
                assert resp.status == 200
    upload_request, follow_up = state.requests
    assert len(upload_request.body) > FILE_SIZE
    assert follow_up.method == "GET"
    assert follow_up.body == b""
    assert "content-length" not in follow_up.headers
    assert "content-type" not in follow_up.headers


async def test_the_same_form_posted_twice_arrives_whole_both_times(
    upload: tuple[Path, bytes],
) -> None:
    path, data = upload
    state = ServerState()
    async with raw_server(answer_ok(state)) as base, ClientSession() as session:
        with path.open("rb") as file:
            form = form_with(file)
            for _ in range(2):
                async with session.post(base + "/up", data=form) as resp:
                    assert resp.status == 200
                    await resp.read()
    assert [file_part(request) for request in state.requests] == [data, data]


async def test_a_one_shot_stream_in_a_form_is_refused_on_307_not_sent_empty() -> None:
    state = ServerState()

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"streamed" * 100

    def answer(request: Request) -> bytes:
        if request.target == "/up":
            return response(307, b"", {"Location": "/again"}, reason="Temporary Redirect")
        return response(200)

    async with raw_server(serve_forever(answer, state)) as base, ClientSession() as session:
        form = FormData()
        form.add_field("x", "1")
        form.add_field("file", chunks(), filename="stream.bin")
        with pytest.raises(RedirectClientError, match="cannot be sent again") as caught:
            await session.post(base + "/up", data=form)
        # aiohttp raises ClientPayloadError here: code written for it still catches ours.
        assert isinstance(caught.value, ClientPayloadError)
        assert session.connector.stats().acquired == 0  # type: ignore[union-attr]
    assert [request.target for request in state.requests] == ["/up"]  # never resent


async def test_a_pipe_on_307_is_refused(tmp_path: Path) -> None:
    state = ServerState()

    def answer(request: Request) -> bytes:
        if request.target == "/up":
            return response(307, b"", {"Location": "/again"}, reason="Temporary Redirect")
        return response(200)

    read_end, write_end = os.pipe()
    os.write(write_end, b"p" * 5000)
    os.close(write_end)
    async with raw_server(serve_forever(answer, state)) as base, ClientSession() as session:
        with open(read_end, "rb") as pipe, pytest.raises(ClientPayloadError, match="one-shot"):
            await session.post(base + "/up", data=form_with(pipe))
    assert [request.target for request in state.requests] == ["/up"]


async def test_a_form_posted_again_after_its_stream_was_sent_fails_before_sending() -> None:
    heads: list[bytes] = []

    async def record_heads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            heads.append(head)  # before any body: a head alone counts
            while (size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)) > 0:
                await reader.readexactly(size + 2)
            await reader.readexactly(2)
            writer.write(response(200))
            await writer.drain()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"once"

    async with raw_server(record_heads) as base, ClientSession() as session:
        form = FormData()
        form.add_field("file", chunks(), filename="s.bin")
        async with session.post(base + "/up", data=form) as resp:
            await resp.read()
        with pytest.raises(RuntimeError, match="already sent once"):
            await session.post(base + "/up", data=form)
        await asyncio.sleep(0.05)
    assert len(heads) == 1  # no head promising a body that could never follow


async def test_form_files_stay_open_for_a_resend_until_the_form_is_closed(
    upload: tuple[Path, bytes],
) -> None:
    path, data = upload
    state = ServerState()
    async with raw_server(answer_ok(state)) as base, ClientSession() as session:
        file = path.open("rb")
        async with form_with(file) as form:
            async with session.post(base + "/up", data=form) as resp:
                await resp.read()
            await asyncio.sleep(0.05)  # past the session's after-send cleanup
            assert not file.closed
        assert file.closed
        with pytest.raises(RuntimeError, match="closed"):
            await session.post(base + "/up", data=form)
    assert [file_part(request) for request in state.requests] == [data]


async def test_form_files_are_closed_when_the_form_is_garbage_collected(
    upload: tuple[Path, bytes],
) -> None:
    path, _ = upload
    async with raw_server(answer_ok()) as base, ClientSession() as session:
        file = path.open("rb")
        # Inline, as in aiohttp's examples: only the request holds the form.
        async with session.post(base + "/up", data=form_with(file)) as resp:
            await resp.read()
        await asyncio.sleep(0.05)
        gc.collect()
        assert file.closed


async def test_files_in_a_dict_body_are_closed_by_the_request(
    upload: tuple[Path, bytes],
) -> None:
    path, data = upload
    state = ServerState()
    async with raw_server(answer_ok(state)) as base, ClientSession() as session:
        file = path.open("rb")
        async with session.post(base + "/up", data={"x": "1", "file": file}) as resp:
            await resp.read()
        await asyncio.sleep(0.05)
        assert file.closed  # nobody else can send this form again: closed, as aiohttp does
    assert [file_part(request) for request in state.requests] == [data]
