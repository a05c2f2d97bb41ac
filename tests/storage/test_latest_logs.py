"""The latest index derived from the record logs: what a re-crawl revalidates against."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgpack

from storage.framing import encode_frame
from storage.latest import LatestEntry, LatestIndex
from storage.records import RECORDS_DIR, FetchRecord, Outcome, RecordLog


def stored(url: str, at: float, etag: str = '"v1"', **extra: object) -> FetchRecord:
    return FetchRecord(
        url=url,
        final_url=url,
        status=200,
        outcome=Outcome.STORED,
        path=f"files/{url.rsplit('/', 1)[-1]}",
        size=10,
        sha256="ab" * 32,
        fetched_at=at,
        etag=etag,
        last_modified="Wed, 02 Dec 2026 18:00:00 GMT",
        **extra,  # type: ignore[arg-type]
    )


def index_of(out: Path) -> LatestIndex:
    return LatestIndex(out, records_dir=out / RECORDS_DIR)


def write(out: Path, writer: str, *records: FetchRecord) -> None:
    with RecordLog(out, writer) as log:
        for record in records:
            log.append(record)


def test_a_stored_record_is_found_with_its_validators(tmp_path: Path) -> None:
    write(tmp_path, "w1", stored("http://h/a", 1.0, warc_record_id="<urn:1>", warc_date="D"))
    entry = index_of(tmp_path).get("http://h/a")
    assert entry == LatestEntry(
        url="http://h/a", path="files/a", size=10, sha256="ab" * 32, etag='"v1"',
        last_modified="Wed, 02 Dec 2026 18:00:00 GMT", fetched_at=1.0,
        warc_record_id="<urn:1>", warc_date="D", warc_target_uri="http://h/a",
    )  # fmt: skip
    assert index_of(tmp_path).get("http://h/other") is None


def test_a_304_keeps_the_stored_version_and_refreshes_its_validators(tmp_path: Path) -> None:
    first = stored("http://h/a", 1.0, warc_record_id="<urn:original>", warc_date="D1")
    revisit = FetchRecord(
        url="http://h/a", status=304, outcome=Outcome.NOT_MODIFIED, path="files/a", size=10,
        fetched_at=2.0, etag='"v2"', warc_record_id="<urn:revisit>",
    )  # fmt: skip
    write(tmp_path, "w1", first, revisit)
    entry = index_of(tmp_path).get("http://h/a")
    assert entry is not None
    assert (entry.etag, entry.fetched_at) == ('"v2"', 2.0)
    assert entry.last_modified == "Wed, 02 Dec 2026 18:00:00 GMT"  # the 304 did not send one
    assert (entry.warc_record_id, entry.warc_date) == ("<urn:original>", "D1")


def test_the_newest_fetch_wins_whichever_log_is_read_last(tmp_path: Path) -> None:
    write(tmp_path, "a-writer", stored("http://h/x", 5.0, etag='"new"'))
    write(tmp_path, "b-writer", stored("http://h/x", 1.0, etag='"old"'))
    entry = index_of(tmp_path).get("http://h/x")
    assert entry is not None and entry.etag == '"new"'


def test_records_appended_later_are_found_by_the_same_index(tmp_path: Path) -> None:
    log = RecordLog(tmp_path, "w1")
    index = index_of(tmp_path)
    log.append(stored("http://h/a", 1.0))
    assert index.get("http://h/a") is not None
    log.append(stored("http://h/b", 2.0))
    assert index.get("http://h/b") is not None
    log.close()
    index.close()


def test_held_records_are_written_before_the_logs_are_read(tmp_path: Path) -> None:
    log = RecordLog(tmp_path, "w1")
    log.hold()
    log.append(stored("http://h/a", 1.0))
    index = LatestIndex(
        tmp_path, records_dir=tmp_path / RECORDS_DIR, before_reading_records=log.flush
    )
    assert index.get("http://h/a") is not None
    log.close()


def test_a_frame_still_being_written_is_read_once_it_is_whole(tmp_path: Path) -> None:
    write(tmp_path, "w1", stored("http://h/a", 1.0))
    log_file = next((tmp_path / RECORDS_DIR).iterdir())
    frame = encode_frame(msgpack.packb(stored("http://h/b", 2.0).to_map(), use_bin_type=True))
    with open(log_file, "ab") as file:
        file.write(frame[:20])  # the writer is half way through its write
    index = index_of(tmp_path)
    assert index.get("http://h/b") is None
    assert index.get("http://h/a") is not None
    with open(log_file, "ab") as file:
        file.write(frame[20:])
    assert index.get("http://h/b") is not None


def test_processes_sharing_a_folder_read_each_log_once(tmp_path: Path) -> None:
    write(tmp_path, "w1", stored("http://h/a", 1.0))
    assert index_of(tmp_path).get("http://h/a") is not None
    size = next((tmp_path / RECORDS_DIR).iterdir()).stat().st_size
    with sqlite3.connect(tmp_path / "state" / "latest.sqlite") as db:
        assert db.execute("SELECT offset FROM indexed_logs").fetchall() == [(size,)]
        db.execute("DELETE FROM latest")  # a second reader finds it read already
    db.close()
    assert index_of(tmp_path).get("http://h/a") is None


def test_records_of_writers_that_kept_the_index_themselves_are_left_out(tmp_path: Path) -> None:
    index = index_of(tmp_path)
    index.put(LatestEntry(url="http://h/a", path="files/a", size=3, sha256="cd" * 32, etag='"e"'))
    index.close()
    old_style = stored("http://h/a", 9.0).to_map()
    for name in ("etag", "last_modified", "warc_date"):
        del old_style[name]
    (tmp_path / RECORDS_DIR).mkdir()
    log_file = tmp_path / RECORDS_DIR / "old.000001.rec"
    log_file.write_bytes(encode_frame(msgpack.packb(old_style, use_bin_type=True)))
    entry = index_of(tmp_path).get("http://h/a")
    assert entry is not None and (entry.size, entry.etag) == (3, '"e"')


def test_failed_fetches_make_no_entry_and_an_empty_folder_gets_no_file(tmp_path: Path) -> None:
    assert index_of(tmp_path).get("http://h/a") is None
    assert not (tmp_path / "state").exists()
    write(tmp_path, "w1", FetchRecord(url="http://h/a", outcome=Outcome.FAILED, error="reset"))
    assert index_of(tmp_path).get("http://h/a") is None
