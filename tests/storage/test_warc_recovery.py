"""A WARC file whose writer died (kill -9) is finished by the next writer on its folder: cut back
to its last whole record and renamed to the name its records were reported under; a file a live
writer holds (its flock) is never touched.

The dead writers here are real processes killed with SIGKILL, each writing through WarcWriter.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from storage.warc import OPEN_SUFFIX, HttpHead, WarcWriter
from tests.storage.test_warc import assert_valid

REPO = Path(__file__).resolve().parents[2]

# Writes `count` exchanges (payload i: bytes [i*1000, i*1000 + 5000) of the body file), prints
# each record's ref as JSON, then waits on stdin: a line "close" closes the writer, a kill
# leaves the `.open` file as a crash would.
_WRITER = textwrap.dedent(
    """
    import json, sys
    from storage.warc import HttpHead, WarcWriter
    out, body, writer_id, gzipped, count = sys.argv[1:6]
    writer = WarcWriter(out, writer_id=writer_id, gzip=gzipped == "1")
    request = HttpHead("GET / HTTP/1.1", [("Host", "h")])
    response = HttpHead("200 OK", [("Content-Length", "5000")])
    for n in range(int(count)):
        ref = writer.write_exchange(f"http://h/{n}", request, response, (body, n * 1000, 5000))
        print(json.dumps({"file": ref.file, "offset": ref.offset, "id": ref.record_id}))
    writer._file.flush()  # what it wrote is on disk (the kill below must not lose it)
    print("written", flush=True)
    if sys.stdin.readline().strip() == "close":
        writer.close()
        print("closed", flush=True)
    """
)


@dataclass
class Ref:
    file: str
    offset: int
    id: str


class WriterProcess:
    """A WarcWriter in a child process, alive (holding its file's lock) until told otherwise."""

    def __init__(self, out: Path, body: Path, writer_id: str, *, count: int, gzipped: bool):
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        args = [str(out), str(body), writer_id, "1" if gzipped else "0", str(count)]
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WRITER, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.refs: list[Ref] = []
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip() == "written":
                break
            self.refs.append(Ref(**json.loads(line)))
        assert len(self.refs) == count, "the writer process failed"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("close\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "closed"
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def body_file(tmp_path: Path) -> Path:
    path = tmp_path / "body.bin"
    path.write_bytes(os.urandom(20_000))
    return path


@pytest.fixture
def writers() -> Iterator[list[WriterProcess]]:
    started: list[WriterProcess] = []
    yield started
    for writer in started:
        writer.stop()


def warc_dir(out: Path) -> Path:
    return out / "warc"


def member_at(data: bytes, offset: int) -> bytes:
    """The gzip member that starts at `offset`."""
    member = zlib.decompressobj(wbits=31)
    member.decompress(data[offset:])
    assert member.eof
    return data[offset : len(data) - len(member.unused_data)]


def read_all(path: Path) -> list[tuple[str, str | None, bytes]]:
    """Every record warcio reads, whole: (type, target URI, payload)."""
    out = []
    with open(path, "rb") as stream:
        for record in ArchiveIterator(stream):
            uri = record.rec_headers.get_header("WARC-Target-URI")
            out.append((record.rec_type, uri, record.content_stream().read()))
    return out


def test_a_killed_writers_file_is_cut_to_whole_records_and_renamed(
    tmp_path: Path, body_file: Path, writers: list[WriterProcess], caplog: pytest.LogCaptureFixture
):
    out = tmp_path / "out"
    dead = WriterProcess(out, body_file, "dead", count=3, gzipped=True)
    writers.append(dead)
    dead.kill()
    name = dead.refs[0].file
    leftover = warc_dir(out) / (name + OPEN_SUFFIX)
    assert leftover.exists() and not (warc_dir(out) / name).exists()
    # The kill landed in the middle of a fourth response record: half its gzip member.
    data = leftover.read_bytes()
    whole_size = len(data)
    member = member_at(data, dead.refs[-1].offset)
    with open(leftover, "ab") as file:
        file.write(member[: len(member) // 2])

    with (
        caplog.at_level(logging.WARNING, logger="crawl.storage"),
        WarcWriter(out, writer_id="next") as writer,
    ):
        assert writer.recovered == [warc_dir(out) / name]
    recovered = warc_dir(out) / name  # the name the records were reported under
    assert recovered.exists() and not leftover.exists()
    assert recovered.stat().st_size == whole_size
    body = body_file.read_bytes()
    records = read_all(recovered)
    assert [(kind, uri) for kind, uri, _ in records] == [
        ("warcinfo", None),
        *[(kind, f"http://h/{n}") for n in range(3) for kind in ("response", "request")],
    ]
    payloads = [payload for kind, _, payload in records if kind == "response"]
    assert payloads == [body[n * 1000 : n * 1000 + 5000] for n in range(3)]
    assert_valid([recovered])
    logged = [r.getMessage() for r in caplog.records if name in r.getMessage()]
    assert len(logged) == 1 and "recovered" in logged[0]


def test_a_whole_member_holding_a_torn_record_is_cut(
    tmp_path: Path, body_file: Path, writers: list[WriterProcess]
):
    out = tmp_path / "out"
    dead = WriterProcess(out, body_file, "dead", count=2, gzipped=True)
    writers.append(dead)
    dead.kill()
    leftover = warc_dir(out) / (dead.refs[0].file + OPEN_SUFFIX)
    data = leftover.read_bytes()
    record = zlib.decompress(member_at(data, dead.refs[-1].offset), wbits=31)
    with open(leftover, "ab") as file:
        file.write(gzip.compress(record[: len(record) - 100]))  # a valid member, a cut record
    WarcWriter(out, writer_id="next").close()
    recovered = warc_dir(out) / dead.refs[0].file
    assert recovered.read_bytes() == data
    assert_valid([recovered])


def test_an_uncompressed_warc_is_cut_after_its_last_whole_record(
    tmp_path: Path, body_file: Path, writers: list[WriterProcess]
):
    out = tmp_path / "out"
    dead = WriterProcess(out, body_file, "dead", count=2, gzipped=False)
    writers.append(dead)
    dead.kill()
    name = dead.refs[0].file
    assert name.endswith(".warc")
    leftover = warc_dir(out) / (name + OPEN_SUFFIX)
    data = leftover.read_bytes()
    with open(leftover, "ab") as file:
        file.write(data[dead.refs[-1].offset :][:3000])  # a response record, torn
    WarcWriter(out, writer_id="next", gzip=False).close()
    recovered = warc_dir(out) / name
    assert recovered.read_bytes() == data
    kinds = [kind for kind, _, _ in read_all(recovered)]
    assert kinds == ["warcinfo", "response", "request", "response", "request"]


def test_leftovers_without_a_whole_record_are_removed(tmp_path: Path):
    folder = warc_dir(tmp_path)
    folder.mkdir()
    empty = folder / ("crawl-20240101000000000-00001-a.warc.gz" + OPEN_SUFFIX)
    empty.touch()
    torn = folder / ("crawl-20240101000000000-00001-b.warc.gz" + OPEN_SUFFIX)
    torn.write_bytes(gzip.compress(b"WARC/1.1\r\nContent-Length: 10\r\n\r\n")[:20])
    with WarcWriter(tmp_path, writer_id="next") as writer:
        assert writer.recovered == []
    assert sorted(folder.iterdir()) == []  # nothing left: this writer wrote nothing either


def test_a_live_writer_in_another_process_is_left_alone(
    tmp_path: Path, body_file: Path, writers: list[WriterProcess]
):
    out = tmp_path / "out"
    live = WriterProcess(out, body_file, "live", count=2, gzipped=True)
    writers.append(live)
    leftover = warc_dir(out) / (live.refs[0].file + OPEN_SUFFIX)
    before = leftover.read_bytes()
    with WarcWriter(out, writer_id="next") as writer:
        assert writer.recovered == []
    assert leftover.read_bytes() == before  # still `.open`, not a byte changed
    assert not (warc_dir(out) / live.refs[0].file).exists()
    live.close()  # and it finishes its file as usual
    finished = warc_dir(out) / live.refs[0].file
    assert finished.read_bytes() == before
    assert_valid([finished])


def test_a_live_writer_in_this_process_is_left_alone(tmp_path: Path, body_file: Path):
    request = HttpHead("GET / HTTP/1.1", [("Host", "h")])
    response = HttpHead("200 OK", [("Content-Length", "5000")])
    with WarcWriter(tmp_path, writer_id="first") as first:
        ref = first.write_exchange("http://h/a", request, response, (body_file, 0, 5000))
        first._file.flush()  # type: ignore[union-attr]
        open_file = warc_dir(tmp_path) / (ref.file + OPEN_SUFFIX)
        before = open_file.read_bytes()
        with WarcWriter(tmp_path, writer_id="second") as second:
            assert second.recovered == []
            assert open_file.read_bytes() == before
            second.write_exchange("http://h/b", request, response, (body_file, 1, 5000))
        first.write_exchange("http://h/c", request, response, (body_file, 2, 5000))
    files = sorted(warc_dir(tmp_path).iterdir())
    assert len(files) == 2 and not any(f.name.endswith(OPEN_SUFFIX) for f in files)
    uris = {uri for f in files for kind, uri, _ in read_all(f) if kind == "response"}
    assert uris == {"http://h/a", "http://h/b", "http://h/c"}
    assert_valid(files)
