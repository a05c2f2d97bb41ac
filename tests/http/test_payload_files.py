"""FilePayload: sync binary files streamed in chunks, sized when known, replayable if seekable."""

from __future__ import annotations

import asyncio
import io
import os
import threading
from pathlib import Path

import pytest

from crawler.http.errors import ClientPayloadError
from crawler.http.payload import FilePayload, Payload, make_payload


async def body_of(payload: Payload) -> bytes:
    return b"".join([chunk async for chunk in payload.chunks()])


CONTENT = os.urandom(1_000_000)


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(CONTENT)
    return path


class RecordingFile(io.RawIOBase):
    """A binary file that records how much each read asked for, and from which thread."""

    def __init__(self, data: bytes, *, seekable: bool = True) -> None:
        self._inner = io.BytesIO(data)
        self._seekable = seekable
        self.requests: list[int] = []
        self.threads: set[int] = set()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def tell(self) -> int:
        if not self._seekable:
            raise OSError("not seekable")
        return self._inner.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        if not self._seekable:
            raise OSError("not seekable")
        return self._inner.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        self.requests.append(size)
        self.threads.add(threading.get_ident())
        return self._inner.read(size)

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        raise AssertionError("read() is expected")


async def test_regular_file_size_comes_from_fstat(data_file: Path) -> None:
    with data_file.open("rb") as file:
        payload = FilePayload(file)
        assert payload.size == 1_000_000
        assert await body_of(payload) == CONTENT


async def test_body_starts_at_the_current_position(data_file: Path) -> None:
    with data_file.open("rb") as file:
        file.seek(999_000)
        payload = FilePayload(file)
        assert payload.size == 1000
        assert await body_of(payload) == CONTENT[999_000:]


async def test_file_is_read_in_bounded_chunks_never_whole(data_file: Path) -> None:
    recording = RecordingFile(CONTENT)
    payload = FilePayload(recording, chunk_size=65536)
    chunks = [chunk async for chunk in payload.chunks()]
    assert b"".join(chunks) == CONTENT
    assert max(len(chunk) for chunk in chunks) <= 65536
    assert all(0 < request <= 65536 for request in recording.requests)


async def test_blocking_reads_run_outside_the_event_loop_thread(data_file: Path) -> None:
    recording = RecordingFile(CONTENT)
    await body_of(FilePayload(recording))
    assert threading.get_ident() not in recording.threads


async def test_seekable_file_is_replayable_from_its_start(data_file: Path) -> None:
    with data_file.open("rb") as file:
        file.seek(10)
        payload = FilePayload(file)
        assert payload.replayable
        first = await body_of(payload)
        second = await body_of(payload)
    assert first == second == CONTENT[10:]


async def test_bytesio_is_sized_and_replayable() -> None:
    payload = make_payload(io.BytesIO(b"in memory"))
    assert payload.size == 9
    assert payload.replayable
    assert await body_of(payload) == await body_of(payload) == b"in memory"


async def test_pipe_has_unknown_size_and_is_one_shot() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "wb") as writer:
        writer.write(b"through a pipe")
    with os.fdopen(read_fd, "rb") as reader:
        payload = FilePayload(reader)
        assert payload.size is None
        assert not payload.replayable
        assert await body_of(payload) == b"through a pipe"
        with pytest.raises(RuntimeError, match="cannot be replayed"):
            await body_of(payload)


async def test_unseekable_object_is_chunked_and_one_shot() -> None:
    payload = FilePayload(RecordingFile(b"stream", seekable=False))
    assert payload.size is None
    assert not payload.replayable
    assert await body_of(payload) == b"stream"


async def test_file_closed_before_sending_raises(data_file: Path) -> None:
    file = data_file.open("rb")
    payload = FilePayload(file)
    file.close()
    with pytest.raises(ValueError, match="closed"):
        await body_of(payload)


async def test_file_object_returning_str_is_a_type_error() -> None:
    class TextLike:
        def read(self, size: int = -1) -> str:
            return "text"

    with pytest.raises(TypeError, match="binary mode"):
        await body_of(FilePayload(TextLike()))


async def test_file_truncated_during_upload_fails_instead_of_short_body(data_file: Path) -> None:
    with data_file.open("rb") as file:
        payload = FilePayload(file, chunk_size=65536)
        chunks = payload.chunks()
        await anext(chunks)
        os.truncate(data_file, 100_000)
        with pytest.raises(ClientPayloadError, match="short of the 1000000 bytes"):
            async for _ in chunks:
                pass


async def test_file_growing_during_upload_sends_only_the_announced_size(data_file: Path) -> None:
    original = CONTENT
    with data_file.open("rb") as file:
        payload = FilePayload(file)
        with data_file.open("ab") as appender:
            appender.write(b"extra bytes")
        assert await body_of(payload) == original


async def test_stopping_early_waits_for_the_read_in_flight() -> None:
    release = threading.Event()
    finished: list[int] = []

    class SlowFile(RecordingFile):
        def read(self, size: int = -1) -> bytes:
            if self.requests:
                release.wait(30)
            data = super().read(size)
            finished.append(len(data))
            return data

    payload = FilePayload(SlowFile(b"x" * 10_000), chunk_size=1000)
    chunks = payload.chunks()
    assert await anext(chunks) == b"x" * 1000
    closing = asyncio.create_task(chunks.aclose())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not closing.done()  # the read-ahead is still blocked in its thread
    release.set()
    await closing
    assert finished == [1000, 1000]


async def test_close_closes_the_file(data_file: Path) -> None:
    file = data_file.open("rb")
    payload = FilePayload(file)
    await payload.close()
    assert file.closed


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.xls", "application/vnd.ms-excel"),
        ("photo.png", "image/png"),
        ("notes.txt", "text/plain"),
        ("blob.unknownext", "application/octet-stream"),
    ],
)
def test_content_type_is_guessed_from_the_file_name(
    tmp_path: Path, name: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"x")
    with path.open("rb") as file:
        payload = FilePayload(file)
        assert payload.filename == name
        assert payload.content_type == expected


def test_explicit_content_type_and_filename_win(data_file: Path) -> None:
    with data_file.open("rb") as file:
        payload = FilePayload(file, content_type="application/x-custom", filename="a.png")
        assert payload.content_type == "application/x-custom"
        assert payload.filename == "a.png"


def test_pseudo_names_are_not_used_as_filenames() -> None:
    stream = io.BytesIO(b"x")
    stream.name = "<stdin>"  # type: ignore[attr-defined]
    payload = FilePayload(stream)
    assert payload.filename is None
    assert payload.content_type == "application/octet-stream"


async def test_empty_file_has_size_zero_and_no_chunks(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with path.open("rb") as file:
        payload = FilePayload(file)
        assert payload.size == 0
        assert [chunk async for chunk in payload.chunks()] == []


def test_regular_file_offers_a_sendfile_range(data_file: Path) -> None:
    with data_file.open("rb") as file:
        file.seek(100)
        payload = FilePayload(file)
        file.seek(5000)  # moved by someone else: the range still starts where the body does
        assert payload.sendfile_source() == (file, 100, 1_000_000 - 100)
        assert file.tell() == 100


def test_in_memory_files_and_pipes_offer_no_sendfile_range() -> None:
    assert FilePayload(io.BytesIO(b"x")).sendfile_source() is None
    assert make_payload(b"bytes").sendfile_source() is None
    read_fd, write_fd = os.pipe()
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        assert FilePayload(reader).sendfile_source() is None


async def test_a_second_send_stops_the_first_instead_of_sharing_the_file(data_file: Path) -> None:
    """Two sends of one file body at once (a resend while the first writer is still going)
    must not interleave reads: the older one fails, the newer one gets every byte."""
    expected = CONTENT
    with data_file.open("rb") as file:
        payload = FilePayload(file, chunk_size=1000)
        first = payload.chunks()
        assert await anext(first) == expected[:1000]
        second = b"".join([chunk async for chunk in payload.chunks()])
        with pytest.raises(RuntimeError, match="restarted by another send"):
            async for _ in first:
                pass
    assert second == expected
