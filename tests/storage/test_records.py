"""Fetch records: msgpack round trip, framed logs that survive torn writes, export."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import msgpack
import pytest

from storage import records as records_module
from storage.errors import StorageError
from storage.export import CSV_COLUMNS, export_csv, export_jsonl
from storage.framing import HEADER_SIZE, MAGIC, ProblemKind, encode_frame, iter_frames
from storage.records import (
    FetchRecord,
    Outcome,
    ReadReport,
    RecordLog,
    RedirectHop,
    Timings,
    clean_text,
    read_log,
    read_records,
)


def full_record(n: int = 0) -> FetchRecord:
    return FetchRecord(
        url=f"http://h/{n}",
        method="GET",
        final_url=f"http://h/{n}/final",
        status=200,
        reason="OK",
        outcome=Outcome.STORED,
        error=None,
        notes=["server sent the whole body"],
        headers=[("Content-Type", "text/html"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
        request_headers=[("Host", "h"), ("Cookie", "s=1")],
        set_cookies=["a=1", "b=2"],
        cookies_sent=["s=1"],
        redirects=[RedirectHop(f"http://h/{n}", 301, f"/{n}/final")],
        timings=Timings(dns=0.001, connect=0.002, ttfb=0.01, total=0.5),
        size=1234,
        received=1000,
        resumed_from=234,
        sha256="ab" * 32,
        path=f"files/h/{n}",
        content_type="text/html",
        fetched_at=1_700_000_000.5,
        warc_file="crawl-1.warc.gz",
        warc_record_id="<urn:uuid:1>",
        writer="w",
        meta={"depth": 2, "job": "j"},
    )


def test_record_round_trips_through_msgpack():
    record = full_record()
    data = msgpack.unpackb(msgpack.packb(record.to_map(), use_bin_type=True), raw=False)
    assert FetchRecord.from_map(data) == record
    assert isinstance(data, dict) and data["outcome"] == "stored"
    assert data["headers"][1] == ["Set-Cookie", "a=1"]


def test_unknown_fields_from_newer_writers_are_ignored():
    data = full_record().to_map() | {"added_later": 1}
    assert FetchRecord.from_map(data) == full_record()


def test_records_written_are_read_back_in_order(tmp_path: Path):
    with RecordLog(tmp_path, "w1") as log:
        for n in range(50):
            log.append(full_record(n))
    report = ReadReport()
    assert [r.url for r in read_records(tmp_path, report)] == [f"http://h/{n}" for n in range(50)]
    assert report.records == 50 and report.problems == []


@pytest.mark.parametrize("cut", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 5, 100])
def test_a_torn_last_record_is_skipped_and_reported(tmp_path: Path, cut: int):
    with RecordLog(tmp_path, "w1") as log:
        for n in range(3):
            log.append(full_record(n))
        path = log.path
    size = path.stat().st_size
    last_frame = len(encode_frame(msgpack.packb(full_record(2).to_map(), use_bin_type=True)))
    os.truncate(path, size - last_frame + cut)
    report = ReadReport()
    urls = [r.url for r in read_records(tmp_path, report)]
    assert urls == ["http://h/0", "http://h/1"]
    assert [p.kind for p in report.problems] == [ProblemKind.TORN_TAIL]
    assert report.torn[0].offset == size - last_frame and report.torn[0].skipped == cut


def test_reopening_a_log_cuts_the_torn_tail_before_appending(tmp_path: Path):
    with RecordLog(tmp_path, "w1") as log:
        log.append(full_record(0))
        log.append(full_record(1))
        path = log.path
    os.truncate(path, path.stat().st_size - 7)
    with RecordLog(tmp_path, "w1") as log:
        log.append(full_record(2))
    report = ReadReport()
    assert [r.url for r in read_records(tmp_path, report)] == ["http://h/0", "http://h/2"]
    assert report.problems == []


def test_a_damaged_record_in_the_middle_is_skipped_and_reading_resumes(tmp_path: Path):
    with RecordLog(tmp_path, "w1") as log:
        for n in range(3):
            log.append(full_record(n))
        path = log.path
    data = bytearray(path.read_bytes())
    second = data.find(MAGIC, 1)
    data[second + HEADER_SIZE + 10] ^= 0xFF  # flip a byte inside record 1's payload
    path.write_bytes(bytes(data))
    report = ReadReport()
    assert [r.url for r in read_log(path, report)] == ["http://h/0", "http://h/2"]
    assert [p.kind for p in report.problems] == [ProblemKind.CORRUPT]
    assert report.problems[0].offset == second


def test_garbage_between_frames_is_skipped():
    frames = encode_frame(b"one") + b"\x00garbage\xff" + encode_frame(b"two")
    items = list(iter_frames(io.BytesIO(frames)))
    assert items[0] == b"one" and items[2] == b"two"
    assert items[1].kind is ProblemKind.CORRUPT and items[1].skipped == len(b"\x00garbage\xff")


def test_logs_rotate_by_size_and_all_are_read(tmp_path: Path):
    with RecordLog(tmp_path, "w1", rotate_bytes=2000) as log:
        for n in range(20):
            log.append(full_record(n))
    logs = sorted((tmp_path / "records").iterdir())
    assert len(logs) > 3
    assert [r.url for r in read_records(tmp_path)] == [f"http://h/{n}" for n in range(20)]


def test_logs_of_several_writers_are_all_read(tmp_path: Path):
    with RecordLog(tmp_path, "a") as first, RecordLog(tmp_path, "b") as second:
        first.append(full_record(1))
        second.append(full_record(2))
    assert sorted(r.url for r in read_records(tmp_path)) == ["http://h/1", "http://h/2"]


def test_two_live_writers_cannot_share_an_id(tmp_path: Path):
    with RecordLog(tmp_path, "same"), pytest.raises(StorageError):
        RecordLog(tmp_path, "same")


@pytest.mark.parametrize("writer_id", ["", "../x", "a/b", "a b", "-x"])
def test_writer_ids_that_could_name_other_files_are_refused(tmp_path: Path, writer_id: str):
    with pytest.raises(ValueError):
        RecordLog(tmp_path, writer_id)


def test_header_text_with_undecodable_bytes_is_made_encodable():
    text = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert clean_text(text) == "caf\\xe9"
    assert clean_text("café") == "café"


def test_export_jsonl_and_csv(tmp_path: Path):
    with RecordLog(tmp_path, "w") as log:
        log.append(full_record(0))
        failed = full_record(1)
        failed.outcome, failed.error, failed.status = Outcome.FAILED, "ClientPayloadError", None
        log.append(failed)
    out = io.StringIO()
    report = export_jsonl(tmp_path, out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert report.records == 2
    assert [line["url"] for line in lines] == ["http://h/0", "http://h/1"]
    assert lines[0]["redirects"] == [{"url": "http://h/0", "status": 301, "location": "/0/final"}]

    out = io.StringIO()
    export_jsonl(tmp_path, out, failed_only=True)
    assert [json.loads(x)["url"] for x in out.getvalue().splitlines()] == ["http://h/1"]

    out = io.StringIO()
    export_csv(tmp_path, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[0]["sha256"] == "ab" * 32 and rows[1]["status"] == ""
    assert rows[0]["total_seconds"] == "0.5"


def test_export_of_a_log_with_a_torn_tail_reports_it(tmp_path: Path):
    with RecordLog(tmp_path, "w") as log:
        log.append(full_record(0))
        log.append(full_record(1))
        path = log.path
    os.truncate(path, path.stat().st_size - 3)
    out = io.StringIO()
    report = export_jsonl(tmp_path, out)
    assert len(out.getvalue().splitlines()) == 1
    assert len(report.torn) == 1 and report.torn[0].path == path


def urls_on_disk(out: Path) -> list[str]:
    return [r.url for r in read_records(out)]


def test_held_records_reach_the_disk_on_flush_in_one_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    writes: list[int] = []
    real_write = os.write

    def counting_write(fd: int, data: bytes | memoryview) -> int:
        writes.append(len(data))
        return real_write(fd, data)

    with RecordLog(tmp_path, "w1") as log:
        log.hold()
        monkeypatch.setattr(os, "write", counting_write)
        for n in range(30):
            log.append(full_record(n))
        assert urls_on_disk(tmp_path) == []
        assert writes == []
        log.flush()
        assert len(writes) == 1
        assert urls_on_disk(tmp_path) == [f"http://h/{n}" for n in range(30)]
        log.append(full_record(30))
        log.flush()
        log.flush()  # nothing held: nothing written
        assert len(writes) == 2
    assert urls_on_disk(tmp_path) == [f"http://h/{n}" for n in range(31)]


def test_closing_a_holding_log_writes_what_it_held(tmp_path: Path):
    log = RecordLog(tmp_path, "w1")
    log.hold()
    log.append(full_record(1))
    log.close()
    assert urls_on_disk(tmp_path) == ["http://h/1"]


def test_a_holding_log_writes_once_enough_bytes_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(records_module, "HOLD_MAX_BYTES", 3000)
    with RecordLog(tmp_path, "w1") as log:
        log.hold()
        n = 0
        while not urls_on_disk(tmp_path):
            log.append(full_record(n))
            n += 1
            assert n < 50, "held records were never written"
        assert 1 < n < 10


def test_held_records_rotate_logs_inside_one_flush(tmp_path: Path):
    with RecordLog(tmp_path, "w1", rotate_bytes=2000) as log:
        log.hold()
        for n in range(20):
            log.append(full_record(n))
        log.flush()
    logs = sorted((tmp_path / "records").iterdir())
    assert len(logs) > 3
    frame = len(encode_frame(msgpack.packb(full_record(10).to_map(), use_bin_type=True)))
    assert all(path.stat().st_size <= max(2000, frame) for path in logs)
    assert urls_on_disk(tmp_path) == [f"http://h/{n}" for n in range(20)]


def test_held_records_stay_held_when_the_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with RecordLog(tmp_path, "w1") as log:
        log.hold()
        log.append(full_record(1))
        real_write = os.write

        def full_disk(fd: int, data: bytes | memoryview) -> int:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "write", full_disk)
        with pytest.raises(OSError, match="No space"):
            log.flush()
        monkeypatch.setattr(os, "write", real_write)
        log.append(full_record(2))
        log.flush()
    assert urls_on_disk(tmp_path) == ["http://h/1", "http://h/2"]


def test_a_flush_that_fails_after_one_log_keeps_only_what_was_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with RecordLog(tmp_path, "w1", rotate_bytes=2000) as log:
        log.hold()
        for n in range(20):
            log.append(full_record(n))
        real_write = os.write
        writes = 0

        def fails_second(fd: int, data: bytes | memoryview) -> int:
            nonlocal writes
            writes += 1
            if writes == 2:
                raise OSError(28, "No space left on device")
            return real_write(fd, data)

        monkeypatch.setattr(os, "write", fails_second)
        with pytest.raises(OSError, match="No space"):
            log.flush()
        monkeypatch.setattr(os, "write", real_write)
        log.flush()
    urls = urls_on_disk(tmp_path)
    assert urls == [f"http://h/{n}" for n in range(20)]  # each once, in order
