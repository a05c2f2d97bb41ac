"""The latest-version index: one SQLite table per output folder, written in batches."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
from pathlib import Path

import msgpack

from storage import Store
from storage.latest import FLUSH_ENTRIES, LatestEntry, LatestIndex


def entry(url: str, size: int = 10) -> LatestEntry:
    return LatestEntry(url=url, path=f"files/{size}", size=size, sha256="ab" * 32, etag='"v1"')


def test_an_entry_put_is_found_at_once_by_the_same_index(tmp_path: Path) -> None:
    index = LatestIndex(tmp_path)
    index.put(entry("http://a/x"))
    assert index.get("http://a/x") == entry("http://a/x")
    assert index.get("http://a/y") is None
    index.close()


def test_a_lookup_in_an_empty_folder_creates_nothing(tmp_path: Path) -> None:
    index = LatestIndex(tmp_path)
    assert index.get("http://a/x") is None
    index.close()
    assert list(tmp_path.iterdir()) == []


def test_entries_outlive_the_index_and_are_seen_by_another(tmp_path: Path) -> None:
    first = LatestIndex(tmp_path)
    first.put(entry("http://a/x", 1))
    first.put(entry("http://a/x", 2))  # replaces
    first.close()
    second = LatestIndex(tmp_path)
    assert second.get("http://a/x") == entry("http://a/x", 2)
    second.forget("http://a/x")
    assert second.get("http://a/x") is None
    second.close()
    assert LatestIndex(tmp_path).get("http://a/x") is None


def test_every_field_comes_back_from_the_file(tmp_path: Path) -> None:
    full = LatestEntry(
        url="http://a/x", path="files/a/x", size=7, sha256="cd" * 32, etag='"e"',
        last_modified="Wed, 02 Dec 2026 18:00:00 GMT", fetched_at=1.5, warc_record_id="<urn:1>",
        warc_date="2026-12-02T18:00:00Z", warc_target_uri="http://a/x?final",
    )  # fmt: skip
    writer = LatestIndex(tmp_path)
    writer.put(full)
    writer.close()
    assert LatestIndex(tmp_path).get("http://a/x") == full


def test_entries_an_older_writer_stored_as_a_msgpack_map_are_still_read(tmp_path: Path) -> None:
    stored = entry("http://a/map")
    fields = {name: getattr(stored, name) for name in stored.__slots__}
    LatestIndex(tmp_path).close()
    (tmp_path / "state").mkdir(exist_ok=True)
    with sqlite3.connect(tmp_path / "state" / "latest.sqlite") as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS latest (url TEXT PRIMARY KEY, entry TEXT NOT NULL)"
            " WITHOUT ROWID"
        )
        db.execute("INSERT INTO latest VALUES (?, ?)", ("http://a/map", msgpack.packb(fields)))
    db.close()
    assert LatestIndex(tmp_path).get("http://a/map") == stored


def test_entries_an_older_writer_stored_as_json_are_still_read(tmp_path: Path) -> None:
    # Entries were JSON text before they were msgpack: an output folder from then still
    # revalidates instead of fetching everything whole again.
    old = LatestIndex(tmp_path)
    old.put(entry("http://a/new"))
    old.close()
    stored = entry("http://a/old")
    fields = {name: getattr(stored, name) for name in stored.__slots__}
    with sqlite3.connect(tmp_path / "state" / "latest.sqlite") as db:
        db.execute("INSERT INTO latest VALUES (?, ?)", ("http://a/old", json.dumps(fields)))
    db.close()
    index = LatestIndex(tmp_path)
    assert index.get("http://a/old") == stored
    assert index.get("http://a/new") == entry("http://a/new")
    index.close()


def _put_many(folder: str, start: int) -> None:
    index = LatestIndex(folder)
    for n in range(start, start + FLUSH_ENTRIES + 10):
        index.put(entry(f"http://a/{n}", n))
    index.close()


def test_processes_sharing_a_folder_see_each_others_entries(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_put_many, args=(str(tmp_path), k * 1000)) for k in (0, 1)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    index = LatestIndex(tmp_path)
    for k in (0, 1):
        for n in (k * 1000, k * 1000 + FLUSH_ENTRIES + 9):
            assert index.get(f"http://a/{n}") == entry(f"http://a/{n}", n)
    index.close()


def test_a_full_batch_is_written_without_close(tmp_path: Path) -> None:
    writer = LatestIndex(tmp_path)
    for n in range(FLUSH_ENTRIES):
        writer.put(entry(f"http://a/{n}", n))
    reader = LatestIndex(tmp_path)
    assert reader.get("http://a/0") == entry("http://a/0", 0)
    reader.close()
    writer.close()


def test_urls_with_undecodable_bytes_are_kept(tmp_path: Path) -> None:
    url = "http://a/\udcff-bad"
    index = LatestIndex(tmp_path)
    index.put(entry(url))
    index.close()
    again = LatestIndex(tmp_path)
    found = again.get(url)
    assert found is not None and found.url == url
    again.close()


def test_a_flush_waits_for_another_writers_lock_then_goes_through(tmp_path: Path) -> None:
    index = LatestIndex(tmp_path)
    index.put(LatestEntry(url="http://h/a", path="files/h/a", size=1, sha256="0" * 64))
    index.flush()  # the file exists now
    other = sqlite3.connect(index.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    try:
        release.start()
        index.put(LatestEntry(url="http://h/b", path="files/h/b", size=2, sha256="1" * 64))
        index.flush()  # would raise "database is locked" if it did not wait
        release.join()
        again = LatestIndex(tmp_path)
        entry = again.get("http://h/b")
        assert entry is not None and entry.size == 2
        again.close()
    finally:
        release.cancel()
        other.close()
        index.close()


def synchronous_of(index: LatestIndex) -> int:
    return index._connection().execute("PRAGMA synchronous").fetchone()[0]


def test_the_stores_fsync_policy_decides_whether_the_index_syncs(tmp_path: Path) -> None:
    # 0 = OFF (never syncs), 1 = NORMAL (WAL: a committed batch survives a power loss).
    with Store(tmp_path / "never", fsync="never") as store:
        assert synchronous_of(store.latest) == 0
    with Store(tmp_path / "on-close", fsync="on-close") as store:
        assert synchronous_of(store.latest) == 1
    with Store(tmp_path / "always", fsync="always") as store:
        assert synchronous_of(store.latest) == 1


def test_an_unreadable_index_is_moved_aside_and_started_anew(tmp_path: Path, caplog) -> None:
    index = LatestIndex(tmp_path)
    index.put(entry("http://a/x"))
    index.close()
    damaged = tmp_path / "state" / "latest.sqlite"
    damaged.write_bytes(b"not a database, whatever a power loss left" * 100)
    again = LatestIndex(tmp_path)
    with caplog.at_level("WARNING", logger="crawl.storage"):
        assert again.get("http://a/x") is None
        again.put(entry("http://a/y"))
        again.flush()
    assert again.get("http://a/y") == entry("http://a/y")
    again.close()
    kept = list((tmp_path / "state").glob("latest.sqlite.unreadable-*"))
    assert len(kept) == 1 and kept[0].read_bytes().startswith(b"not a database")
    assert "unreadable" in caplog.text
    assert LatestIndex(tmp_path).get("http://a/y") == entry("http://a/y")
