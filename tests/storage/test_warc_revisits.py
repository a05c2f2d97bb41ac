"""What the WARC says about a fetch, against a real local origin: a revisit (a 304) never invents
the date of an original that is in no WARC, and a response the client passed through undecoded
keeps the Content-Encoding its payload still has."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Any

from warcio.archiveiterator import ArchiveIterator

from storage import DownloadError, Outcome, Store, download
from storage.warc import sha256_warc_digest
from tests.storage.origin import Body, Origin, Resource
from tests.storage.test_warc import assert_valid


class Fixed(Body):
    """A body of given bytes (Origin serves any Body's slices as they are)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.size, self.seed = data, len(data), 0

    def slice(self, start: int, length: int) -> bytes:
        return self.data[start : start + length]


def warc_records(out_dir: Path) -> list[Any]:
    """(type, WARC headers, HTTP headers, payload) of every record in the output's WARCs."""
    records = []
    for path in sorted((out_dir / "warc").iterdir()):
        with open(path, "rb") as stream:
            for record in ArchiveIterator(stream):
                http = record.http_headers
                records.append((
                    record.rec_type,
                    dict(record.rec_headers.headers),
                    dict(http.headers) if http is not None else {},
                    record.content_stream().read(),
                ))
    return records


def files_of(out_dir: Path) -> list[Path]:
    return sorted((out_dir / "warc").iterdir())


async def test_revisit_of_an_original_in_no_warc_does_not_invent_its_date(
    session, origin: Origin, out_dir: Path
):
    body = Body(6000, seed=70)
    origin.resources["/page"] = Resource(body)
    url = origin.url("/page")
    with Store(out_dir, writer_id="first") as store:  # the first pass: no --warc
        first = await download(session, url, store)
    assert first.outcome is Outcome.STORED and first.warc_record_id is None
    with Store(out_dir, writer_id="again", warc=True) as store:  # --recrawl --warc
        again = await download(session, url, store)
    assert again.outcome is Outcome.NOT_MODIFIED
    (revisit,) = [r for r in warc_records(out_dir) if r[0] == "revisit"]
    _, headers, http, _ = revisit
    # The check is on record (it says the stored file was current then) ...
    assert again.warc_record_id == headers["WARC-Record-ID"]
    assert headers["WARC-Refers-To-Target-URI"] == url
    assert headers["WARC-Payload-Digest"] == sha256_warc_digest(body.sha256())
    assert http.get("ETag") == '"v1"'
    # ... but nothing claims when, or where, the original was archived: it never was.
    assert "WARC-Refers-To-Date" not in headers
    assert "WARC-Refers-To" not in headers
    assert_valid(files_of(out_dir))


async def test_revisit_of_an_archived_original_gives_its_date_and_record(
    session, origin: Origin, warc_store: Store
):
    origin.resources["/page"] = Resource(Body(6000, seed=71))
    url = origin.url("/page")
    first = await download(session, url, warc_store)
    again = await download(session, url, warc_store)
    assert again.outcome is Outcome.NOT_MODIFIED
    warc_store.close()
    records = warc_records(warc_store.out_dir)
    (response,) = [r[1] for r in records if r[0] == "response"]
    (revisit,) = [r[1] for r in records if r[0] == "revisit"]
    assert revisit["WARC-Refers-To"] == first.warc_record_id == response["WARC-Record-ID"]
    assert revisit["WARC-Refers-To-Date"] == response["WARC-Date"]


async def test_undecoded_content_encodings_are_kept_in_the_archived_head(
    session, origin: Origin, warc_store: Store
):
    """The client decodes one known coding only; what it passes through as sent ("gzip, gzip",
    "x-custom") is stored and archived encoded, and the head must still say so."""
    text = b"<html>" + b"stacked codings " * 500 + b"</html>"
    twice = gzip.compress(gzip.compress(text))
    custom = hashlib.sha256(b"x").digest() * 100
    origin.resources["/twice"] = Resource(
        Fixed(twice), extra_headers=[("Content-Encoding", "gzip, gzip")]
    )
    origin.resources["/custom"] = Resource(
        Fixed(custom), extra_headers=[("Content-Encoding", "x-custom")]
    )
    origin.resources["/once"] = Resource(Body(5000, seed=72), gzip_body=True)
    sent = {"/twice": (twice, "gzip, gzip"), "/custom": (custom, "x-custom")}
    for path, (payload, _) in sent.items():
        record = await download(session, origin.url(path), warc_store)
        assert record.outcome is Outcome.STORED
        assert warc_store.absolute(record.path).read_bytes() == payload  # passed through
    once = await download(session, origin.url("/once"), warc_store)
    warc_store.close()
    responses = {
        headers["WARC-Target-URI"]: (http, payload)
        for kind, headers, http, payload in warc_records(warc_store.out_dir)
        if kind == "response"
    }
    for path, (payload, encoding) in sent.items():
        http, archived = responses[origin.url(path)]
        assert archived == payload
        assert http.get("Content-Encoding") == encoding
        assert "X-Crawl-Decoded-Content-Encoding" not in http
        assert http.get("Content-Length") == str(len(payload))
    # A coding the client did decode is still reported as decoded (the payload is plain).
    http, archived = responses[origin.url("/once")]
    assert archived == Body(5000, seed=72).bytes() == warc_store.absolute(once.path).read_bytes()
    assert "Content-Encoding" not in http
    assert http.get("X-Crawl-Decoded-Content-Encoding") == "gzip"
    assert_valid(files_of(warc_store.out_dir))


async def test_a_resumed_download_is_archived_whole_and_revisits_point_at_that(
    session, origin: Origin, warc_store: Store
):
    """The break leaves a truncated 200, the resume a 206 with the rest; then the whole body
    as a resource record, which the fetch record names and a later 304's revisit refers to
    with a digest that is the record's own."""
    body = Body(3 * 1024 * 1024 + 7, seed=73)
    origin.resources["/big"] = Resource(body, drop_after=[1024 * 1024 + 5])
    url = origin.url("/big")
    try:
        await download(session, url, warc_store)
    except DownloadError:
        pass
    else:
        raise AssertionError("the dropped connection should have failed the first attempt")
    resumed = await download(session, url, warc_store)
    assert resumed.outcome is Outcome.STORED and resumed.resumed_from > 0
    again = await download(session, url, warc_store)
    assert again.outcome is Outcome.NOT_MODIFIED
    warc_store.close()
    records = warc_records(warc_store.out_dir)
    kinds = [(kind, http.get("statusline") or "") for kind, _, http, _ in records]
    responses = [r for r in records if r[0] == "response"]
    assert len(responses) == 2 and responses[0][1]["WARC-Truncated"] == "disconnect"
    tail = responses[1]
    assert len(tail[3]) == body.size - resumed.resumed_from  # the 206: the rest only
    (resource,) = [r for r in records if r[0] == "resource"]
    _, headers, _, payload = resource
    assert len(payload) == body.size, (len(payload), body.size)
    assert hashlib.sha256(payload).hexdigest() == body.sha256()
    assert headers["WARC-Concurrent-To"] == tail[1]["WARC-Record-ID"]
    assert headers["WARC-Payload-Digest"] == headers["WARC-Block-Digest"]
    assert headers["WARC-Block-Digest"] == sha256_warc_digest(body.sha256())
    assert resumed.warc_record_id == headers["WARC-Record-ID"], kinds
    (revisit,) = [r[1] for r in records if r[0] == "revisit"]
    assert revisit["WARC-Refers-To"] == headers["WARC-Record-ID"]
    assert revisit["WARC-Refers-To-Date"] == headers["WARC-Date"]
    assert revisit["WARC-Payload-Digest"] == headers["WARC-Block-Digest"]
    assert_valid(files_of(warc_store.out_dir))



async def test_warc_truncated_says_why_the_body_is_short(origin: Origin, warc_store: Store):
    """WARC 1.1: "time" for a read that timed out, "unspecified" for a body that arrived but
    could not be decoded, "disconnect" for a connection that ended early; and an error page's
    body that was read and archived (not stored) counts as received."""
    from crawler.http import ClientSession, ClientTimeout

    origin.resources["/hung"] = Resource(Body(200_000, seed=74), stall_after=50_000)
    origin.resources["/garbled"] = Resource(
        Fixed(b"this is not gzip " * 100), extra_headers=[("Content-Encoding", "gzip")]
    )
    origin.resources["/cut"] = Resource(Body(200_000, seed=75), drop_after=[50_000])
    origin.resources["/missing"] = Resource(Body(0), status=404)  # its body: "status 404\n"
    got = {}
    async with ClientSession(timeout=ClientTimeout(sock_read=0.5)) as session:
        for path in ("/hung", "/garbled", "/cut", "/missing"):
            try:
                got[path] = await download(session, origin.url(path), warc_store)
            except DownloadError as failed:
                got[path] = failed.record
    assert got["/missing"].received == len(b"status 404\n")
    warc_store.close()
    truncated = {
        headers["WARC-Target-URI"]: headers.get("WARC-Truncated")
        for kind, headers, _, _ in warc_records(warc_store.out_dir)
        if kind == "response"
    }
    assert truncated == {
        origin.url("/hung"): "time",
        origin.url("/garbled"): "unspecified",
        origin.url("/cut"): "disconnect",
        origin.url("/missing"): None,
    }


async def test_the_redirects_the_client_followed_are_archived_before_the_target(
    session, origin: Origin, warc_store: Store
):
    origin.redirects["/start"] = "/middle"
    origin.redirects["/middle"] = "/end"
    origin.resources["/end"] = Resource(Body(3000, seed=76))
    record = await download(session, origin.url("/start"), warc_store)
    assert record.outcome is Outcome.STORED and record.final_url == origin.url("/end")
    warc_store.close()
    records = warc_records(warc_store.out_dir)
    exchanges = [
        (kind, headers["WARC-Target-URI"], http.get("Location"))
        for kind, headers, http, _ in records
        if kind in ("response", "request")
    ]
    assert exchanges == [
        ("response", origin.url("/start"), "/middle"),
        ("request", origin.url("/start"), None),
        ("response", origin.url("/middle"), "/end"),
        ("request", origin.url("/middle"), None),
        ("response", origin.url("/end"), None),
        ("request", origin.url("/end"), None),
    ]
    statuses = []
    for path in files_of(warc_store.out_dir):
        with open(path, "rb") as stream:
            statuses += [
                r.http_headers.get_statuscode()
                for r in ArchiveIterator(stream)
                if r.rec_type == "response"
            ]
    assert statuses == ["302", "302", "200"]
    assert "WARC-Truncated" not in records[0][1]
    assert_valid(files_of(warc_store.out_dir))
