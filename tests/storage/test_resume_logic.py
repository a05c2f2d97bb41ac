"""Resume decisions without a socket: which request to send and what each answer means."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.resume import (
    Action,
    ResumeState,
    decide,
    load_state,
    parse_content_range,
    plan_resume,
    save_state,
    state_path_for,
)

URL = "http://h/f"
STATE = ResumeState(URL, etag='"e1"', last_modified="Tue, 14 Nov 2023 22:13:20 GMT",
                    expected_length=1000)


def test_plan_sends_range_and_strong_etag_as_if_range():
    plan = plan_resume(STATE, 400, URL)
    assert plan.offset == 400
    assert dict(plan.headers) == {"Range": "bytes=400-", "If-Range": '"e1"'}


def test_plan_uses_last_modified_when_etag_is_weak():
    state = ResumeState(URL, etag='W/"e1"', last_modified="Tue, 14 Nov 2023 22:13:20 GMT")
    assert plan_resume(state, 5, URL).headers["If-Range"] == state.last_modified


@pytest.mark.parametrize(
    ("state", "size", "url"),
    [
        (None, 400, URL),
        (STATE, 0, URL),
        (STATE, 400, "http://h/other"),
        (ResumeState(URL, etag='W/"weak"'), 400, URL),
        (ResumeState(URL), 400, URL),
        (ResumeState(URL, etag='"e"', content_encoding="gzip"), 400, URL),
        (STATE, 1001, URL),
        (ResumeState(URL, etag='"e\r\nX-Injected: 1"'), 400, URL),
        (ResumeState(URL, last_modified="Tue\n, 14 Nov"), 400, URL),
    ],
)
def test_plan_starts_over_when_the_part_cannot_be_continued(state, size, url):
    plan = plan_resume(state, size, url)
    assert plan.offset == 0 and not plan.headers


def test_206_continuing_the_part_appends():
    headers = {"Content-Range": "bytes 400-999/1000", "ETag": '"e1"'}
    decision = decide(206, headers, 400, STATE)
    assert decision.action is Action.APPEND and decision.total_length == 1000


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Range": "bytes 0-999/1000"},
        {"Content-Range": "bytes 400-1099/1100"},
        {"Content-Range": "bytes 400-999/1000", "ETag": '"e2"'},
        {"Content-Range": "garbage"},
        {},
        {"Content-Range": "bytes 400-999/1000", "Content-Type": "multipart/byteranges; b=x"},
    ],
)
def test_206_that_does_not_continue_the_part_fetches_again(headers):
    assert decide(206, headers, 400, STATE).action is Action.FETCH_AGAIN


def test_200_to_a_range_request_restarts():
    decision = decide(200, {"Content-Length": "1200"}, 400, STATE)
    assert decision.action is Action.RESTART and decision.total_length == 1200


def test_200_without_range_is_a_plain_write():
    assert decide(200, {}, 0, None).action is Action.WRITE


def test_416_on_a_whole_part_is_already_whole():
    decision = decide(416, {"Content-Range": "bytes */1000"}, 1000, STATE)
    assert decision.action is Action.ALREADY_WHOLE and decision.total_length == 1000


@pytest.mark.parametrize("content_range", ["bytes */2000", "", "bytes */abc"])
def test_416_with_another_length_fetches_again(content_range):
    decision = decide(416, {"Content-Range": content_range}, 1000, STATE)
    assert decision.action is Action.FETCH_AGAIN


@pytest.mark.parametrize("status", [204, 301, 404, 500, 503])
def test_other_statuses_carry_no_body_to_store(status):
    assert decide(status, {}, 0, None).action is Action.NOT_A_BODY
    assert decide(status, {}, 400, STATE).action is Action.NOT_A_BODY


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("bytes 0-0/1", (0, 0, 1)),
        ("bytes 5-9/*", (5, 9, None)),
        ("BYTES 1-2/3", (1, 2, 3)),
        ("bytes 9-5/10", None),
        ("bytes 0-10/10", None),
        ("bytes \u0661-\u0662/\u0663", None),  # non-ASCII digits are not digits here
        (None, None),
    ],
)
def test_parse_content_range(value, parsed):
    assert parse_content_range(value) == parsed


def test_state_round_trips_and_bad_state_reads_as_none(tmp_path: Path):
    part = tmp_path / "f.part"
    save_state(part, STATE)
    loaded = load_state(part)
    assert loaded is not None and (loaded.url, loaded.etag, loaded.expected_length) == (
        URL, '"e1"', 1000)
    for garbage in ("{", "[]", '{"url": 5}', '{"url": "u", "bytes_done": -1}', '{"zzz": 1}'):
        state_path_for(part).write_text(garbage)
        assert load_state(part) is None
    state_path_for(part).unlink()
    assert load_state(part) is None
