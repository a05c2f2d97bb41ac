"""multipart framing: parsed back with real parsers (werkzeug's form parser, the email package)."""

from __future__ import annotations

import email
import email.policy
import os
from collections.abc import AsyncIterator
from email.message import EmailMessage

import pytest
from werkzeug.datastructures import MultiDict

from crawler.http.multipart import (
    MultipartPayload,
    Part,
    form_data_disposition,
    make_boundary,
    transfer_encoded,
)
from crawler.http.payload import BytesPayload, Payload, make_payload
from tests.support.form_parser import parse_form


async def body_of(payload: Payload) -> bytes:
    return b"".join([chunk async for chunk in payload.chunks()])


def parse_with_werkzeug(body: bytes, content_type: str) -> tuple[MultiDict, MultiDict]:
    return parse_form(body, content_type)


def parse_with_email(body: bytes, content_type: str) -> list[EmailMessage]:
    message = email.message_from_bytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body, policy=email.policy.HTTP
    )
    assert isinstance(message, EmailMessage)
    assert not message.defects
    return list(message.iter_parts())  # type: ignore[arg-type]


def form_part(name: str, body: Payload, filename: str | None = None, **headers: str) -> Part:
    lines = [("Content-Disposition", form_data_disposition(name, filename))]
    lines += [(key.replace("_", "-"), value) for key, value in headers.items()]
    return Part(body, lines)


async def test_parts_parse_back_with_werkzeug() -> None:
    payload = MultipartPayload(
        [
            form_part("field", BytesPayload(b"value")),
            form_part("file", BytesPayload(b"\x00\xff" * 10), "a.bin", Content_Type="image/png"),
        ]
    )
    assert payload.content_type is not None
    form, files = parse_with_werkzeug(await body_of(payload), payload.content_type)
    assert form["field"] == "value"
    assert files["file"].filename == "a.bin"
    assert files["file"].content_type == "image/png"
    assert files["file"].read() == b"\x00\xff" * 10


async def test_size_is_exactly_the_body_length_when_every_part_is_sized() -> None:
    payload = MultipartPayload(
        [form_part("a", BytesPayload(b"1")), form_part("b", BytesPayload(os.urandom(500_000)))]
    )
    assert payload.size == len(await body_of(payload))


async def test_size_is_unknown_when_a_part_is_a_stream() -> None:
    async def generate() -> AsyncIterator[bytes]:
        yield b"streamed"

    payload = MultipartPayload(
        [form_part("a", BytesPayload(b"1")), form_part("s", make_payload(generate()), "s.txt")]
    )
    assert payload.size is None
    assert not payload.replayable
    assert payload.content_type is not None
    _, files = parse_with_werkzeug(await body_of(payload), payload.content_type)
    assert files["s"].read() == b"streamed"


async def test_body_containing_boundary_like_lines_survives() -> None:
    tricky = b"--not-the-boundary\r\n\r\n--\r\n" * 100
    payload = MultipartPayload([form_part("f", BytesPayload(tricky), "t.bin")])
    assert payload.content_type is not None
    _, files = parse_with_werkzeug(await body_of(payload), payload.content_type)
    assert files["f"].read() == tricky


async def test_small_parts_are_gathered_into_few_writes() -> None:
    payload = MultipartPayload([form_part(f"f{i}", BytesPayload(b"v")) for i in range(200)])
    chunks = [chunk async for chunk in payload.chunks()]
    assert len(chunks) == 1


async def test_large_part_chunks_are_not_copied_into_one_buffer() -> None:
    big = os.urandom(3 * 1024 * 1024)
    payload = MultipartPayload([form_part("big", BytesPayload(big), "b.bin")])
    chunks = [chunk async for chunk in payload.chunks()]
    assert max(len(chunk) for chunk in chunks) <= 256 * 1024
    assert len(b"".join(chunks)) == payload.size


def test_boundaries_are_random_and_valid() -> None:
    first, second = make_boundary(), make_boundary()
    assert first != second
    assert len(first) <= 70


def test_custom_boundary_is_used_and_quoted_when_needed() -> None:
    plain = MultipartPayload([], boundary="simple-boundary")
    spaced = MultipartPayload([], boundary="with space")
    assert plain.content_type == "multipart/form-data; boundary=simple-boundary"
    assert spaced.content_type == 'multipart/form-data; boundary="with space"'


@pytest.mark.parametrize("boundary", ["", "x" * 71, "bad\r\nboundary", "ends-in-space "])
def test_invalid_boundary_is_rejected(boundary: str) -> None:
    with pytest.raises(ValueError, match="invalid multipart boundary"):
        MultipartPayload([], boundary=boundary)


async def test_other_subtypes_parse_with_the_email_package() -> None:
    parts = [
        Part(BytesPayload(b"first"), [("Content-Type", "text/plain")]),
        Part(BytesPayload(b"<b>second</b>"), [("Content-Type", "text/html")]),
    ]
    payload = MultipartPayload(parts, subtype="mixed")
    assert payload.content_type is not None
    assert payload.content_type.startswith("multipart/mixed; boundary=")
    parsed = parse_with_email(await body_of(payload), payload.content_type)
    assert [part.get_content_type() for part in parsed] == ["text/plain", "text/html"]
    assert [part.get_payload(decode=True) for part in parsed] == [b"first", b"<b>second</b>"]


def test_part_header_with_crlf_is_rejected() -> None:
    with pytest.raises(ValueError, match="control characters"):
        MultipartPayload([Part(BytesPayload(b""), [("Content-Type", "a\r\nX-Injected: 1")])])


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("plain", 'form-data; name="plain"'),
        ('quo"te', 'form-data; name="quo%22te"'),
        ("line\r\nbreak", 'form-data; name="line%0D%0Abreak"'),
        ("naïve ✓", 'form-data; name="naïve ✓"'),
    ],
)
def test_names_are_escaped_like_browsers_do(name: str, written: str) -> None:
    assert form_data_disposition(name) == written


def test_filename_is_escaped_the_same_way() -> None:
    assert form_data_disposition("f", 'a"b\n.txt') == 'form-data; name="f"; filename="a%22b%0A.txt"'


def test_unquoted_names_refuse_what_would_break_the_header() -> None:
    assert form_data_disposition("a b", quote=False) == 'form-data; name="a b"'
    with pytest.raises(ValueError, match="control characters"):
        form_data_disposition("a\nb", quote=False)
    with pytest.raises(ValueError, match="must not contain"):
        form_data_disposition('a"b', quote=False)


@pytest.mark.parametrize("encoding", ["base64", "quoted-printable"])
async def test_transfer_encodings_decode_back_with_the_email_package(encoding: str) -> None:
    data = os.urandom(100_000) + b"\r\nline = end  \t\n" * 50

    async def generate() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 7777):
            yield data[start : start + 7777]

    for source in (BytesPayload(data), make_payload(generate())):
        body = transfer_encoded(source, encoding)
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Transfer-Encoding", encoding),
        ]
        payload = MultipartPayload([Part(body, headers)], subtype="mixed")
        assert payload.content_type is not None
        encoded = await body_of(payload)
        if payload.size is not None:
            assert payload.size == len(encoded)
        [part] = parse_with_email(encoded, payload.content_type)
        assert part.get_payload(decode=True) == data


def test_identity_transfer_encodings_leave_the_body_alone() -> None:
    body = BytesPayload(b"x")
    assert transfer_encoded(body, "binary") is body
    assert transfer_encoded(body, None) is body


def test_unknown_transfer_encoding_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported content_transfer_encoding 'uuencode'"):
        transfer_encoded(BytesPayload(b"x"), "uuencode")
