"""`Link` and `Content-Disposition` parsing, against aiohttp's parsers where both must agree."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from aiohttp import multipart as aiohttp_multipart
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from crawler.http.header_params import parse_content_disposition, parse_links

BASE = URL("http://example.com/docs/page?x=1")


def flat(links: object) -> list[tuple[str, dict[str, object]]]:
    return [(key, dict(value)) for key, value in links.items()]  # type: ignore[attr-defined]


def test_links_are_filed_by_rel_with_their_url_resolved() -> None:
    header = '<https://api.test/items?page=2>; rel="next", </items?page=9>; rel=last'
    links = parse_links([header], BASE)
    assert flat(links) == [
        ("next", {"rel": "next", "url": URL("https://api.test/items?page=2")}),
        ("last", {"rel": "last", "url": URL("http://example.com/items?page=9")}),
    ]
    assert links["next"]["url"] == URL("https://api.test/items?page=2")


def test_a_link_without_rel_is_filed_under_its_target_and_lines_are_joined() -> None:
    links = parse_links(["<other>", '<../up>; rel="up"'], BASE)
    assert flat(links) == [
        ("other", {"url": URL("http://example.com/docs/other")}),
        ("up", {"rel": "up", "url": URL("http://example.com/up")}),
    ]


def test_quoted_parameters_may_hold_commas_and_semicolons() -> None:
    links = parse_links(['</a>; rel="next"; title="one, two; three", </b>; rel=prev'], BASE)
    assert links["next"]["title"] == "one, two; three"
    assert links["prev"]["url"] == URL("http://example.com/b")
    assert parse_links(['</q>; title="say \\"hi\\""; rel=next'], BASE)["next"]["title"] == (
        'say "hi"'
    )


def test_several_relation_types_file_one_link_under_each_in_lower_case() -> None:
    links = parse_links(['</c>; rel="next Last"'], BASE)
    assert list(links) == ["next", "last"]
    assert links["next"] is links["last"]
    assert links["last"]["rel"] == "next Last"


def test_malformed_links_are_skipped_not_raised() -> None:
    canonical = [("canonical", {"rel": "canonical", "url": URL("http://example.com/ok")})]
    # "<unclosed" has no ">" of its own: the link after it is still read.
    header = "garbage, <unclosed; rel=x, </ok>; rel=canonical; =bad; ;; bare"
    # A parameter without a value is allowed (RFC 8288 3): it is there, empty.
    bare = [("canonical", {**canonical[0][1], "bare": ""})]
    assert flat(parse_links([header], BASE)) == bare
    assert flat(parse_links(["garbage, </ok>; rel=canonical; =bad; ;"], BASE)) == canonical
    assert flat(parse_links(["</never-closed; rel=next"], BASE)) == []
    assert flat(parse_links(["", "  ,  "], BASE)) == []


@pytest.mark.parametrize(
    "header",
    [
        'attachment; filename="report.pdf"',
        "attachment; filename=report.pdf",
        "inline",
        "INLINE; FILENAME=x.txt",
        "attachment; filename*=UTF-8''%e2%82%ac%20rates.txt",
        "attachment; filename*=UTF-8''%e2%82%ac%20rates.txt; filename=\"rates.txt\"",
        "attachment; filename*=iso-8859-1'en'%A3%20rates",
        'attachment; filename*0="foo."; filename*1="html"',
        "attachment; filename*0*=UTF-8''%e2%82%ac; filename*1=.txt",
        'form-data; name="field"; filename="a;b.txt"',
        'attachment; filename="quoted \\"name\\".txt"',
    ],
)
def test_content_disposition_as_aiohttp_reads_it(header: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kind, params = aiohttp_multipart.parse_content_disposition(header)
        filename = aiohttp_multipart.content_disposition_filename(params)
    ours = parse_content_disposition(header)
    assert ours is not None
    assert (ours.type, dict(ours.parameters), ours.filename) == (kind, params, filename)


def test_content_disposition_without_a_header_and_with_a_bad_type() -> None:
    assert parse_content_disposition(None) is None
    bad = parse_content_disposition('"attachment"; filename=x')
    assert bad is not None
    assert (bad.type, dict(bad.parameters), bad.filename) == (None, {}, None)


def test_content_disposition_reads_unquoted_values_as_browsers_do() -> None:
    # aiohttp gives up on the whole header here; the file name the server meant is kept,
    # unsafe as it is: a caller must never use it as a path unchecked.
    for header, filename in (
        ("attachment; filename=../../etc/passwd", "../../etc/passwd"),
        ("attachment; filename = a b.txt ; size=3", "a b.txt"),
    ):
        parsed = parse_content_disposition(header)
        assert parsed is not None and parsed.filename == filename


def test_an_unknown_charset_or_bad_bytes_drop_only_that_parameter() -> None:
    for header in (
        "attachment; filename*=bogus''name.txt; filename=fallback.txt",
        "attachment; filename*=UTF-8''%ff%fe.txt; filename=fallback.txt",
    ):
        parsed = parse_content_disposition(header)
        assert parsed is not None
        assert parsed.filename == "fallback.txt"
        assert "filename*" not in parsed.parameters


def test_continuations_are_joined_before_they_are_decoded() -> None:
    # The euro sign's three bytes split over two pieces: decoded piece by piece, it is lost.
    header = "attachment; filename*0*=UTF-8''%e2%82; filename*1*=%ac; filename*2=.txt"
    parsed = parse_content_disposition(header)
    assert parsed is not None and parsed.filename == "\u20ac.txt"
    broken = parse_content_disposition("attachment; filename*0*=UTF-8''%e2%82; filename*1=x")
    assert broken is not None and broken.filename is None


def test_the_first_of_a_repeated_parameter_counts() -> None:
    parsed = parse_content_disposition("attachment; filename=one.txt; filename=two.txt")
    assert parsed is not None and parsed.filename == "one.txt"


@given(st.text(max_size=200))
def test_any_header_text_parses_without_an_exception(text: str) -> None:
    parse_content_disposition(text)
    parse_links([text], BASE)


async def test_a_response_gives_links_disposition_and_host_as_aiohttp_does(httpbin: Any) -> None:
    import aiohttp

    from crawler.http import ClientSession

    params = {
        "Link": '</page/2>; rel="next", <https://other.test/p/9>; rel="last"',
        "Content-Disposition": "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
    }
    url = httpbin.url + "/response-headers"
    async with ClientSession() as ours_session, aiohttp.ClientSession() as theirs_session:
        async with (
            ours_session.get(url, params=params) as ours,
            theirs_session.get(url, params=params) as theirs,
        ):
            assert flat(ours.links) == flat(theirs.links)
            assert ours.links["next"]["url"] == URL(httpbin.url).join(URL("/page/2"))
            assert ours.content_disposition is not None
            assert theirs.content_disposition is not None
            assert ours.content_disposition.type == theirs.content_disposition.type
            assert ours.content_disposition.filename == "résumé.pdf"
            assert ours.content_disposition.filename == theirs.content_disposition.filename
            assert ours.host == theirs.host == URL(httpbin.url).host
        async with ours_session.get(httpbin.url + "/get") as plain:
            assert flat(plain.links) == []
            assert plain.content_disposition is None
