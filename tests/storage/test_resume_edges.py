"""Resume against servers that answer oddly: a coded 206, a 416 for another version, a state
file that does not read. Each must end in the right file or a clear error, never a mixed one."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from multidict import CIMultiDict

from storage import DownloadError, Outcome, Store, download, read_records
from storage.resume import ResumeState, content_coding, load_state, save_state, state_path_for
from storage.sink import part_path_for
from tests.storage.conftest import make_session
from tests.storage.origin import Body, Origin, Resource
from tests.storage.scripted import Scripted, answer

MiB = 1 << 20
BODY = random.Random(76).randbytes(640_000)  # gzip makes it longer, not shorter
HALF = len(BODY) // 2
ETAG = '"v1"'


def whole(**extra: str) -> bytes:
    return answer(200, [("ETag", ETAG), *extra.items()], BODY)


def partial(first: int, data: bytes, *headers: tuple[str, str], total: int = len(BODY)) -> bytes:
    content_range = f"bytes {first}-{first + len(data) - 1}/{total}"
    return answer(206, [("ETag", ETAG), ("Content-Range", content_range), *headers], data)


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Callable[[dict[str, str]], bytes]], Scripted]]:
    servers: list[Scripted] = []

    def start(handler: Callable[[dict[str, str]], bytes]) -> Scripted:
        server = Scripted(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


def half_done_part(store: Store, url: str, length: int | None) -> Path:
    """A `.part` holding the first half of BODY, with the state of an interrupted identity
    download (`length` None: its 200 had no Content-Length)."""
    final = store.tree.path_for(url)
    store.tree.ensure_parent(final)
    part = part_path_for(final)
    part.write_bytes(BODY[:HALF])
    save_state(part, ResumeState(url, ETAG, None, length, HALF))
    return final


# A server that serves a precompressed file with `Content-Encoding: gzip` on its ranges: the
# range counts bytes of the gzip stream, not of the identity body in the `.part`. (Its other
# total tells, but only when the `.part`'s full length was known: here it was not.)
_GZIPPED = gzip.compress(BODY)


@pytest.mark.parametrize(
    ("coded", "coding", "decompress"),
    [
        (_GZIPPED, "gzip", True),  # decoded by the client: no gzip stream starts there
        (_GZIPPED, "gzip", False),  # passed through: gzip bytes after identity ones
        (BODY[::-1], "x-custom", True),  # a coding the client does not know, of equal length
    ],
)
async def test_206_with_a_content_encoding_is_fetched_again(
    scripted, store: Store, coded: bytes, coding: str, decompress: bool
):
    def handler(headers: dict[str, str]) -> bytes:
        if "range" not in headers:
            return whole()
        rest = coded[HALF:]
        return partial(HALF, rest, ("Content-Encoding", coding), total=len(coded))

    server = await scripted(handler).start()
    url = server.url("/f")
    final = half_done_part(store, url, None if coding == "gzip" else len(BODY))
    async with make_session(auto_decompress=decompress) as session:
        record = await download(session, url, store)
    assert [h.get("range") for h in server.requests] == [f"bytes={HALF}-", None]
    assert record.outcome is Outcome.STORED and record.resumed_from == 0
    assert f"206 with Content-Encoding {coding}" in record.notes
    assert final.read_bytes() == BODY


async def test_a_part_of_a_coded_body_is_not_resumed_with_identity_bytes(scripted, store: Store):
    # The client passes an unknown coding through: the `.part` holds coded bytes, which the
    # identity rest of a 206 must not be put after.
    coded = BODY[::-1]
    answers = [
        answer(200, [("ETag", ETAG), ("Content-Encoding", "x-custom")], coded)[:-HALF],  # cut
        whole(),
    ]

    def handler(headers: dict[str, str]) -> bytes:
        if "range" in headers:
            first = int(headers["range"].removeprefix("bytes=").rstrip("-"))
            return partial(first, BODY[first:])
        return answers.pop(0)

    server = await scripted(handler).start()
    url = server.url("/f")
    final = store.tree.path_for(url)
    async with make_session() as session:
        with pytest.raises(DownloadError):
            await download(session, url, store)
        assert load_state(part_path_for(final)) is None  # nothing resumable left behind
        record = await download(session, url, store)
    assert [h.get("range") for h in server.requests] == [None, None]
    assert record.outcome is Outcome.STORED and record.resumed_from == 0
    assert final.read_bytes() == BODY


async def test_416_from_a_server_that_skips_if_range_checks_the_validator(
    session, origin: Origin, store: Store
):
    # The `.part` holds every byte of v1; the server has a v2 of the same length now and
    # answers the Range before the If-Range: its 416 is about v2, not about our bytes.
    old, new = Body(MiB, seed=71), Body(MiB, seed=72)
    url = origin.url("/same-length")
    final = store.tree.path_for(url)
    store.tree.ensure_parent(final)
    part_path_for(final).write_bytes(old.bytes())
    save_state(part_path_for(final), ResumeState(url, '"v1"', None, old.size, old.size))
    origin.resources["/same-length"] = Resource(new, etag='"v2"', ignore_if_range=True)
    record = await download(session, url, store)
    assert [r.headers.get("range") for r in origin.requests] == [f"bytes={old.size}-", None]
    assert record.outcome is Outcome.STORED and record.status == 200
    assert "416, and the validator changed" in record.notes
    assert final.read_bytes() == new.bytes()


@pytest.mark.parametrize(
    "fields",
    [
        {"etag": 5},
        {"etag": ["x"]},
        {"etag": None, "last_modified": 7},
        {"content_encoding": 3},
        {"expected_length": True},
        {"expected_length": 1.5},
        {"bytes_done": "x"},
    ],
)
async def test_a_state_file_that_does_not_read_means_starting_over(
    session, origin: Origin, store: Store, fields: dict[str, object]
):
    body = Body(2 * MiB, seed=73)
    origin.resources["/f"] = Resource(body)
    url = origin.url("/f")
    final = store.tree.path_for(url)
    store.tree.ensure_parent(final)
    part = part_path_for(final)
    part.write_bytes(body.bytes()[:MiB])
    state = {"url": url, "etag": '"v1"', "expected_length": body.size, "bytes_done": MiB}
    state_path_for(part).write_text(json.dumps({**state, **fields}))
    assert load_state(part) is None
    # Before, such a state failed this attempt and every later one, the `.part` kept.
    record = await download(session, url, store)
    assert record.outcome is Outcome.STORED and record.resumed_from == 0
    assert final.read_bytes() == body.bytes()
    assert not state_path_for(part).exists()


async def test_a_download_without_resume_leaves_no_state_behind(
    session, origin: Origin, store: Store
):
    body = Body(5000, seed=74)
    origin.resources["/f"] = Resource(body)
    url = origin.url("/f")
    final = store.tree.path_for(url)
    store.tree.ensure_parent(final)
    part = part_path_for(final)
    part.write_bytes(body.bytes()[:100])
    save_state(part, ResumeState(url, '"v1"', None, body.size, 100))
    record = await download(session, url, store, resume=False)
    assert record.outcome is Outcome.STORED and record.resumed_from == 0
    assert not part.exists()
    assert not state_path_for(part).exists()  # it would describe the next `.part` wrongly


async def test_a_url_with_undecodable_bytes_still_gets_its_record(
    session, origin: Origin, out_dir: Path
):
    # A caller of `download` may pass text decoded with surrogateescape (as argv is).
    origin.fallback = Resource(Body(1000, seed=75))
    url = origin.url("/caf" + b"\xe9".decode("utf-8", "surrogateescape"))
    with Store(out_dir, writer_id="t") as store:
        record = await download(session, url, store)
        assert record.outcome is Outcome.STORED
    assert [r.url for r in read_records(out_dir)] == [origin.url("/caf\\xe9")]


async def test_206_without_the_etag_but_a_new_last_modified_is_fetched_again(
    session, origin: Origin, store: Store
):
    # The `.part` was written under ETag v1 and a Last-Modified; the file changed, and the
    # server now sends no ETag and ignores If-Range: its new Last-Modified is what tells.
    old, new = Body(2 * MiB, seed=77), Body(2 * MiB, seed=78)
    origin.resources["/lm"] = Resource(old, drop_after=[MiB])
    url = origin.url("/lm")
    with pytest.raises(DownloadError):
        await download(session, url, store)
    origin.resources["/lm"] = Resource(
        new, etag=None, last_modified="Wed, 15 Nov 2023 08:00:00 GMT", ignore_if_range=True
    )
    record = await download(session, url, store)
    assert [r.headers.get("range") is None for r in origin.requests[-2:]] == [False, True]
    assert "validator changed" in record.notes
    assert store.absolute(record.path).read_bytes() == new.bytes()


@pytest.mark.parametrize(
    ("values", "coding"),
    [
        ([], None),
        ([""], None),
        (["identity"], None),
        (["Identity, identity"], None),
        (["gzip"], "gzip"),
        (["identity, br"], "identity, br"),
        (["identity", "gzip"], "identity, gzip"),  # two fields: the last one counts too
    ],
)
def test_content_coding_of_an_answer(values: list[str], coding: str | None):
    headers = CIMultiDict(("Content-Encoding", value) for value in values)
    assert content_coding(headers) == coding
    if len(values) == 1:
        assert content_coding({"Content-Encoding": values[0]}) == coding
