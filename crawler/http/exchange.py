"""Sending one request on a connection and waiting for its response head.

A body already in memory goes out in the same write as the head. Any other body is written by
a task of its own, with back-pressure (`drain`) and chunked framing when its size is unknown,
while the head is awaited: a server may answer before it has read the whole upload. A body that
fails half way closes the connection (it is never reused) and its error reaches the caller.
With `expect100` the body waits for `100 Continue`; a final status instead means it is never
sent and the connection is closed after the response.

`on_chunk` (tracing's `request_chunk_sent`) is awaited with each piece of the body as the payload
gives it, before it is framed and written; an in-memory body is one piece, as in aiohttp. For
`compress=` the pieces are those before compression (aiohttp reports what goes into its writer,
which compresses after), and the compressor's final flush is not one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from crawler.http._payload_compress import CompressedPayload
from crawler.http._wire import ResponseHead
from crawler.http.connection import Connection, ExchangeOptions
from crawler.http.errors import ClientPayloadError
from crawler.http.payload import BytesPayload, Payload
from crawler.http.streams import StreamReader

__all__ = ["EXPECT_CONTINUE_WAIT", "send_request"]

# How long to wait for "100 Continue" before sending the body anyway (RFC 9110 10.1.1 lets a
# client go on; servers that ignore Expect would otherwise stall the upload forever).
EXPECT_CONTINUE_WAIT = 1.0
# In-memory bodies up to this size are joined to the head: one write, one packet when small.
_JOIN_LIMIT = 64 * 1024

OnChunk = Callable[[bytes], Awaitable[None]]


async def send_request(
    conn: Connection,
    head: bytes,
    *,
    head_request: bool,
    options: ExchangeOptions,
    payload: Payload | None = None,
    chunked: bool = False,
    expect100: bool = False,
    on_chunk: OnChunk | None = None,
) -> tuple[ResponseHead, StreamReader]:
    """Write the request; return the response head (1xx answers skipped) and its body stream."""
    if payload is None:
        waiter = conn.start_exchange(head_request, options)
        conn.write_soon(head)  # with the other request heads of this loop iteration
        return await waiter
    if isinstance(payload, BytesPayload) and not chunked and not expect100:
        body = payload.value
        if on_chunk is not None:
            # Before the exchange starts: a failing callback leaves nothing half written.
            await on_chunk(body)
        waiter = conn.start_exchange(head_request, options)
        if len(body) <= _JOIN_LIMIT:
            conn.write(head + body)
        else:
            conn.write(head)
            conn.write(body)
        return await waiter
    waiter = conn.start_exchange(
        head_request, options, expect_continue=expect100, body_pending=True
    )
    conn.write(head)
    writer = asyncio.get_running_loop().create_task(
        _write_body(conn, payload, chunked=chunked, expect100=expect100, on_chunk=on_chunk)
    )
    conn.set_writer(writer)
    return await waiter


async def _write_body(
    conn: Connection,
    payload: Payload,
    *,
    chunked: bool,
    expect100: bool,
    on_chunk: OnChunk | None = None,
) -> None:
    try:
        if expect100 and not await _continue_allowed(conn):
            conn.must_close()
            return
        sent = 0
        if on_chunk is not None and isinstance(payload, CompressedPayload):
            # The compressor reports what it is given; its output is not reported again.
            chunks, on_chunk = payload.chunks(on_raw=on_chunk), None
        else:
            chunks = payload.chunks()
        async for chunk in chunks:
            if on_chunk is not None:
                await on_chunk(chunk)
            if not chunk:
                continue
            if chunked:
                conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            else:
                conn.write(chunk)
            sent += len(chunk)
            await conn.drain()
        if chunked:
            conn.write(b"0\r\n\r\n")
        elif payload.size is not None and sent != payload.size:
            raise ClientPayloadError(
                f"request body produced {sent} bytes but Content-Length said {payload.size}"
            )
        conn.request_sent()
    except asyncio.CancelledError:
        conn.must_close()
        raise
    except BaseException as exc:
        # Half a body on the wire: the connection cannot be reused; the caller sees why.
        conn.fail(exc)


async def _continue_allowed(conn: Connection) -> bool:
    waiter = conn.continue_waiter
    if waiter is None:
        return True
    with contextlib.suppress(TimeoutError):
        return await asyncio.wait_for(asyncio.shield(waiter), EXPECT_CONTINUE_WAIT)
    return True
