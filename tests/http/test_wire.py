"""The wire layer with plain bytes: request heads out, response events in, no I/O."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.http._wire import (
    BadStatusLine,
    BodyError,
    HeadError,
    LineTooLong,
    ResponseHead,
    ResponseParser,
    TooManyHeaders,
    encode_request_head,
)

# What no header value may hold (tab aside): C0 controls and DEL.
CONTROLS = "".join(chr(c) for c in (*range(0x20), 0x7F) if c != 0x09)


class Recorder:
    """A parser receiver that writes down every event."""

    def __init__(self) -> None:
        self.heads: list[ResponseHead] = []
        self.informational: list[int] = []
        self.body: list[bytes] = []
        self.completed: list[bool] = []

    def on_head(self, head: ResponseHead) -> None:
        self.heads.append(head)

    def on_informational(self, head: ResponseHead) -> None:
        self.informational.append(head.status)

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_message_complete(self, keep_alive: bool) -> None:
        self.completed.append(keep_alive)


def parse(data: bytes, *, head_request: bool = False, **limits: int) -> Recorder:
    recorder = Recorder()
    parser = ResponseParser(recorder, **limits)
    parser.expect(head_request=head_request)
    parser.feed(data)
    return recorder


# --- request heads ----------------------------------------------------------------------------


def test_request_head_is_request_line_headers_and_blank_line() -> None:
    head = encode_request_head("GET", "/a?b=1", [("Host", "example.com"), ("Accept", "*/*")])
    assert head == b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"


@pytest.mark.parametrize("bad", ["\r", "\n", "\x00", "\r\nX-Injected: 1"])
def test_header_value_with_cr_lf_nul_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="X-Test"):
        encode_request_head("GET", "/", [("X-Test", f"a{bad}b")])


@pytest.mark.parametrize("bad", ["/a\r\nHost: evil", "/a\x00", "/a b", "/a\n"])
def test_request_target_with_control_characters_or_space_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="request target"):
        encode_request_head("GET", bad, [("Host", "h")])


@pytest.mark.parametrize("method", ["GE T", "GET\r\n", "", "G\x00T", "GET/"])
def test_method_must_be_a_token(method: str) -> None:
    with pytest.raises(ValueError, match="method"):
        encode_request_head(method, "/", [])


@pytest.mark.parametrize("name", ["X Test", "X:Test", "X\r\nTest", "", "X-Ä"])
def test_header_name_must_be_a_token(name: str) -> None:
    with pytest.raises(ValueError, match="header name"):
        encode_request_head("GET", "/", [(name, "v")])


@given(
    value=st.text(alphabet=st.characters(codec="utf-8", exclude_characters=CONTROLS), max_size=50)
)
def test_any_value_without_control_characters_is_sent_verbatim(value: str) -> None:
    head = encode_request_head("POST", "/", [("X-Value", value)])
    assert f"X-Value: {value}\r\n".encode("utf-8", "surrogateescape") in head


@pytest.mark.parametrize("control", ["\x01", "\x08", "\x0b", "\x1b", "\x1f", "\x7f"])
def test_other_control_characters_are_refused_in_values_and_targets(control: str) -> None:
    with pytest.raises(ValueError, match="header 'X-V' contains"):
        encode_request_head("GET", "/", [("X-V", f"a{control}b")])
    with pytest.raises(ValueError, match="request target"):
        encode_request_head("GET", f"/a{control}b", [("Host", "h")])


def test_a_tab_is_allowed_in_a_value_but_not_in_the_target() -> None:
    assert b"X-V: a\tb\r\n" in encode_request_head("GET", "/", [("X-V", "a\tb")])
    with pytest.raises(ValueError, match="request target"):
        encode_request_head("GET", "/a\tb", [("Host", "h")])


# --- response parsing -------------------------------------------------------------------------

SIMPLE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
    b"Set-Cookie: a=1\r\n\r\nhello"
)


def test_content_length_response_gives_head_body_and_end() -> None:
    rec = parse(SIMPLE)
    (head,) = rec.heads
    assert (head.status, head.reason, head.version) == (200, "OK", (1, 1))
    assert head.raw_headers == [
        (b"Content-Type", b"text/plain"),
        (b"Content-Length", b"5"),
        (b"Set-Cookie", b"a=1"),
    ]
    assert head.content_length == 5 and not head.chunked and head.has_set_cookie
    assert b"".join(rec.body) == b"hello"
    assert rec.completed == [True]


def test_chunked_response_is_unframed() -> None:
    data = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    rec = parse(data)
    assert rec.heads[0].chunked
    assert b"".join(rec.body) == b"hello world"
    assert rec.completed == [True]
    # trailers are not headers of the response
    assert rec.heads[0].raw_headers == [(b"Transfer-Encoding", b"chunked")]


def test_connection_close_and_http10_are_not_keep_alive() -> None:
    rec = parse(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert rec.completed == [False]
    rec = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert rec.completed == [False] and rec.heads[0].version == (1, 0)


def test_body_until_close_ends_at_eof() -> None:
    recorder = Recorder()
    parser = ResponseParser(recorder)
    parser.expect()
    parser.feed(b"HTTP/1.1 200 OK\r\n\r\nsome data")
    assert parser.until_close and recorder.completed == []
    parser.feed(b" more")
    parser.feed_eof()
    assert b"".join(recorder.body) == b"some data more"
    assert recorder.completed == [False]


@pytest.mark.parametrize("status", [204, 304])
def test_204_and_304_have_no_body(status: int) -> None:
    rec = parse(f"HTTP/1.1 {status} X\r\nContent-Length: 10\r\n\r\n".encode())
    assert rec.body == [] and rec.completed == [True]


def test_head_response_has_no_body_even_with_content_length() -> None:
    recorder = Recorder()
    parser = ResponseParser(recorder)
    parser.expect(head_request=True)
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    assert recorder.body == [] and recorder.completed == [True]
    # the next response on the same connection parses normally
    parser.expect()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert b"".join(recorder.body) == b"ok" and recorder.completed == [True, True]


def test_informational_responses_come_before_the_final_one() -> None:
    rec = parse(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    )
    assert rec.informational == [100, 103]
    assert [h.status for h in rec.heads] == [201]
    assert rec.heads[0].raw_headers == [(b"Content-Length", b"0")]


def test_keep_alive_parser_reads_responses_one_after_another() -> None:
    recorder = Recorder()
    parser = ResponseParser(recorder)
    for i in range(3):
        parser.expect()
        parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + str(i).encode())
    assert b"".join(recorder.body) == b"012" and recorder.completed == [True] * 3


def test_garbage_status_line_is_a_head_error() -> None:
    with pytest.raises(BadStatusLine):
        parse(b"SPAM SPAM SPAM\r\n\r\n")


def test_lines_ended_by_a_bare_lf_are_read_as_servers_send_them() -> None:
    recorder = parse(b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: b\n\nok")
    (head,) = recorder.heads
    assert head.status == 200 and head.content_length == 2
    assert head.raw_headers == [(b"Content-Length", b"2"), (b"X-A", b"b")]
    assert recorder.body == [b"ok"] and recorder.completed == [True]


def test_a_folded_header_value_is_joined_with_a_space() -> None:
    recorder = parse(b"HTTP/1.1 200 OK\r\nX-F: a\r\n b\r\nContent-Length: 2\r\n\r\nok")
    (head,) = recorder.heads
    assert head.raw_headers[0] == (b"X-F", b"a b") and recorder.body == [b"ok"]


def test_a_cr_inside_a_header_value_is_still_refused() -> None:
    # Leniency ends at line breaks: a lone CR could hide a second header (or response).
    with pytest.raises(HeadError):
        parse(b"HTTP/1.1 200 OK\r\nX-F: a\rSet-Cookie: x=1\r\nContent-Length: 0\r\n\r\n")


def test_data_after_a_complete_response_is_an_error() -> None:
    with pytest.raises(BodyError, match="after the response"):
        parse(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n\r\n")


def test_bad_chunk_size_is_a_body_error() -> None:
    with pytest.raises(BodyError):
        parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n")


def test_eof_in_the_middle_of_a_body_is_an_error() -> None:
    recorder = Recorder()
    parser = ResponseParser(recorder)
    parser.expect()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(BodyError, match="before the response body was complete"):
        parser.feed_eof()


def test_eof_in_the_middle_of_a_head_is_an_error() -> None:
    recorder = Recorder()
    parser = ResponseParser(recorder)
    parser.expect()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-")
    with pytest.raises(HeadError, match="middle of the response head"):
        parser.feed_eof()


def test_header_value_over_max_field_size_is_refused() -> None:
    data = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100 + b"\r\n\r\n"
    with pytest.raises(LineTooLong, match="X-Big"):
        parse(data, max_field_size=50)
    assert parse(data, max_field_size=100).heads


def test_header_name_over_max_field_size_is_refused() -> None:
    with pytest.raises(LineTooLong, match="header name"):
        parse(b"HTTP/1.1 200 OK\r\n" + b"X" * 60 + b": v\r\n\r\n", max_field_size=50)


def test_status_line_over_max_line_size_is_refused() -> None:
    with pytest.raises(LineTooLong, match="status line"):
        parse(b"HTTP/1.1 200 " + b"O" * 100 + b"\r\n\r\n", max_line_size=50)


def test_more_headers_than_the_limit_is_refused() -> None:
    headers = b"".join(b"X-%d: v\r\n" % i for i in range(11))
    with pytest.raises(TooManyHeaders):
        parse(b"HTTP/1.1 200 OK\r\n" + headers + b"\r\n", max_headers=10)
    assert parse(b"HTTP/1.1 200 OK\r\n" + headers + b"\r\n", max_headers=11).heads


def test_a_header_that_never_ends_is_refused_before_it_is_buffered_whole() -> None:
    recorder = Recorder()
    parser = ResponseParser(recorder, max_field_size=100, max_line_size=100)
    parser.expect()
    parser.feed(b"HTTP/1.1 200 OK\r\nX-Endless: ")
    with pytest.raises(LineTooLong):
        for _ in range(100):
            parser.feed(b"a" * 50)


def test_invalid_content_length_is_refused() -> None:
    with pytest.raises(HeadError):
        parse(b"HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n")


def test_unexpected_upgrade_is_refused() -> None:
    with pytest.raises(HeadError, match="upgrade"):
        parse(
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        )


# --- properties -------------------------------------------------------------------------------

header_names = st.from_regex(r"\AX-[A-Za-z0-9-]{1,20}\Z")
header_values = st.from_regex(r"\A[!-~]([ !-~]{0,40}[!-~])?\Z")


@settings(max_examples=200, deadline=None)
@given(
    headers=st.lists(st.tuples(header_names, header_values), max_size=10),
    body=st.binary(max_size=2000),
    chunked=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=8),
)
def test_any_split_of_the_bytes_gives_the_same_response(
    headers: list[tuple[str, str]], body: bytes, chunked: bool, cuts: list[int]
) -> None:
    head = "HTTP/1.1 200 OK\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    if chunked:
        framed = b"".join(b"%x\r\n%b\r\n" % (len(body[i : i + 300]), body[i : i + 300])
                          for i in range(0, len(body), 300)) + b"0\r\n\r\n"
        data = (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + framed
    else:
        data = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    recorder = Recorder()
    parser = ResponseParser(recorder)
    parser.expect()
    points = sorted({c % (len(data) + 1) for c in cuts})
    start = 0
    for point in [*points, len(data)]:
        parser.feed(data[start:point])
        start = point
    (parsed,) = recorder.heads
    expected = [(n.encode(), v.encode()) for n, v in headers]
    assert parsed.raw_headers[: len(expected)] == expected
    assert b"".join(recorder.body) == body
    assert recorder.completed == [True]


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_parser_with_an_unexpected_exception(data: bytes) -> None:
    recorder = Recorder()
    parser = ResponseParser(recorder)
    parser.expect()
    try:
        parser.feed(data)
        parser.feed_eof()
    except (HeadError, BodyError):
        pass
