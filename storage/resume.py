"""Resuming a `.part`: its state file, the Range request, and what to do with the answer.

The state file sits beside the `.part` (`<name>.part.json`) and says which URL and which version
of it (ETag, Last-Modified, full length) the bytes belong to. The byte count that matters is the
`.part` file's own size; `bytes_done` in the state is the last checkpoint, for people and logs.

`plan_resume` and `decide` are pure: they take what is known and return what to send or do, so
every case (206 that continues, 206 that does not, 200, 416, a changed validator) is tested
without a socket.
"""

from __future__ import annotations

import enum
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

__all__ = [
    "Action",
    "Decision",
    "ResumePlan",
    "ResumeState",
    "content_coding",
    "decide",
    "header_safe",
    "int_header",
    "is_entity_status",
    "load_state",
    "parse_content_range",
    "plan_resume",
    "remove_state",
    "save_state",
    "state_path_for",
]

STATE_SUFFIX = ".json"
_RANGE_RE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE | re.ASCII)
_UNSATISFIED_RE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.IGNORECASE | re.ASCII)
_DIGITS_RE = re.compile(r"^\s*[0-9]+\s*$")


@dataclass(slots=True)
class ResumeState:
    """What the bytes of a `.part` are: which URL, which version of it, how long in full."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    expected_length: int | None = None
    bytes_done: int = 0
    # A body sent with a Content-Encoding (decoded by the client or passed through) is not
    # continued with Range: its offsets would not count the bytes in the `.part`.
    content_encoding: str | None = None
    updated_at: float = field(default_factory=time.time)

    def validator(self) -> str | None:
        """The If-Range value: a strong ETag, else Last-Modified, else None (cannot resume)."""
        if self.etag and not self.etag.startswith("W/") and header_safe(self.etag):
            return self.etag
        if self.last_modified and header_safe(self.last_modified):
            return self.last_modified
        return None


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """Where to start and what to add to the request."""

    offset: int
    headers: Mapping[str, str]

    @property
    def resuming(self) -> bool:
        return self.offset > 0


class Action(enum.StrEnum):
    WRITE = "write"  # no Range was sent; the body is the whole entity
    APPEND = "append"  # 206 continuing the `.part` exactly
    RESTART = "restart"  # 200 to a Range request: take this body, from byte zero
    ALREADY_WHOLE = "already-whole"  # 416 and the `.part` already has every byte
    FETCH_AGAIN = "fetch-again"  # unusable answer: ask again without Range, from zero
    NOT_A_BODY = "not-a-body"  # any other status: nothing to store from it


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    # The full entity length when the answer says it (Content-Length, Content-Range total).
    total_length: int | None = None
    reason: str = ""


def header_safe(value: str) -> bool:
    """False for text that could split a request head (a tampered state file, a hostile ETag)."""
    return not any(c in value for c in "\r\n\x00")


def is_entity_status(status: int) -> bool:
    """A 2xx that carries the whole representation (200, 203, ...; not 204/205/206)."""
    return 200 <= status < 300 and status not in (204, 205, 206)


def state_path_for(part_path: str | Path) -> Path:
    return Path(os.fspath(part_path) + STATE_SUFFIX)


def load_state(part_path: str | Path) -> ResumeState | None:
    """The state beside `part_path`, or None when missing or unreadable (then: start over)."""
    path = os.fspath(part_path) + STATE_SUFFIX
    if not os.access(path, os.F_OK):
        return None  # the usual case, asked without the cost of a failed open()
    try:
        with open(path, "rb") as file:
            raw = json.loads(file.read())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("url"), str):
        return None
    known = {f.name for f in fields(ResumeState)}
    try:
        state = ResumeState(**{k: v for k, v in raw.items() if k in known})
    except TypeError:
        return None
    # The text fields are checked too, not only the numbers: a hand-edited or foreign state with,
    # say, `"etag": 5` would otherwise fail every later attempt at this URL (`validator()` calls
    # str methods), where a state that does not read must only mean "start over".
    for name in ("etag", "last_modified", "content_encoding"):
        if not isinstance(getattr(state, name), str | None):
            return None
    for name in ("expected_length", "bytes_done"):
        value = getattr(state, name)
        # `type() is int`, as bool is an int subclass and `true` is no length.
        if value is not None and (type(value) is not int or value < 0):
            return None
    return state


def save_state(part_path: str | Path, state: ResumeState) -> None:
    """Write the state atomically (temp file + rename), so a crash leaves the old or the new."""
    state.updated_at = time.time()
    path = state_path_for(part_path)
    temp = path.with_name(path.name + ".tmp")
    try:
        temp.write_text(json.dumps(asdict(state)), "utf-8")
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)  # a full disk, say: leave no half-written temp behind
        raise


def remove_state(part_path: str | Path) -> None:
    try:
        os.unlink(os.fspath(part_path) + STATE_SUFFIX)
    except FileNotFoundError:
        pass


def plan_resume(state: ResumeState | None, part_size: int, url: str) -> ResumePlan:
    """Range + If-Range when the `.part` belongs to `url` and can be continued; else start over."""
    if state is None or state.url != url or part_size <= 0 or state.content_encoding:
        return ResumePlan(0, {})
    validator = state.validator()
    if validator is None:
        return ResumePlan(0, {})
    if state.expected_length is not None and part_size > state.expected_length:
        return ResumePlan(0, {})
    return ResumePlan(part_size, {"Range": f"bytes={part_size}-", "If-Range": validator})


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """`bytes 10-99/1000` → (10, 99, 1000); `/*` total → None; anything else → None."""
    if not value:
        return None
    match = _RANGE_RE.match(value)
    if not match:
        return None
    first, last = int(match.group(1)), int(match.group(2))
    total = None if match.group(3) == "*" else int(match.group(3))
    if last < first or (total is not None and last >= total):
        return None
    return first, last, total


def decide(
    status: int,
    headers: Mapping[str, str],
    offset: int,
    state: ResumeState | None,
) -> Decision:
    """What to do with an answer to a request that asked for `bytes=offset-` (0: no Range)."""
    length = int_header(headers.get("Content-Length"))
    if is_entity_status(status):
        action = Action.RESTART if offset else Action.WRITE
        return Decision(action, length, "server sent the whole body" if offset else "")
    if offset == 0:
        return Decision(Action.NOT_A_BODY, None, f"status {status}")
    if status == 206:
        return _decide_partial(headers, offset, state)
    if status == 416:
        return _decide_unsatisfiable(headers, offset, state)
    return Decision(Action.NOT_A_BODY, None, f"status {status}")


def _decide_partial(headers: Mapping[str, str], offset: int, state: ResumeState | None) -> Decision:
    content_type = headers.get("Content-Type", "")
    if content_type.lower().startswith("multipart/byteranges"):
        return Decision(Action.FETCH_AGAIN, None, "206 with several ranges")
    parsed = parse_content_range(headers.get("Content-Range"))
    if parsed is None:
        return Decision(Action.FETCH_AGAIN, None, "206 without a usable Content-Range")
    first, _last, total = parsed
    if first != offset:
        return Decision(Action.FETCH_AGAIN, None, f"206 starts at {first}, .part has {offset}")
    coding = content_coding(headers)
    if coding is not None:
        # A range of a coded representation counts coded bytes: it continues no `.part` of
        # ours (only identity bodies are resumed), whether the client decodes it or not.
        return Decision(Action.FETCH_AGAIN, None, f"206 with Content-Encoding {coding}")
    if state is not None:
        before = state.expected_length
        if before is not None and total is not None and total != before:
            return Decision(Action.FETCH_AGAIN, None, f"length changed {before} -> {total}")
        if _validator_changed(state, headers):
            return Decision(Action.FETCH_AGAIN, None, "validator changed")
    return Decision(Action.APPEND, total, "")


def _decide_unsatisfiable(
    headers: Mapping[str, str], offset: int, state: ResumeState | None
) -> Decision:
    match = _UNSATISFIED_RE.match(headers.get("Content-Range", ""))
    total = int(match.group(1)) if match else None
    expected = state.expected_length if state is not None else None
    if state is not None and _validator_changed(state, headers):
        # A server that answers Range before If-Range: the same length is no proof that the
        # `.part` is this version.
        return Decision(Action.FETCH_AGAIN, total, "416, and the validator changed")
    if total is not None and total == offset and expected in (None, total):
        return Decision(Action.ALREADY_WHOLE, total, "416: the .part is already whole")
    return Decision(Action.FETCH_AGAIN, total, f"416 with total {total}, .part has {offset}")


def _validator_changed(state: ResumeState, headers: Mapping[str, str]) -> bool:
    etag = headers.get("ETag")
    if state.etag and etag:
        return etag != state.etag
    # Without two ETags to compare, Last-Modified decides: also when the answer dropped the
    # ETag the `.part` was written under (a server that ignores If-Range, say).
    last_modified = headers.get("Last-Modified")
    return bool(state.last_modified and last_modified and last_modified != state.last_modified)


def content_coding(headers: Mapping[str, str]) -> str | None:
    """The Content-Encoding of an answer when it is not identity (every field, joined), else
    None: the bytes as sent are then the representation's own."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        values: list[str] = getall("Content-Encoding", [])
    else:
        values = [headers.get("Content-Encoding") or ""]
    codings = [c.strip() for v in values for c in v.split(",") if c.strip()]
    if all(c.lower() == "identity" for c in codings):
        return None
    return ", ".join(codings)


def int_header(value: str | None) -> int | None:
    """A non-negative integer header value (ASCII digits only), or None."""
    if value is None or not _DIGITS_RE.match(value):
        return None
    return int(value)
