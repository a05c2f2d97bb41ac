"""FormData: urlencoded or multipart by content, fields and files as browsers send them."""

from __future__ import annotations

import email
import email.policy
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from multidict import MultiDict
from werkzeug.datastructures import MultiDict as WerkzeugMultiDict

from crawler.http.formdata import FormData
from crawler.http.payload import Payload, make_payload
from tests.support.form_parser import parse_form


async def body_of(payload: Payload) -> bytes:
    return b"".join([chunk async for chunk in payload.chunks()])


async def parse(form: FormData) -> tuple[WerkzeugMultiDict, WerkzeugMultiDict]:
    """What a Flask/werkzeug server (httpbin's stack) makes of the body."""
    payload = form()
    body = await body_of(payload)
    assert payload.size is None or payload.size == len(body)
    assert payload.content_type is not None
    return parse_form(body, payload.content_type)


async def test_text_fields_are_urlencoded() -> None:
    form = FormData({"key1": "value1", "key2": "value 2"})
    payload = form()
    assert not form.is_multipart
    assert payload.content_type == "application/x-www-form-urlencoded"
    assert parse_qsl((await body_of(payload)).decode()) == [("key1", "value1"), ("key2", "value 2")]


async def test_repeated_names_and_list_values_keep_every_value() -> None:
    form = FormData([("a", "1"), ("a", "2")])
    form.add_field("b", ["x", "y"])
    fields, _ = await parse(form)
    assert fields.getlist("a") == ["1", "2"]
    assert fields.getlist("b") == ["x", "y"]


async def test_multidict_fields_are_all_added() -> None:
    form = FormData(MultiDict([("k", "1"), ("k", "2")]))
    assert len(form) == 2


async def test_urlencoded_with_another_charset_says_so() -> None:
    form = FormData({"name": "café"}, charset="latin-1")
    payload = form()
    assert payload.content_type == "application/x-www-form-urlencoded; charset=latin-1"
    assert await body_of(payload) == b"name=caf%E9"


async def test_guide_example_file_with_filename_and_content_type(tmp_path: Path) -> None:
    path = tmp_path / "local-name.bin"
    content = os.urandom(50_000)
    path.write_bytes(content)
    form = FormData()
    with path.open("rb") as file:
        form.add_field("file", file, filename="report.xls", content_type="application/vnd.ms-excel")
        assert form.is_multipart
        _, files = await parse(form)
    assert files["file"].filename == "report.xls"
    assert files["file"].content_type == "application/vnd.ms-excel"
    assert files["file"].read() == content


async def test_dict_with_an_open_file_names_it_after_the_file(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_bytes(b"a,b\n1,2\n")
    with path.open("rb") as file:
        fields, files = await parse(FormData({"file": file, "comment": "numbers"}))
    assert fields["comment"] == "numbers"
    assert files["file"].filename == "report.csv"
    assert files["file"].content_type == "text/csv"
    assert files["file"].read() == b"a,b\n1,2\n"


async def test_unnamed_file_object_gets_the_field_name_as_filename() -> None:
    _, files = await parse(FormData({"upload": io.BytesIO(b"bytes")}))
    assert files["upload"].filename == "upload"
    assert files["upload"].content_type == "application/octet-stream"


async def test_add_fields_accepts_bare_files_named_after_them(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(b"\x89PNG")
    form = FormData()
    with path.open("rb") as file:
        form.add_fields(file, ("note", "hi"), {"other": "x"})
        fields, files = await parse(form)
    assert files["photo.png"].content_type == "image/png"
    assert fields["note"] == "hi" and fields["other"] == "x"


async def test_a_filename_alone_makes_a_text_value_a_file() -> None:
    form = FormData()
    form.add_field("doc", "plain text", filename="doc.txt")
    _, files = await parse(form)
    assert files["doc"].filename == "doc.txt"
    assert files["doc"].content_type == "text/plain"
    assert files["doc"].read() == b"plain text"


async def test_a_content_type_alone_makes_it_multipart() -> None:
    form = FormData()
    form.add_field("meta", '{"a": 1}', content_type="application/json")
    assert form.is_multipart
    payload = form()
    body = await body_of(payload)
    assert b"Content-Type: application/json\r\n" in body
    fields, _ = await parse(form)
    assert fields["meta"] == '{"a": 1}'


async def test_plain_multipart_fields_carry_no_content_type_like_browsers() -> None:
    form = FormData(default_to_multipart=True)
    form.add_field("plain", "value")
    body = await body_of(form())
    assert b"Content-Type" not in body
    fields, _ = await parse(form)
    assert fields["plain"] == "value"


@pytest.mark.parametrize("name", ['with "quotes"', "new\r\nline", "ünïcödé ✓", "semi;colon=x"])
async def test_odd_names_and_filenames_round_trip_through_a_real_parser(name: str) -> None:
    form = FormData()
    form.add_field(name, "value")
    form.add_field("file", b"data", filename=name + ".txt")
    fields, files = await parse(form)
    # Browsers percent-encode only '"', CR and LF; werkzeug decodes those back.
    expected = name.replace("\r", "%0D").replace("\n", "%0A") if "\r" in name else name
    assert fields[expected] == "value"
    assert files["file"].filename == expected + ".txt"


async def test_a_quoted_name_is_never_able_to_inject_a_header() -> None:
    form = FormData(default_to_multipart=True)
    form.add_field('x"\r\nContent-Type: evil/type\r\n\r\n', "value")
    body = await body_of(form())
    assert b"evil/type\r\n" not in body
    assert body.count(b"\r\nContent-Type") == 0


async def test_quote_fields_false_refuses_names_that_break_the_header() -> None:
    form = FormData(quote_fields=False, default_to_multipart=True)
    form.add_field("fine name", "v")
    fields, _ = await parse(form)
    assert fields["fine name"] == "v"
    form.add_field('bad"name', "v")
    with pytest.raises(ValueError, match="quote_fields=False"):
        form()


async def test_multipart_text_in_another_charset_names_it() -> None:
    form = FormData(charset="latin-1", default_to_multipart=True)
    form.add_field("name", "café")
    body = await body_of(form())
    assert b"Content-Type: text/plain; charset=latin-1\r\n" in body
    assert b"caf\xe9" in body


async def test_bytes_value_is_a_plain_field_unless_given_a_filename() -> None:
    form = FormData()
    form.add_field("raw", b"\x00\x01")
    assert not form.is_multipart
    assert await body_of(form()) == b"raw=%00%01"
    form.add_field("blob", b"\xff", filename="blob.bin")
    _, files = await parse(form)
    assert files["blob"].read() == b"\xff"


async def test_numbers_become_text_in_multipart_too() -> None:
    form = FormData(default_to_multipart=True)
    form.add_field("n", 7)
    fields, _ = await parse(form)
    assert fields["n"] == "7"


async def test_async_generator_field_makes_a_chunked_one_shot_form() -> None:
    async def generate() -> AsyncIterator[bytes]:
        yield b"part one, "
        yield b"part two"

    form = FormData()
    form.add_field("stream", generate(), filename="s.bin")
    payload = form()
    assert payload.size is None
    assert not payload.replayable
    _, files = await parse(form)
    assert files["stream"].read() == b"part one, part two"


async def test_form_with_seekable_files_is_replayable_and_sized(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"file body")
    form = FormData()
    with path.open("rb") as file:
        form.add_field("f", file)
        form.add_field("t", "text")
        payload = form()
        assert payload.replayable
        first = await body_of(payload)
        second = await body_of(payload)
    assert first == second
    assert payload.size == len(first)


async def test_calling_the_form_again_resends_files_from_their_start(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"again")
    form = FormData()
    with path.open("rb") as file:
        form.add_field("f", file)
        _, first = await parse(form)
        _, second = await parse(form)
    assert first["f"].read() == second["f"].read() == b"again"


async def test_base64_transfer_encoding_decodes_with_the_email_package() -> None:
    data = os.urandom(10_000)
    form = FormData()
    form.add_field("f", data, filename="d.bin", content_transfer_encoding="base64")
    payload = form()
    assert payload.content_type is not None
    body = await body_of(payload)
    assert payload.size == len(body)
    message = email.message_from_bytes(
        b"Content-Type: " + payload.content_type.encode() + b"\r\n\r\n" + body,
        policy=email.policy.HTTP,
    )
    [part] = list(message.iter_parts())  # type: ignore[attr-defined]
    assert part["Content-Transfer-Encoding"] == "base64"
    assert part.get_payload(decode=True) == data


def test_make_payload_accepts_formdata() -> None:
    form = FormData({"a": "b"})
    assert make_payload(form).content_type == "application/x-www-form-urlencoded"


def test_field_name_must_be_str() -> None:
    with pytest.raises(TypeError, match="name must be str"):
        FormData().add_field(1, "x")  # type: ignore[arg-type]


def test_filename_must_be_str() -> None:
    with pytest.raises(TypeError, match="filename must be str"):
        FormData().add_field("f", b"x", filename=b"name")  # type: ignore[arg-type]


def test_content_type_with_crlf_is_rejected() -> None:
    with pytest.raises(ValueError, match="control characters"):
        FormData().add_field("f", "x", content_type="text/plain\r\nX-Evil: 1")


def test_unknown_transfer_encoding_is_rejected_when_added() -> None:
    with pytest.raises(ValueError, match="content_transfer_encoding"):
        FormData().add_field("f", "x", content_transfer_encoding="rot13")


def test_unknown_charset_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown form charset"):
        FormData(charset="no-such-charset")


def test_add_fields_rejects_what_it_cannot_name() -> None:
    with pytest.raises(TypeError, match="use add_field"):
        FormData().add_fields("just a string")


def test_text_mode_file_field_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("x")
    with path.open("r") as file, pytest.raises(TypeError, match="binary mode"):
        FormData({"f": file})


def test_repr_names_kind_and_fields() -> None:
    assert repr(FormData({"a": "1"})) == "<FormData urlencoded ['a']>"
