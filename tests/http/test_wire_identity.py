"""The wire layer counting identity bodies itself: pieces handed over as views, no copies."""

from __future__ import annotations

import pytest

from crawler.http._wire import BodyError, ResponseHead, ResponseParser


class Recorder:
    """A parser receiver that keeps every event (body pieces as given: bytes or views)."""

    def __init__(self) -> None:
        self.heads: list[ResponseHead] = []
        self.body: list[bytes | memoryview] = []
        self.completed: list[bool] = []

    def on_head(self, head: ResponseHead) -> None:
        self.heads.append(head)

    def on_informational(self, head: ResponseHead) -> None:
        pass

    def on_body(self, data: bytes | memoryview) -> None:
        self.body.append(data)

    def on_message_complete(self, keep_alive: bool) -> None:
        self.completed.append(keep_alive)


def fresh_parser() -> tuple[ResponseParser, Recorder]:
    recorder = Recorder()
    parser = ResponseParser(recorder)
    parser.expect()
    return parser, recorder


def test_body_after_the_heads_read_is_counted_and_handed_over_without_a_copy() -> None:
    parser, rec = fresh_parser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    assert parser.direct_body  # what comes next is body, up to 7 more bytes
    buffer = bytearray(b"defg")
    parser.feed(memoryview(buffer))
    assert rec.body[-1].obj is buffer  # a view of the caller's own buffer
    assert parser.direct_body and rec.completed == []
    parser.feed(b"hij")
    assert not parser.direct_body
    assert b"".join(rec.body) == b"abcdefghij"
    assert rec.completed == [True]


def test_counted_body_ends_at_its_length_and_bytes_after_it_are_an_error() -> None:
    parser, rec = fresh_parser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nab")
    with pytest.raises(BodyError, match="after the response"):
        parser.feed(b"cdefEXTRA")
    assert b"".join(rec.body) == b"abcdef"
    assert rec.completed == [True]


def test_counted_body_cut_by_eof_is_an_error() -> None:
    parser, rec = fresh_parser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nab")
    parser.feed(b"cd")
    with pytest.raises(BodyError, match="before the response body was complete"):
        parser.feed_eof()
    assert rec.completed == []


def test_read_until_close_body_is_counted_until_eof() -> None:
    parser, rec = fresh_parser()
    parser.feed(b"HTTP/1.1 200 OK\r\n\r\nfirst ")
    assert parser.direct_body and parser.until_close
    parser.feed(b"second")
    parser.feed_eof()
    assert b"".join(rec.body) == b"first second"
    assert rec.completed == [False] and not parser.direct_body


def test_keep_alive_after_a_counted_body_parses_the_next_response_afresh() -> None:
    parser, rec = fresh_parser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
    parser.feed(b"wxyz")
    parser.expect()
    parser.feed(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    assert [h.status for h in rec.heads] == [200, 201]
    assert b"".join(rec.body) == b"wxyzok"
    assert rec.completed == [True, False]


@pytest.mark.parametrize(
    "framing",
    [b"Transfer-Encoding: chunked\r\n", b"Transfer-Encoding: gzip, chunked\r\n"],
)
def test_chunked_bodies_stay_with_llhttp(framing: bytes) -> None:
    parser, rec = fresh_parser()
    parser.feed(b"HTTP/1.1 200 OK\r\n" + framing + b"\r\n3\r\nabc\r\n")
    assert not parser.direct_body
    parser.feed(b"2\r\nde\r\n0\r\n\r\n")
    assert b"".join(rec.body) == b"abcde" and rec.completed == [True]


@pytest.mark.parametrize("head_request", [False, True])
def test_bytes_fed_after_a_message_llhttp_did_not_finish_are_an_error(head_request: bool) -> None:
    recorder = Recorder()
    parser = ResponseParser(recorder)
    parser.expect(head_request=head_request)
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
    if not head_request:
        parser.feed(b"body")
    assert len(recorder.completed) == 1
    with pytest.raises(BodyError, match="after the response"):
        parser.feed(b"HTTP/1.1 200 OK\r\n")
    assert b"".join(recorder.body) == (b"" if head_request else b"body")
