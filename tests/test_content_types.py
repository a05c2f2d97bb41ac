"""--accept-type patterns: exact types, families, anything; HTML and untyped bodies always."""

from __future__ import annotations

import pytest

from crawler.content_types import accepts, check_pattern, media_type


def test_exact_types_and_families() -> None:
    accepted = accepts(["application/pdf", "IMAGE/*"])
    assert accepted("application/pdf")
    assert accepted("Application/PDF; qs=1")
    assert accepted("image/png") and accepted("image/svg+xml")
    assert not accepted("application/zip")
    assert not accepted("text/css; charset=utf-8")
    assert not accepted("imagery/png")  # a family is "image/", not any type starting "image"


def test_html_and_a_missing_type_are_always_accepted() -> None:
    accepted = accepts(["application/pdf"])
    assert accepted("text/html; charset=utf-8")
    assert accepted("application/xhtml+xml")
    assert accepted(None) and accepted("")


def test_anything_accepts_everything() -> None:
    assert accepts(["*/*"])("application/x-whatever")


@pytest.mark.parametrize("bad", ["pdf", "application/", "*/pdf", "text/html; charset=x", "a b/c"])
def test_a_bad_pattern_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a media type"):
        check_pattern(bad)


def test_media_type_drops_parameters_and_case() -> None:
    assert media_type("Text/HTML ; charset=UTF-8") == "text/html"
    assert media_type(None) is None and media_type(" ; x=1") is None
