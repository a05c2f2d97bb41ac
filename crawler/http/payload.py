"""Request bodies: turn what a caller passes as `data=` or `json=` into a `Payload`.

The session asks `make_payload(data)` or `json_payload(obj, dumps)` for a body, takes
Content-Type from `payload.content_type` when the caller set none, sends Content-Length when
`payload.size` is known and chunked framing otherwise, and writes `payload.chunks()`.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any

from crawler.http._payload_base import (
    CHUNK_SIZE,
    BytesPayload,
    OneShotPayload,
    Payload,
    StringPayload,
)
from crawler.http._payload_compress import COMPRESSIONS, CompressedPayload, compress_payload
from crawler.http._payload_streams import (
    AsyncIterablePayload,
    FilePayload,
    StreamReaderPayload,
    is_file_like,
    is_stream_reader,
)
from crawler.http.formdata import FormData, request_form_body

__all__ = [
    "CHUNK_SIZE",
    "COMPRESSIONS",
    "AsyncIterablePayload",
    "BytesPayload",
    "CompressedPayload",
    "FilePayload",
    "OneShotPayload",
    "Payload",
    "StreamReaderPayload",
    "StringPayload",
    "compress_payload",
    "json_payload",
    "make_payload",
]

_ACCEPTED = (
    "bytes, bytearray, memoryview, str, a dict or list of (name, value) pairs, FormData, "
    "a binary file object, an async iterable of bytes or a StreamReader"
)


def make_payload(data: object, *, content_type: str | None = None) -> Payload:
    """The body for `data=`.

    `content_type` is the caller's Content-Type header, if any: it picks the charset a `str` is
    encoded with. Raises TypeError for a value that cannot be a body, naming what is accepted.
    """
    if isinstance(data, Payload):
        return data
    if isinstance(data, FormData):
        return data()
    if isinstance(data, bytes | bytearray | memoryview):
        if content_type is None:
            return BytesPayload(data)
        return BytesPayload(data, content_type=content_type)
    if isinstance(data, str):
        return StringPayload(data, content_type=content_type)
    if isinstance(data, Mapping | list | tuple):
        return request_form_body(data)
    # A StreamReader has read() too (a coroutine) and may be async-iterable by lines, as in
    # aiohttp: readany() is what it is streamed with.
    if is_stream_reader(data):
        return StreamReaderPayload(data, content_type=content_type)
    if is_file_like(data):
        return FilePayload(data, content_type=content_type)
    if hasattr(data, "__aiter__"):
        return AsyncIterablePayload(data, content_type=content_type)  # type: ignore[arg-type]
    if isinstance(data, types.GeneratorType):
        raise TypeError(
            "data= got a sync generator; use an async generator of bytes or a binary file object"
        )
    if isinstance(data, types.CoroutineType):
        raise TypeError("data= got a coroutine; pass an async generator of bytes instead")
    raise TypeError(f"data= cannot be {type(data).__name__}; pass {_ACCEPTED}")


def json_payload(obj: object, dumps: Callable[[Any], str | bytes]) -> Payload:
    """`obj` serialized with `dumps` (the session's `json_serialize`), sent as application/json.

    `dumps` may return str (encoded UTF-8) or bytes (sent as they are, e.g. orjson).
    """
    text = dumps(obj)
    if isinstance(text, str):
        text = text.encode("utf-8")
    elif not isinstance(text, bytes | bytearray | memoryview):
        raise TypeError(f"json_serialize returned {type(text).__name__}, expected str or bytes")
    return BytesPayload(text, content_type="application/json")
