"""download() against a real local origin: streaming, resume, validators, errors."""

from __future__ import annotations

import asyncio
import hashlib
import random
from pathlib import Path

import pytest

from crawler.http import _splice
from storage import DownloadError, Outcome, Store, download, fetch_page, read_records
from storage.fetch import DRAIN_REFUSED_BYTES, SMALL_BODY_BYTES
from storage.resume import load_state, state_path_for
from storage.sink import part_path_for
from tests.storage.origin import Body, Origin, Resource
from tests.support.binaries import require_feature

MiB = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def part_size(store: Store, url: str) -> int:
    return part_path_for(store.tree.path_for(url)).stat().st_size


def only_part_left(path: Path) -> bool:
    return not path.exists() and part_path_for(path).exists()


async def test_body_is_stored_whole_with_size_and_sha256(session, origin: Origin, store: Store):
    body = Body(3 * MiB + 17, seed=1)
    origin.resources["/f.bin"] = Resource(body)
    record = await download(session, origin.url("/f.bin"), store)
    assert record.outcome is Outcome.STORED
    path = store.absolute(record.path)
    assert path == store.tree.path_for(origin.url("/f.bin"))
    assert sha256_file(path) == body.sha256() == record.sha256
    assert record.size == body.size == record.received
    assert not part_path_for(path).exists()
    assert not state_path_for(part_path_for(path)).exists()


async def test_dropped_connection_leaves_part_then_resume_is_byte_identical(
    session, origin: Origin, store: Store
):
    body = Body(8 * MiB + 3, seed=2)
    drop = random.Random(7).randrange(1, body.size - 1)
    origin.resources["/big"] = Resource(body, drop_after=[drop])
    url = origin.url("/big")
    final = store.tree.path_for(url)
    with pytest.raises(DownloadError) as failed:
        await download(session, url, store)
    assert failed.value.record.outcome is Outcome.FAILED
    assert only_part_left(final)
    # The client may hold back the last partial chunk when the connection breaks.
    kept = part_path_for(final).stat().st_size
    assert 0 < kept <= drop
    state = load_state(part_path_for(final))
    assert state is not None and state.etag == '"v1"' and state.expected_length == body.size

    record = await download(session, url, store)
    assert record.outcome is Outcome.STORED
    assert record.resumed_from == kept
    assert record.received == body.size - kept
    assert origin.requests[-1].headers["range"] == f"bytes={kept}-"
    assert origin.requests[-1].headers["if-range"] == '"v1"'
    assert sha256_file(final) == body.sha256() == record.sha256


async def test_changed_etag_between_attempts_restarts_from_zero(
    session, origin: Origin, store: Store
):
    first = Body(2 * MiB, seed=3)
    origin.resources["/v"] = Resource(first, drop_after=[MiB])
    url = origin.url("/v")
    with pytest.raises(DownloadError):
        await download(session, url, store)
    second = Body(2 * MiB + 5, seed=4)
    origin.resources["/v"] = Resource(second, etag='"v2"')
    record = await download(session, url, store)
    assert origin.requests[-1].headers["if-range"] == '"v1"'
    assert record.status == 200 and record.resumed_from == 0
    assert sha256_file(store.absolute(record.path)) == second.sha256()


async def test_server_ignoring_if_range_with_new_etag_is_fetched_again(
    session, origin: Origin, store: Store
):
    origin.resources["/w"] = Resource(Body(2 * MiB, seed=5), drop_after=[MiB + 1000])
    url = origin.url("/w")
    with pytest.raises(DownloadError):
        await download(session, url, store)
    kept = part_size(store, url)
    fresh = Body(2 * MiB, seed=6)
    origin.resources["/w"] = Resource(fresh, etag='"v2"', ignore_if_range=True)
    record = await download(session, url, store)
    assert [r.headers.get("range") for r in origin.requests[-2:]] == [f"bytes={kept}-", None]
    assert "validator changed" in record.notes
    assert sha256_file(store.absolute(record.path)) == fresh.sha256()


async def test_416_on_a_whole_part_completes_without_a_body(session, origin: Origin, store: Store):
    body = Body(MiB, seed=7)
    origin.resources["/whole"] = Resource(body, drop_after=[body.size])
    url = origin.url("/whole")
    # The server closes right after the last byte: treat the `.part` as interrupted anyway.
    final = store.tree.path_for(url)
    store.tree.ensure_parent(final)
    part_path_for(final).write_bytes(body.bytes())
    from storage.resume import ResumeState, save_state

    save_state(part_path_for(final), ResumeState(url, '"v1"', None, body.size, body.size))
    record = await download(session, url, store)
    assert record.status == 416
    assert record.outcome is Outcome.STORED and record.received == 0
    assert record.resumed_from == body.size
    assert sha256_file(final) == body.sha256()


async def test_416_with_another_length_restarts(session, origin: Origin, store: Store):
    body = Body(MiB, seed=8)
    origin.resources["/short"] = Resource(body)
    url = origin.url("/short")
    final = store.tree.path_for(url)
    store.tree.ensure_parent(final)
    part_path_for(final).write_bytes(b"x" * (body.size + 10))
    from storage.resume import ResumeState, save_state

    save_state(part_path_for(final), ResumeState(url, '"v1"', None, None, body.size + 10))
    record = await download(session, url, store)
    assert [r.headers.get("range") for r in origin.requests] == [f"bytes={body.size + 10}-", None]
    assert record.outcome is Outcome.STORED
    assert sha256_file(final) == body.sha256()


async def test_server_ignoring_range_restarts_cleanly(session, origin: Origin, store: Store):
    body = Body(4 * MiB, seed=9)
    origin.resources["/norange"] = Resource(body, drop_after=[MiB + 1])
    url = origin.url("/norange")
    with pytest.raises(DownloadError):
        await download(session, url, store)
    kept = part_size(store, url)
    origin.resources["/norange"].honour_range = False
    record = await download(session, url, store)
    assert origin.requests[-1].headers["range"] == f"bytes={kept}-"
    assert record.status == 200 and record.resumed_from == 0
    assert record.received == body.size
    assert sha256_file(store.absolute(record.path)) == body.sha256()


async def test_part_without_validators_is_not_resumed(session, origin: Origin, store: Store):
    body = Body(MiB, seed=10)
    origin.resources["/plain"] = Resource(body, etag=None, last_modified=None, drop_after=[500])
    url = origin.url("/plain")
    with pytest.raises(DownloadError):
        await download(session, url, store)
    assert not part_path_for(store.tree.path_for(url)).exists()
    record = await download(session, url, store)
    assert "range" not in origin.requests[-1].headers
    assert record.sha256 == body.sha256()


async def test_last_modified_is_the_validator_without_etag(session, origin: Origin, store: Store):
    body = Body(2 * MiB, seed=11)
    origin.resources["/lm"] = Resource(body, etag=None, drop_after=[MiB + 12345])
    url = origin.url("/lm")
    with pytest.raises(DownloadError):
        await download(session, url, store)
    kept = part_size(store, url)
    record = await download(session, url, store)
    assert origin.requests[-1].headers["if-range"] == origin.resources["/lm"].last_modified
    assert record.resumed_from == kept > 0 and record.sha256 == body.sha256()


async def test_expected_sha256_mismatch_fails_and_drops_the_part(
    session, origin: Origin, store: Store
):
    origin.resources["/d"] = Resource(Body(1000, seed=12))
    url = origin.url("/d")
    with pytest.raises(DownloadError) as failed:
        await download(session, url, store, expected_sha256="0" * 64)
    assert "DigestMismatchError" in failed.value.record.error
    final = store.tree.path_for(url)
    assert not final.exists() and not part_path_for(final).exists()


async def test_expected_sha256_match_is_accepted(session, origin: Origin, store: Store):
    body = Body(1000, seed=12)
    origin.resources["/d"] = Resource(body)
    record = await download(session, origin.url("/d"), store, expected_sha256=body.sha256())
    assert record.outcome is Outcome.STORED


async def test_conditional_refetch_304_keeps_file_and_records_it(
    session, origin: Origin, store: Store
):
    body = Body(4096, seed=13)
    origin.resources["/c"] = Resource(body)
    url = origin.url("/c")
    first = await download(session, url, store)
    before = store.absolute(first.path).stat().st_mtime_ns
    second = await download(session, url, store)
    assert origin.requests[-1].headers["if-none-match"] == '"v1"'
    assert origin.requests[-1].headers["if-modified-since"] == origin.resources["/c"].last_modified
    assert second.status == 304 and second.outcome is Outcome.NOT_MODIFIED
    assert second.path == first.path and second.sha256 == first.sha256
    assert store.absolute(first.path).stat().st_mtime_ns == before
    assert not part_path_for(store.absolute(first.path)).exists()


async def test_conditional_refetch_with_new_content_replaces_file(
    session, origin: Origin, store: Store
):
    origin.resources["/c"] = Resource(Body(4096, seed=14))
    url = origin.url("/c")
    await download(session, url, store)
    newer = Body(5000, seed=15)
    origin.resources["/c"] = Resource(newer, etag='"v2"')
    record = await download(session, url, store)
    assert record.status == 200 and record.outcome is Outcome.STORED
    assert sha256_file(store.absolute(record.path)) == newer.sha256()


async def test_missing_stored_file_is_fetched_unconditionally(
    session, origin: Origin, store: Store
):
    origin.resources["/c"] = Resource(Body(4096, seed=16))
    url = origin.url("/c")
    first = await download(session, url, store)
    store.absolute(first.path).unlink()
    second = await download(session, url, store)
    assert "if-none-match" not in origin.requests[-1].headers
    assert second.outcome is Outcome.STORED and store.absolute(second.path).exists()


async def test_error_status_stores_nothing(session, origin: Origin, store: Store):
    origin.resources["/gone"] = Resource(Body(10), status=503, extra_headers=[("Retry-After", "7")])
    record = await download(session, origin.url("/gone"), store)
    assert record.outcome is Outcome.HTTP_ERROR and record.status == 503
    assert record.header("retry-after") == "7"
    final = store.tree.path_for(origin.url("/gone"))
    assert not final.exists() and not part_path_for(final).exists()


async def test_error_status_during_resume_keeps_the_part(session, origin: Origin, store: Store):
    body = Body(MiB, seed=17)
    origin.resources["/r"] = Resource(body, drop_after=[MiB // 2 + 4000])
    url = origin.url("/r")
    with pytest.raises(DownloadError):
        await download(session, url, store)
    kept = part_size(store, url)
    origin.resources["/r"].status = 503
    record = await download(session, url, store)
    assert record.outcome is Outcome.HTTP_ERROR
    assert part_size(store, url) == kept > 0
    origin.resources["/r"].status = 200
    record = await download(session, url, store)
    assert record.resumed_from == kept and record.sha256 == body.sha256()


async def test_redirect_history_and_cookies_are_recorded(session, origin: Origin, store: Store):
    origin.redirects["/old"] = "/new"
    origin.resources["/new"] = Resource(
        Body(100, seed=18), extra_headers=[("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2")]
    )
    record = await download(session, origin.url("/old"), store)
    assert record.final_url == origin.url("/new")
    assert [(h.url, h.status, h.location) for h in record.redirects] == [
        (origin.url("/old"), 302, "/new")
    ]
    assert record.set_cookies == ["a=1; Path=/", "b=2"]
    # Stored under the URL that was asked for (known before the request, so resumable).
    assert store.absolute(record.path) == store.tree.path_for(origin.url("/old"))


async def test_declared_length_over_max_size_is_not_read(session, origin: Origin, store: Store):
    origin.resources["/huge"] = Resource(Body(2 * MiB, seed=19))
    record = await download(session, origin.url("/huge"), store, max_size=MiB)
    assert record.outcome is Outcome.TOO_LARGE and record.received == 0
    final = store.tree.path_for(origin.url("/huge"))
    assert not final.exists() and not part_path_for(final).exists()


async def test_unknown_length_over_max_size_is_cut_and_left_as_part(
    session, origin: Origin, store: Store
):
    body = Body(2 * MiB, seed=20)
    origin.resources["/stream"] = Resource(body, chunked=True)
    record = await download(session, origin.url("/stream"), store, max_size=MiB + 7)
    assert record.outcome is Outcome.TOO_LARGE
    final = store.tree.path_for(origin.url("/stream"))
    assert not final.exists()
    assert part_path_for(final).read_bytes() == body.bytes()[: MiB + 7]
    assert record.path.endswith(".part") and record.size == MiB + 7


async def test_chunked_body_without_length_is_stored(session, origin: Origin, store: Store):
    body = Body(3 * MiB + 1, seed=21)
    origin.resources["/chunked"] = Resource(body, chunked=True)
    record = await download(session, origin.url("/chunked"), store)
    assert record.outcome is Outcome.STORED and record.sha256 == body.sha256()


async def test_close_delimited_body_cut_short_is_not_marked_complete(
    session, origin: Origin, store: Store
):
    # No Content-Length and no chunking: the body ends when the server closes. A drop is
    # indistinguishable from the end, so the sha256 the caller knows is what catches it.
    body = Body(MiB, seed=22)
    origin.resources["/eof"] = Resource(body, send_length=False, drop_after=[1000])
    with pytest.raises(DownloadError):
        await download(session, origin.url("/eof"), store, expected_sha256=body.sha256())
    assert not store.tree.path_for(origin.url("/eof")).exists()


async def test_gzip_body_is_stored_decoded_and_not_resumable(session, origin: Origin, store: Store):
    body = Body(300_000, seed=23)
    origin.resources["/gz"] = Resource(body, gzip_body=True)
    record = await download(session, origin.url("/gz"), store)
    assert record.outcome is Outcome.STORED and record.sha256 == body.sha256()


async def test_same_path_downloaded_twice_at_once_fails_one(session, origin: Origin, store: Store):
    body = Body(16 * MiB, seed=24)
    origin.resources["/twice"] = Resource(body)
    url = origin.url("/twice")
    results = await asyncio.gather(
        download(session, url, store), download(session, url, store), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, Exception)]
    stored = [r for r in results if not isinstance(r, Exception)]
    assert len(errors) == 1 and "PathBusyError" in str(errors[0].record.error)
    assert stored[0].sha256 == body.sha256()
    assert sha256_file(store.tree.path_for(url)) == body.sha256()


@pytest.mark.parametrize("spliced", [True, False], ids=["spliced", "read"])
async def test_cancelled_download_leaves_a_resumable_part(
    session, origin: Origin, store: Store, monkeypatch, spliced: bool
):
    if not spliced:
        monkeypatch.setattr("storage.fetch.SPLICE_MIN_BYTES", 1 << 62)
    body = Body(32 * MiB, seed=25)
    origin.resources["/slow"] = Resource(body)
    url = origin.url("/slow")
    reached = asyncio.Event()

    def progress(done: int, total: int | None) -> None:
        if done >= 4 * MiB:
            reached.set()

    task = asyncio.create_task(download(session, url, store, progress=progress))
    await reached.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    final = store.tree.path_for(url)
    assert only_part_left(final)
    record = await download(session, url, store)
    assert record.resumed_from > 0 and record.sha256 == body.sha256()


async def test_connection_refused_is_a_download_error_with_a_record(store: Store, session):
    from tests.support.ports import free_port

    url = f"http://127.0.0.1:{free_port()}/x"
    with pytest.raises(DownloadError) as failed:
        await download(session, url, store)
    assert failed.value.__cause__ is not None
    assert failed.value.record.status is None
    records = list(read_records(store.out_dir))
    assert [r.outcome for r in records] == [Outcome.FAILED]


async def test_every_fetch_leaves_exactly_one_record(session, origin: Origin, out_dir: Path):
    origin.resources["/a"] = Resource(Body(10, seed=26))
    with Store(out_dir, writer_id="w1") as store:
        await download(session, origin.url("/a"), store)
        await download(session, origin.url("/a"), store)
        await download(session, origin.url("/missing"), store)
    outcomes = [r.outcome for r in read_records(out_dir)]
    assert outcomes == [Outcome.STORED, Outcome.NOT_MODIFIED, Outcome.HTTP_ERROR]


@pytest.mark.parametrize(
    "path",
    ["/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2f..%2fescape", "/a/%00/b", "/CON", "/x.part"],
)
async def test_hostile_url_stays_inside_files(session, origin: Origin, store: Store, path: str):
    origin.fallback = Resource(Body(10, seed=27))
    record = await download(session, origin.url(path), store)
    assert record.outcome is Outcome.STORED
    stored = store.absolute(record.path).resolve()
    assert stored.is_relative_to(store.tree.root)
    assert not stored.name.endswith(".part")


# --- the in-place path: our client's readinto fills the sink's own buffers ---


@pytest.fixture
def readinto_calls(monkeypatch) -> list[int]:
    """Counts StreamReader.readinto calls, so a test can tell the in-place path was taken.
    Splicing is turned off: these tests are about the path a TLS or encoded body takes (see
    test_splice_download.py for the spliced one)."""
    from crawler.http.streams import StreamReader

    monkeypatch.setattr("storage.fetch.SPLICE_MIN_BYTES", 1 << 62)

    calls: list[int] = []
    real = StreamReader.readinto

    async def counting(self, buffer):  # type: ignore[no-untyped-def]
        count = await real(self, buffer)
        calls.append(count)
        return count

    monkeypatch.setattr(StreamReader, "readinto", counting)
    return calls


async def test_large_body_goes_in_place_into_the_sink_byte_exact(
    session, origin: Origin, store: Store, readinto_calls: list[int]
):
    body = Body(24 * MiB + 5, seed=40)
    origin.resources["/big"] = Resource(body)
    record = await download(session, origin.url("/big"), store)
    assert record.outcome is Outcome.STORED
    assert sha256_file(store.absolute(record.path)) == body.sha256() == record.sha256
    assert sum(readinto_calls) == body.size and readinto_calls[-1] == 0
    stats = session.connector.stats()
    assert (stats.acquired, stats.opening, stats.waiters) == (0, 0, 0)


@pytest.mark.parametrize("path", ["read", "spliced"])
async def test_reset_mid_body_leaves_a_part_frees_the_pool_and_resumes_with_range(
    session, origin: Origin, store: Store, request: pytest.FixtureRequest, path: str
):
    if path == "spliced":
        require_feature(_splice.SPLICE_AVAILABLE, "splice(2) and eventfd are Linux-only")
    # Calls of the path under test: readinto() counts (splicing off), or kernel moves.
    taken: list[int] = request.getfixturevalue(
        "readinto_calls" if path == "read" else "kernel_moved"
    )
    body = Body(16 * MiB + 11, seed=41)
    drop = 9 * MiB + 12345
    origin.resources["/cut"] = Resource(body, drop_after=[drop])
    url = origin.url("/cut")
    final = store.tree.path_for(url)
    with pytest.raises(DownloadError) as failed:
        await download(session, url, store)
    assert failed.value.record.outcome is Outcome.FAILED
    assert only_part_left(final)  # never a complete-looking file
    kept = part_path_for(final).stat().st_size
    assert 0 < kept <= drop
    assert part_path_for(final).read_bytes() == body.bytes()[:kept]
    stats = session.connector.stats()
    assert (stats.acquired, stats.opening, stats.waiters) == (0, 0, 0)
    first_attempt = len(taken)
    assert first_attempt

    record = await download(session, url, store)
    assert origin.requests[-1].headers["range"] == f"bytes={kept}-"
    assert record.outcome is Outcome.STORED and record.resumed_from == kept
    assert sha256_file(final) == body.sha256() == record.sha256
    assert len(taken) > first_attempt  # the resumed part took the same path
    stats = session.connector.stats()
    assert (stats.acquired, stats.opening, stats.waiters) == (0, 0, 0)


async def test_read_until_close_body_goes_in_place(
    session, origin: Origin, store: Store, readinto_calls: list[int]
):
    body = Body(5 * MiB + 3, seed=42)
    origin.resources["/eof"] = Resource(body, send_length=False)
    record = await download(session, origin.url("/eof"), store, expected_sha256=body.sha256())
    assert record.outcome is Outcome.STORED and record.size == body.size
    assert sum(readinto_calls) == body.size


async def test_close_delimited_body_over_max_size_is_cut_exactly_in_place(
    session, origin: Origin, store: Store
):
    # No length to refuse up front: the cut happens while reading in place, to the byte.
    body = Body(3 * MiB, seed=43)
    origin.resources["/long"] = Resource(body, send_length=False)
    record = await download(session, origin.url("/long"), store, max_size=2 * MiB + 1)
    assert record.outcome is Outcome.TOO_LARGE and record.size == 2 * MiB + 1
    part = part_path_for(store.tree.path_for(origin.url("/long")))
    assert part.read_bytes() == body.bytes()[: 2 * MiB + 1]


async def test_a_session_without_readinto_streams_chunks_instead(origin: Origin, store: Store):
    import aiohttp  # a test peer with the same client API (no readinto on its streams)

    body = Body(6 * MiB + 9, seed=44)
    origin.resources["/peer"] = Resource(body)
    async with aiohttp.ClientSession() as peer:
        record = await download(peer, origin.url("/peer"), store)
    assert record.outcome is Outcome.STORED
    assert sha256_file(store.absolute(record.path)) == body.sha256() == record.sha256


# --- small bodies: read whole, written at once, handed to the crawler ---------------------------


async def test_small_page_is_stored_and_its_bytes_returned(session, origin: Origin, store: Store):
    body = Body(6000, seed=50)
    origin.resources["/page.html"] = Resource(body)
    record, data = await fetch_page(session, origin.url("/page.html"), store)
    assert record.outcome is Outcome.STORED and record.size == record.received == body.size
    assert data == body.bytes()
    path = store.absolute(record.path)
    assert path.read_bytes() == data and record.sha256 == body.sha256()
    assert not part_path_for(path).exists()
    assert not state_path_for(part_path_for(path)).exists()
    assert [r.sha256 for r in read_records(store.out_dir)] == [body.sha256()]


async def test_large_page_bytes_are_not_held(session, origin: Origin, store: Store):
    body = Body(SMALL_BODY_BYTES + 1, seed=51)
    origin.resources["/big.html"] = Resource(body)
    record, data = await fetch_page(session, origin.url("/big.html"), store)
    assert record.outcome is Outcome.STORED and data is None
    assert sha256_file(store.absolute(record.path)) == body.sha256()


async def test_page_not_stored_returns_no_bytes(session, origin: Origin, store: Store):
    origin.resources["/gone"] = Resource(Body(100, seed=52), status=404)
    record, data = await fetch_page(session, origin.url("/gone"), store)
    assert record.outcome is Outcome.HTTP_ERROR and data is None


async def test_small_body_cut_short_keeps_what_arrived_then_resumes(
    session, origin: Origin, store: Store
):
    body = Body(100_000, seed=53)
    origin.resources["/cut"] = Resource(body, drop_after=[40_000])
    url = origin.url("/cut")
    final = store.tree.path_for(url)
    with pytest.raises(DownloadError) as failed:
        await download(session, url, store)
    assert failed.value.record.outcome is Outcome.FAILED
    assert only_part_left(final)
    kept = part_path_for(final).stat().st_size
    assert 0 < kept <= 40_000 and failed.value.record.received == kept
    assert part_path_for(final).read_bytes() == body.bytes()[:kept]
    state = load_state(part_path_for(final))
    assert state is not None and state.etag == '"v1"' and state.expected_length == body.size

    record = await download(session, url, store)
    assert record.outcome is Outcome.STORED and record.resumed_from == kept
    assert origin.requests[-1].headers["range"] == f"bytes={kept}-"
    assert sha256_file(final) == body.sha256() == record.sha256


async def test_small_body_with_wrong_sha256_publishes_nothing(
    session, origin: Origin, store: Store
):
    origin.resources["/d"] = Resource(Body(1000, seed=54))
    url = origin.url("/d")
    with pytest.raises(DownloadError) as failed:
        await download(session, url, store, expected_sha256="0" * 64)
    assert "DigestMismatchError" in str(failed.value.record.error)
    final = store.tree.path_for(url)
    assert not final.exists() and not part_path_for(final).exists()


async def test_file_stored_beside_a_directory_is_revalidated(session, origin: Origin, store: Store):
    origin.resources["/a/b"] = Resource(Body(500, seed=56), etag='"b"')
    origin.resources["/a"] = Resource(Body(500, seed=55))
    await download(session, origin.url("/a/b"), store)
    first = await download(session, origin.url("/a"), store)  # `a` is a directory: a%%file
    assert first.path is not None and first.path.endswith("a%%file")
    again = await download(session, origin.url("/a"), store)
    assert origin.requests[-1].headers["if-none-match"] == '"v1"'
    assert again.outcome is Outcome.NOT_MODIFIED and again.sha256 == first.sha256


async def test_a_leftover_part_without_state_is_overwritten(session, origin: Origin, store: Store):
    body = Body(3000, seed=57)
    origin.resources["/left"] = Resource(body)
    url = origin.url("/left")
    final = store.tree.path_for(url)
    store.tree.ensure_parent(final)
    part_path_for(final).write_bytes(b"x" * 5000)  # no state beside it: cannot be resumed
    record = await download(session, url, store)
    assert record.outcome is Outcome.STORED and record.resumed_from == 0
    assert "range" not in origin.requests[-1].headers
    assert sha256_file(final) == body.sha256() and not part_path_for(final).exists()


async def test_no_state_file_outlives_its_part(session, origin: Origin, store: Store):
    body = Body(2 * MiB, seed=58)
    origin.resources["/s"] = Resource(body, drop_after=[MiB])
    url = origin.url("/s")
    final = store.tree.path_for(url)
    with pytest.raises(DownloadError):
        await download(session, url, store)
    assert state_path_for(part_path_for(final)).exists()  # a resumable `.part` and its state
    record = await download(session, url, store)
    assert record.outcome is Outcome.STORED and record.resumed_from > 0
    assert not part_path_for(final).exists()
    assert not state_path_for(part_path_for(final)).exists()


async def test_a_resume_keeps_its_state_while_a_short_rest_arrives(
    session, origin: Origin, store: Store
):
    # 8 MiB already in the `.part`, half a MiB to come: a process killed while it comes must
    # still find the state (its validators) and resume, not fetch all 8.5 MiB again.
    body = Body(8 * MiB + MiB // 2, seed=59)
    origin.resources["/r"] = Resource(body, drop_after=[8 * MiB])
    url = origin.url("/r")
    state = state_path_for(part_path_for(store.tree.path_for(url)))
    with pytest.raises(DownloadError):
        await download(session, url, store)
    origin.resources["/r"].pause_before_body = 0.3
    resumed = asyncio.create_task(download(session, url, store))
    while len(origin.requests) < 2:
        await asyncio.sleep(0.01)
    assert origin.requests[-1].headers["range"] == f"bytes={8 * MiB}-"
    assert state.exists()  # the rest is on its way: a kill now still resumes
    record = await resumed
    assert record.outcome is Outcome.STORED and record.resumed_from == 8 * MiB
    assert sha256_file(store.absolute(record.path)) == body.sha256()
    assert not state.exists()


# --- refused by its type (accept=) ----------------------------------------------------------


@pytest.mark.parametrize(("size", "connections"), [(DRAIN_REFUSED_BYTES, 1), (8 * MiB, 2)])
async def test_a_refused_short_body_is_drained_so_its_connection_is_reused(
    session, origin: Origin, store: Store, size: int, connections: int
):
    # The body comes after a pause, so it is still to arrive when the type is refused.
    origin.resources["/refused.bin"] = Resource(Body(size, seed=70), pause_before_body=0.1)
    origin.resources["/next.bin"] = Resource(Body(500, seed=71))
    record, data = await fetch_page(
        session, origin.url("/refused.bin"), store, accept=lambda _type: False
    )
    assert record.outcome is Outcome.SKIPPED and data is None
    assert record.error == "Content-Type application/octet-stream not accepted"
    assert record.received == 0
    assert not list(store.out_dir.joinpath("files").rglob("refused.bin*"))
    record, data = await fetch_page(session, origin.url("/next.bin"), store)
    assert record.outcome is Outcome.STORED and data == Body(500, seed=71).bytes()
    # Short: read to its end and the connection reused; longer: that connection was closed.
    assert origin.connections_accepted == connections
