"""A server that sends whatever bytes a test scripts, one response per connection.

For answers `tests.storage.origin` will not give (a 206 with a Content-Encoding, a body that
is not what its head says): `handler(request_headers)` returns the whole response, head and
body, which is written as it is before the connection closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Scripted", "answer"]


def answer(status: int, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    """A response with a Content-Length and `Connection: close`."""
    lines = [f"HTTP/1.1 {status} Scripted", *(f"{k}: {v}" for k, v in headers)]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Scripted:
    def __init__(self, handler: Callable[[dict[str, str]], bytes]) -> None:
        self.handler = handler
        self.requests: list[dict[str, str]] = []  # header names lowercased
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> Scripted:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            headers: dict[str, str] = {}
            for line in head.split(b"\r\n")[1:]:
                name, colon, value = line.decode("latin-1").partition(":")
                if colon:
                    headers[name.strip().lower()] = value.strip()
            self.requests.append(headers)
            writer.write(self.handler(headers))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
