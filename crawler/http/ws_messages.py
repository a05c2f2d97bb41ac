"""What a WebSocket client hands its user: message types, close codes, messages, timeouts.

Values and names follow aiohttp's (`WSMsgType.TEXT == 1`, `WSCloseCode.MESSAGE_TOO_BIG == 1009`,
`WSMessage(type, data, extra)`), so code written against aiohttp's client reads the same here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple

__all__ = [
    "WS_CLOSED_MESSAGE",
    "WS_CLOSING_MESSAGE",
    "ClientWSTimeout",
    "WSCloseCode",
    "WSMessage",
    "WSMsgType",
    "WebSocketError",
    "as_close_code",
]


class WSMsgType(IntEnum):
    """Kind of a received message: the RFC 6455 opcodes plus three client states."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    PING = 0x9
    PONG = 0xA
    CLOSE = 0x8
    CLOSING = 0x100
    CLOSED = 0x101
    ERROR = 0x102

    # Lower-case aliases that older aiohttp code (and the seed guide's era) still uses.
    text = TEXT
    binary = BINARY
    ping = PING
    pong = PONG
    close = CLOSE
    closing = CLOSING
    closed = CLOSED
    error = ERROR


class WSCloseCode(IntEnum):
    """Close codes of RFC 6455 section 7.4.1 (and the IANA registry)."""

    OK = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    ABNORMAL_CLOSURE = 1006
    INVALID_TEXT = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014


class WSMessage(NamedTuple):
    """One received message.

    `data` is `str` for TEXT, `bytes` for BINARY/PING/PONG, the close code (int) for CLOSE,
    the exception for ERROR and None for CLOSING/CLOSED. `extra` is the close reason (`str`,
    "" for none) for CLOSE, "" for TEXT/BINARY/PING/PONG and None for CLOSING/CLOSED/ERROR:
    aiohttp's reader and constants give exactly these, and code may test `msg.extra == ""`.
    """

    type: WSMsgType
    data: Any
    extra: str | None

    def json(self, *, loads: Callable[[Any], Any] = json.loads) -> Any:
        """The data parsed as JSON (TEXT or BINARY messages)."""
        return loads(self.data)


def as_close_code(code: int) -> int:
    """`code` as a WSCloseCode when it is a known one, else as a plain int (e.g. 4001)."""
    try:
        return WSCloseCode(code)
    except ValueError:
        return int(code)


WS_CLOSED_MESSAGE = WSMessage(WSMsgType.CLOSED, None, None)
WS_CLOSING_MESSAGE = WSMessage(WSMsgType.CLOSING, None, None)


class WebSocketError(Exception):
    """The peer broke the WebSocket protocol (or a limit); `code` is the close code we sent."""

    def __init__(self, code: int, message: str) -> None:
        self.code = as_close_code(code)
        super().__init__(code, message)

    def __str__(self) -> str:
        return str(self.args[1])


@dataclass(frozen=True, slots=True)
class ClientWSTimeout:
    """Timeouts of an open WebSocket.

    `ws_receive`: how long `receive()` waits for a message (None = forever).
    `ws_close`: how long `close()` waits for the server's close frame before giving up.
    """

    ws_receive: float | None = None
    ws_close: float | None = 10.0
