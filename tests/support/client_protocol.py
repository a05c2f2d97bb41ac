"""A client-side asyncio protocol for transport tests: sends a request, collects the answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any


class CollectingProtocol(asyncio.Protocol):
    """Keeps every byte received and tells when the peer closed the connection."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.received = bytearray()
        self.made = 0
        self.closed: asyncio.Future[Exception | None] = loop.create_future()
        self._data_event = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made += 1
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received += data
        self._data_event.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._data_event.set()
        if not self.closed.done():
            self.closed.set_result(exc)

    async def read_response(self) -> tuple[bytes, Any]:
        """Wait for one complete Content-Length response; return (head, parsed JSON body)."""
        while True:
            end = self.received.find(b"\r\n\r\n")
            if end != -1:
                head = bytes(self.received[:end])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body_end = end + 4 + length
                if len(self.received) >= body_end:
                    body = bytes(self.received[end + 4 : body_end])
                    del self.received[:body_end]
                    return head, json.loads(body) if body else None
            if self.closed.done():
                raise ConnectionError(f"closed before a full response: {bytes(self.received)!r}")
            self._data_event.clear()
            await self._data_event.wait()


def get_request(target: str, host: str, *, extra: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode("latin-1")
