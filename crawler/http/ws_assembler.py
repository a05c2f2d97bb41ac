"""Reassembling wsproto's message pieces into whole messages, under a size limit. No I/O.

wsproto hands out a data message as pieces (one per frame, or per chunk of a frame as bytes
arrive); the user wants whole messages, and a server must not be able to make us buffer
without bound, hence `max_size` (counted in payload bytes, as aiohttp does).
"""

from __future__ import annotations

from wsproto.events import BytesMessage, TextMessage

from crawler.http.ws_messages import WebSocketError, WSCloseCode, WSMessage, WSMsgType

__all__ = ["MessageAssembler"]


def _utf8_length(text: str) -> int:
    # isascii() is O(1) in CPython, so the common case costs no copy.
    return len(text) if text.isascii() else len(text.encode("utf-8"))


class MessageAssembler:
    """Collects the pieces of one message at a time; `max_size=0` means no limit."""

    __slots__ = ("_binary_parts", "_max_size", "_size", "_text_parts")

    def __init__(self, max_size: int) -> None:
        if max_size < 0:
            raise ValueError(f"max_msg_size must be >= 0, got {max_size}")
        self._max_size = max_size
        self._size = 0
        self._text_parts: list[str] = []
        self._binary_parts: list[bytes] = []

    @property
    def buffered(self) -> int:
        """Payload bytes of the message being assembled."""
        return self._size

    def feed(self, event: TextMessage | BytesMessage) -> WSMessage | None:
        """Take one piece; return the whole message once its last piece arrived.

        Its `extra` is "" as in aiohttp's reader (None is for CLOSING/CLOSED/ERROR).

        Raises WebSocketError(1009) as soon as the message grows past the limit.
        """
        if isinstance(event, TextMessage):
            self._grow(_utf8_length(event.data))
            if event.message_finished and not self._text_parts:
                self._size = 0
                return WSMessage(WSMsgType.TEXT, event.data, "")
            self._text_parts.append(event.data)
            if not event.message_finished:
                return None
            text = "".join(self._text_parts)
            self._text_parts.clear()
            self._size = 0
            return WSMessage(WSMsgType.TEXT, text, "")

        self._grow(len(event.data))
        if event.message_finished and not self._binary_parts:
            self._size = 0
            return WSMessage(WSMsgType.BINARY, bytes(event.data), "")
        self._binary_parts.append(bytes(event.data))
        if not event.message_finished:
            return None
        data = b"".join(self._binary_parts)
        self._binary_parts.clear()
        self._size = 0
        return WSMessage(WSMsgType.BINARY, data, "")

    def _grow(self, nbytes: int) -> None:
        self._size += nbytes
        if self._max_size and self._size > self._max_size:
            size = self._size
            self._size = 0
            self._text_parts.clear()
            self._binary_parts.clear()
            raise WebSocketError(
                WSCloseCode.MESSAGE_TOO_BIG,
                f"message of at least {size} bytes exceeds max_msg_size={self._max_size}",
            )
