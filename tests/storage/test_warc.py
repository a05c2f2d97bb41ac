"""WARC output: records warcio can read, digests `warcio check` accepts, rotation, gzip."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from storage import DownloadError, Outcome, Store, download
from storage.warc import SERVER_NOT_MODIFIED, HttpHead, WarcWriter, sha256_warc_digest
from tests.storage.origin import Body, Origin, Resource

MiB = 1 << 20
BODY = os.urandom(3 * MiB + 11)
REQUEST = HttpHead("GET /f?x=1 HTTP/1.1", [("Host", "h"), ("User-Agent", "t")])
RESPONSE = HttpHead("200 OK", [("Content-Type", "application/octet-stream"),
                               ("Content-Length", str(len(BODY)))])


def warcio_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from warcio.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_valid(files: list[Path]) -> None:
    checked = warcio_cli("check", "-v", *map(str, files))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "digest pass" in checked.stdout
    indexed = warcio_cli("index", *map(str, files))
    assert indexed.returncode == 0, indexed.stderr
    assert '"warc-type": "response"' in indexed.stdout or '"warc-type": "revisit"' in indexed.stdout


def records_of(path: Path) -> list[tuple[str, dict[str, str], bytes]]:
    out = []
    with open(path, "rb") as stream:
        for record in ArchiveIterator(stream):
            headers = dict(record.rec_headers.headers)
            out.append((record.rec_type, headers, record.content_stream().read()))
    return out


@contextlib.contextmanager
def held_by_another_thread(writer: WarcWriter) -> Iterator[None]:
    """The writer's lock held by another thread for the duration (as during a large write)."""
    busy, release = threading.Event(), threading.Event()

    def hold_the_writer() -> None:
        with writer._lock:
            busy.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_writer)
    holder.start()
    try:
        assert busy.wait(10)
        yield
    finally:
        release.set()
        holder.join()


@pytest.fixture
def body_file(tmp_path: Path) -> Path:
    path = tmp_path / "body.bin"
    path.write_bytes(BODY)
    return path


def test_exchange_is_a_response_and_request_pair_warcio_accepts(tmp_path: Path, body_file):
    with WarcWriter(tmp_path, writer_id="w1") as writer:
        ref = writer.write_exchange("http://h/f?x=1", REQUEST, RESPONSE,
                                    (body_file, 0, len(BODY)))
    files = sorted((tmp_path / "warc").iterdir())
    assert [f.name for f in files] == [ref.file]
    assert re.fullmatch(r"crawl-\d{17}-00001-w1\.warc\.gz", ref.file)
    records = records_of(files[0])
    assert [r[0] for r in records] == ["warcinfo", "response", "request"]
    _, response, payload = records[1]
    assert payload == BODY
    assert response["WARC-Target-URI"] == "http://h/f?x=1"
    assert response["WARC-Record-ID"] == ref.record_id
    assert records[2][1]["WARC-Concurrent-To"] == ref.record_id
    assert_valid(files)


def test_payload_is_read_from_a_window_of_the_file(tmp_path: Path, body_file):
    head = HttpHead("206 Partial Content", [("Content-Length", "5000")])
    with WarcWriter(tmp_path, writer_id="w1") as writer:
        writer.write_exchange("http://h/f", REQUEST, head, (body_file, 1000, 5000))
    (file,) = (tmp_path / "warc").iterdir()
    assert records_of(file)[1][2] == BODY[1000:6000]
    assert_valid([file])


def test_each_record_is_its_own_gzip_member(tmp_path: Path, body_file):
    with WarcWriter(tmp_path, writer_id="w1") as writer:
        ref = writer.write_exchange("http://h/f", REQUEST, RESPONSE, (body_file, 0, 100))
    data = ((tmp_path / "warc") / ref.file).read_bytes()
    member = zlib.decompressobj(wbits=31)
    assert member.decompress(data[ref.offset:]).startswith(b"WARC/1.1\r\nWARC-Type: response")
    assert member.eof  # the member ended where the next record begins


def test_dechunked_payload_gets_headers_that_match_it(tmp_path: Path, body_file):
    head = HttpHead("200 OK", [("Transfer-Encoding", "chunked")])
    with WarcWriter(tmp_path, writer_id="w1") as writer:
        writer.write_exchange("http://h/f", REQUEST, head, (body_file, 0, 4096))
    (file,) = (tmp_path / "warc").iterdir()
    responses = 0
    with open(file, "rb") as stream:
        for record in ArchiveIterator(stream):
            if record.rec_type != "response":
                continue
            responses += 1
            http = record.http_headers
            assert http.get_header("Content-Length") == "4096"
            assert http.get_header("Transfer-Encoding") is None
            assert http.get_header("X-Crawl-Original-Transfer-Encoding") == "chunked"
            assert record.content_stream().read() == BODY[:4096]
    assert responses == 1


def test_revisit_for_not_modified(tmp_path: Path, body_file):
    with WarcWriter(tmp_path, writer_id="w1") as writer:
        first = writer.write_exchange("http://h/f", REQUEST, RESPONSE, (body_file, 0, len(BODY)))
        writer.write_revisit(
            "http://h/f",
            REQUEST,
            HttpHead("304 Not Modified", [("ETag", '"e"')]),
            payload_sha256=hashlib.sha256(BODY).hexdigest(),
            refers_to_uri="http://h/f",
            refers_to_date=first.date,
            refers_to_record=first.record_id,
        )
    (file,) = (tmp_path / "warc").iterdir()
    revisit = next(r for r in records_of(file) if r[0] == "revisit")[1]
    assert revisit["WARC-Profile"] == SERVER_NOT_MODIFIED
    assert revisit["WARC-Refers-To"] == first.record_id
    assert revisit["WARC-Refers-To-Date"] == first.date
    # One algorithm for both, so a deduplicating tool matches the revisit to its response.
    response = next(r for r in records_of(file) if r[0] == "response")[1]
    assert revisit["WARC-Payload-Digest"] == response["WARC-Payload-Digest"]
    assert revisit["WARC-Payload-Digest"] == sha256_warc_digest(hashlib.sha256(BODY).hexdigest())
    assert_valid([file])


def test_writes_without_waiting_never_wait_behind_another_thread(tmp_path: Path, body_file):
    """What the event loop's thread calls: a record at once when the writer is free, None
    (and nothing written) while another thread is in the middle of one."""
    revisit = {
        "payload_sha256": "ab" * 32, "refers_to_uri": "http://h/a",
        "refers_to_date": None, "refers_to_record": None,
    }  # fmt: skip
    not_modified = HttpHead("304 Not Modified", [])
    with WarcWriter(tmp_path, writer_id="w1") as writer:
        first = writer.without_waiting(
            writer.write_exchange, "http://h/a", REQUEST, RESPONSE, (body_file, 0, 100)
        )
        assert first is not None
        with held_by_another_thread(writer):
            # Had either waited for the lock, it would have written once the holder gave up
            # (10 s): None is the proof it did not.
            busy_window = (body_file, 0, 9)
            exchange = ("http://h/b", REQUEST, RESPONSE, busy_window)
            assert writer.without_waiting(writer.write_exchange, *exchange) is None
            revisit_args = ("http://h/a", REQUEST, not_modified)
            assert writer.without_waiting(writer.write_revisit, *revisit_args, **revisit) is None
        assert writer.without_waiting(writer.write_revisit, *revisit_args, **revisit)
    (file,) = (tmp_path / "warc").iterdir()
    kinds = [(kind, headers.get("WARC-Target-URI")) for kind, headers, _ in records_of(file)]
    assert kinds[1:] == [
        ("response", "http://h/a"), ("request", "http://h/a"),
        ("revisit", "http://h/a"), ("request", "http://h/a"),
    ]  # fmt: skip
    assert_valid([file])


def test_files_rotate_at_the_size_limit_and_lose_open_suffix(tmp_path: Path, body_file):
    with WarcWriter(tmp_path, writer_id="w1", prefix="job", max_size=100_000) as writer:
        for n in range(5):
            writer.write_exchange(f"http://h/{n}", REQUEST, RESPONSE, (body_file, n, 80_000))
        assert any(p.name.endswith(".open") for p in (tmp_path / "warc").iterdir())
    files = sorted((tmp_path / "warc").iterdir())
    assert len(files) >= 3
    assert all(re.fullmatch(r"job-\d{17}-\d{5}-w1\.warc\.gz", f.name) for f in files)
    for file in files:
        assert records_of(file)[0][0] == "warcinfo"
    uris = [h["WARC-Target-URI"] for f in files for t, h, _ in records_of(f) if t == "response"]
    assert uris == [f"http://h/{n}" for n in range(5)]
    assert_valid(files)


def test_a_damaged_payload_fails_warcio_check(tmp_path: Path, body_file):
    with WarcWriter(tmp_path, writer_id="w1", gzip=False) as writer:
        writer.write_exchange("http://h/f", REQUEST, RESPONSE, (body_file, 0, 10_000))
    (file,) = (tmp_path / "warc").iterdir()
    data = bytearray(file.read_bytes())
    data[data.find(BODY[:100]) + 50] ^= 0xFF
    file.write_bytes(bytes(data))
    assert warcio_cli("check", str(file)).returncode == 1


async def test_downloads_write_warc_records_for_every_outcome(
    session, origin: Origin, warc_store: Store
):
    big = Body(5 * MiB + 1, seed=30)
    origin.resources["/big"] = Resource(big)
    origin.resources["/cut"] = Resource(Body(3 * MiB, seed=31), drop_after=[2 * MiB])
    origin.resources["/huge"] = Resource(Body(8 * MiB, seed=32))
    stored = await download(session, origin.url("/big"), warc_store)
    again = await download(session, origin.url("/big"), warc_store)
    missing = await download(session, origin.url("/missing"), warc_store)
    with pytest.raises(DownloadError):
        await download(session, origin.url("/cut"), warc_store)
    refused = await download(session, origin.url("/huge"), warc_store, max_size=MiB)
    assert (stored.outcome, again.outcome, missing.outcome, refused.outcome) == (
        Outcome.STORED, Outcome.NOT_MODIFIED, Outcome.HTTP_ERROR, Outcome.TOO_LARGE)
    assert stored.warc_record_id and again.warc_record_id and missing.warc_record_id
    assert refused.warc_record_id
    warc_store.close()
    files = sorted((warc_store.out_dir / "warc").iterdir())
    assert_valid(files)
    records = [r for f in files for r in records_of(f)]
    by_uri = {}
    for kind, headers, payload in records:
        by_uri.setdefault(headers.get("WARC-Target-URI"), []).append((kind, headers, payload))
    (_, _, payload), = [r for r in by_uri[origin.url("/big")] if r[0] == "response"]
    assert payload == big.bytes()
    revisit = next(r for r in by_uri[origin.url("/big")] if r[0] == "revisit")[1]
    assert revisit["WARC-Refers-To"] == stored.warc_record_id
    assert [r[2] for r in by_uri[origin.url("/missing")] if r[0] == "response"] == [b"not found\n"]
    (_, cut, _), = [r for r in by_uri[origin.url("/cut")] if r[0] == "response"]
    assert cut["WARC-Truncated"] == "disconnect"
    # Over --max-size by its Content-Length: the exchange is on record, its body was not read.
    (_, huge, huge_payload), = [r for r in by_uri[origin.url("/huge")] if r[0] == "response"]
    assert huge["WARC-Truncated"] == "length" and huge_payload == b""
    assert not list((warc_store.out_dir / "tmp").iterdir())


async def test_small_pages_are_archived_also_while_another_thread_writes(
    session, origin: Origin, warc_store: Store
):
    """A small page's records are written on the loop's thread when the writer is free, and
    through a thread (waiting its turn) when another thread holds it; both end up archived."""
    origin.resources["/a"] = Resource(Body(4000, seed=40))
    origin.resources["/b"] = Resource(Body(4000, seed=41))
    free = await download(session, origin.url("/a"), warc_store)
    writer = warc_store.warc
    assert writer is not None
    with held_by_another_thread(writer):
        fetch = asyncio.ensure_future(download(session, origin.url("/b"), warc_store))
        await asyncio.sleep(0.3)
        assert not fetch.done()  # it waits for the writer in a thread, not on the loop
    waited = await fetch
    assert free.warc_record_id and waited.warc_record_id
    warc_store.close()
    files = sorted((warc_store.out_dir / "warc").iterdir())
    assert_valid(files)
    responses = {
        headers["WARC-Target-URI"]: payload
        for f in files
        for kind, headers, payload in records_of(f)
        if kind == "response"
    }
    assert responses == {
        origin.url("/a"): Body(4000, seed=40).bytes(),
        origin.url("/b"): Body(4000, seed=41).bytes(),
    }
