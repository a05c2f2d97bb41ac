"""The WebSocket pieces that do no I/O: message types, reassembly under a limit, the upgrade
request we build. Plain values in, plain values out."""

from __future__ import annotations

import json

import pytest
from wsproto.events import BytesMessage, TextMessage
from wsproto.extensions import PerMessageDeflate
from yarl import URL

from crawler.http.websocket import ws_timeout
from crawler.http.ws_assembler import MessageAssembler
from crawler.http.ws_handshake import build_upgrade_request, normalize_ws_url
from crawler.http.ws_messages import (
    ClientWSTimeout,
    WebSocketError,
    WSCloseCode,
    WSMessage,
    WSMsgType,
    as_close_code,
)


def test_message_types_have_aiohttp_values() -> None:
    assert [
        WSMsgType.CONTINUATION,
        WSMsgType.TEXT,
        WSMsgType.BINARY,
        WSMsgType.PING,
        WSMsgType.PONG,
        WSMsgType.CLOSE,
        WSMsgType.CLOSING,
        WSMsgType.CLOSED,
        WSMsgType.ERROR,
    ] == [0x0, 0x1, 0x2, 0x9, 0xA, 0x8, 0x100, 0x101, 0x102]
    assert WSMsgType.text is WSMsgType.TEXT
    assert WSMsgType.closed is WSMsgType.CLOSED


def test_close_codes() -> None:
    assert WSCloseCode.OK == 1000
    assert WSCloseCode.PROTOCOL_ERROR == 1002
    assert WSCloseCode.ABNORMAL_CLOSURE == 1006
    assert WSCloseCode.MESSAGE_TOO_BIG == 1009
    assert as_close_code(1009) is WSCloseCode.MESSAGE_TOO_BIG
    assert as_close_code(4001) == 4001


def test_message_json_and_fields() -> None:
    message = WSMessage(WSMsgType.TEXT, '{"a": [1, 2]}', None)
    assert message.json() == {"a": [1, 2]}
    assert message.json(loads=lambda text: json.loads(text)["a"]) == [1, 2]
    kind, data, extra = message
    assert (kind, data, extra) == (WSMsgType.TEXT, '{"a": [1, 2]}', None)


def test_websocket_error_carries_its_code() -> None:
    error = WebSocketError(1009, "too big")
    assert error.code is WSCloseCode.MESSAGE_TOO_BIG
    assert str(error) == "too big"


def test_ws_timeout_spellings() -> None:
    assert ws_timeout(5.0, None) == ClientWSTimeout(ws_receive=None, ws_close=5.0)
    assert ws_timeout(ClientWSTimeout(ws_close=3), 7) == ClientWSTimeout(ws_receive=7, ws_close=3)
    merged = ws_timeout(ClientWSTimeout(ws_receive=1, ws_close=2), None)
    assert merged == ClientWSTimeout(ws_receive=1, ws_close=2)


# --- reassembly ------------------------------------------------------------------------------


def test_text_pieces_become_one_message() -> None:
    assembler = MessageAssembler(0)
    assert assembler.feed(TextMessage("hé", message_finished=False)) is None
    assert assembler.feed(TextMessage("llo", message_finished=False)) is None
    assert assembler.buffered == len("héllo".encode())
    assert assembler.feed(TextMessage("!")) == WSMessage(WSMsgType.TEXT, "héllo!", "")
    assert assembler.buffered == 0


def test_binary_pieces_become_one_message() -> None:
    assembler = MessageAssembler(0)
    assert assembler.feed(BytesMessage(bytearray(b"\x00\x01"), message_finished=False)) is None
    message = assembler.feed(BytesMessage(b"\x02"))
    assert message == WSMessage(WSMsgType.BINARY, b"\x00\x01\x02", "")
    assert type(message.data) is bytes


def test_limit_counts_utf8_bytes_across_pieces() -> None:
    assembler = MessageAssembler(5)
    assert assembler.feed(TextMessage("éé", message_finished=False)) is None  # 4 bytes
    with pytest.raises(WebSocketError) as caught:
        assembler.feed(TextMessage("é"))  # 6 bytes > 5
    assert caught.value.code == WSCloseCode.MESSAGE_TOO_BIG
    assert "max_msg_size=5" in str(caught.value)


def test_a_message_exactly_at_the_limit_passes() -> None:
    assembler = MessageAssembler(4)
    assert assembler.feed(BytesMessage(b"abcd")) == WSMessage(WSMsgType.BINARY, b"abcd", "")


def test_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        MessageAssembler(-1)


# --- the upgrade request ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://a.test/x?q=1#frag", "ws://a.test/x?q=1"),
        ("https://a.test/", "wss://a.test/"),
        ("ws://a.test:8080/chat", "ws://a.test:8080/chat"),
        ("WSS://A.test/", "wss://a.test/"),
    ],
)
def test_urls_are_normalized_to_ws_schemes(given: str, expected: str) -> None:
    assert normalize_ws_url(given) == URL(expected)


@pytest.mark.parametrize("url", ["ftp://a.test/", "ws:///nohost", "/relative"])
def test_unusable_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        normalize_ws_url(url)


def test_upgrade_request_fields() -> None:
    request = build_upgrade_request(
        URL("wss://a.test:8443/feed?x=1"),
        protocols=["chat"],
        headers=[("X-One", "1"), ("X-One", "2")],
        origin="https://a.test",
        compress=12,
    )
    assert request.host == "a.test:8443"
    assert request.target == "/feed?x=1"
    assert request.subprotocols == ["chat"]
    assert (b"X-One", b"1") in request.extra_headers
    assert (b"X-One", b"2") in request.extra_headers
    assert (b"Origin", b"https://a.test") in request.extra_headers
    (deflate,) = request.extensions
    assert isinstance(deflate, PerMessageDeflate)
    assert deflate.client_max_window_bits == 12


def test_default_port_is_left_out_of_host_and_ipv6_is_bracketed() -> None:
    assert build_upgrade_request(URL("wss://a.test:443/")).host == "a.test"
    assert build_upgrade_request(URL("ws://[::1]:9000/")).host == "[::1]:9000"


def test_host_header_overrides_the_url_host() -> None:
    request = build_upgrade_request(URL("ws://127.0.0.1:9/"), headers={"Host": "virtual.test"})
    assert request.host == "virtual.test"
    assert all(name.lower() != b"host" for name, _ in request.extra_headers)


@pytest.mark.parametrize("compress", [1, 8, 16, -1])
def test_out_of_range_window_bits_are_refused(compress: int) -> None:
    with pytest.raises(ValueError, match="compress"):
        build_upgrade_request(URL("ws://a.test/"), compress=compress)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"protocols": ["bad protocol"]}, "subprotocol"),
        ({"protocols": ["x\r\n"]}, "subprotocol"),
        ({"origin": "http://a.test\r\nX: y"}, "CR, LF"),
        ({"headers": {"X-Name": "caf\u20ac"}}, "latin-1"),
        ({"headers": {"Connection": "close"}}, "Upgrade"),
        ({"headers": {"Sec-WebSocket-Key": "k"}}, "generated"),
    ],
)
def test_unsafe_request_parts_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_upgrade_request(URL("ws://a.test/"), **kwargs)  # type: ignore[arg-type]
