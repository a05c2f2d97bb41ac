"""BodySink: chunks to `.part`, verification, fsync policy, atomic rename, failure leftovers."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from storage.errors import DigestMismatchError, PathBusyError, SizeMismatchError, StorageError
from storage.paths import displaced_path
from storage.sink import BodySink, FsyncPolicy, part_path_for

DATA = os.urandom(3 * (1 << 20) + 12345)


def chunks(data: bytes, size: int = 70_001):
    return [data[i : i + size] for i in range(0, len(data), size)]


async def write_all(sink: BodySink, data: bytes) -> None:
    for chunk in chunks(data):
        await sink.write(chunk)


@pytest.mark.parametrize("threaded", [True, False])
async def test_commit_renames_a_verified_body_into_place(tmp_path: Path, threaded: bool):
    final = tmp_path / "f.bin"
    sink = BodySink(final, threaded=threaded)
    await sink.open()
    await write_all(sink, DATA)
    assert not final.exists() and part_path_for(final).exists()
    result = await sink.commit(
        expected_size=len(DATA), expected_sha256=hashlib.sha256(DATA).hexdigest().upper()
    )
    assert result.path == final and result.size == len(DATA)
    assert result.sha256 == hashlib.sha256(DATA).hexdigest()
    assert final.read_bytes() == DATA
    assert not part_path_for(final).exists()


async def test_short_body_raises_and_leaves_only_the_part(tmp_path: Path):
    final = tmp_path / "f.bin"
    sink = BodySink(final)
    await sink.open()
    await write_all(sink, DATA[:1000])
    with pytest.raises(SizeMismatchError) as failed:
        await sink.commit(expected_size=len(DATA))
    assert (failed.value.expected, failed.value.got) == (len(DATA), 1000)
    await sink.close()
    assert not final.exists()
    assert part_path_for(final).read_bytes() == DATA[:1000]


async def test_digest_mismatch_raises_and_publishes_nothing(tmp_path: Path):
    final = tmp_path / "f.bin"
    sink = BodySink(final)
    await sink.open()
    await write_all(sink, DATA)
    with pytest.raises(DigestMismatchError):
        await sink.commit(expected_sha256="00" * 32)
    await sink.discard()
    assert not final.exists() and not part_path_for(final).exists()


async def test_open_at_offset_keeps_and_hashes_the_prefix(tmp_path: Path):
    final = tmp_path / "f.bin"
    part_path_for(final).write_bytes(DATA[:2_000_000] + b"garbage after the checkpoint")
    sink = BodySink(final)
    await sink.open(2_000_000)
    assert sink.size == sink.start_offset == 2_000_000
    await write_all(sink, DATA[2_000_000:])
    result = await sink.commit(expected_size=len(DATA))
    assert result.sha256 == hashlib.sha256(DATA).hexdigest()
    assert final.read_bytes() == DATA


async def test_open_beyond_the_part_is_refused(tmp_path: Path):
    final = tmp_path / "f.bin"
    part_path_for(final).write_bytes(b"abc")
    sink = BodySink(final)
    with pytest.raises(StorageError):
        await sink.open(10)
    assert not sink.is_open


async def test_restart_drops_everything_written(tmp_path: Path):
    final = tmp_path / "f.bin"
    sink = BodySink(final)
    await sink.open()
    await write_all(sink, b"old" * 500_000)
    await sink.restart()
    await write_all(sink, DATA)
    result = await sink.commit(expected_size=len(DATA))
    assert final.read_bytes() == DATA and result.sha256 == hashlib.sha256(DATA).hexdigest()


async def test_a_second_sink_on_the_same_path_is_busy(tmp_path: Path):
    final = tmp_path / "f.bin"
    first = BodySink(final)
    await first.open()
    with pytest.raises(PathBusyError):
        await BodySink(final).open()
    await first.close()
    second = BodySink(final)
    await second.open()
    await second.close()


async def test_commit_beside_a_directory_that_took_the_name(tmp_path: Path):
    final = tmp_path / "a"
    sink = BodySink(final)
    await sink.open()
    await sink.write(b"file body")
    final.mkdir()  # another URL needed `a/` as a folder meanwhile
    result = await sink.commit()
    assert result.path == displaced_path(final)
    assert result.path.read_bytes() == b"file body"


@pytest.mark.parametrize("clash", [False, True])
async def test_a_sink_given_a_str_path_works_with_strs(tmp_path: Path, clash: bool):
    final = str(tmp_path / "a")
    sink = BodySink(final)
    assert sink.part_path == final + ".part"
    assert sink.open_new()
    sink.put(b"page")
    if clash:
        os.mkdir(final)
    result = await sink.commit(expected_size=4)
    place = displaced_path(final) if clash else final
    stored = result.path
    assert result.path_text == place and stored == Path(place)
    assert stored.read_bytes() == b"page" and not part_path_for(tmp_path / "a").exists()


@pytest.mark.parametrize(
    ("policy", "expected_calls"),
    [(FsyncPolicy.NEVER, 0), (FsyncPolicy.ON_CLOSE, 2), (FsyncPolicy.ALWAYS, 4 + 2)],
)
async def test_fsync_policy(tmp_path: Path, monkeypatch, policy: FsyncPolicy, expected_calls):
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd))[1])
    sink = BodySink(tmp_path / "f.bin", fsync=policy, threaded=False)
    await sink.open()
    for _ in range(4):  # four full batches of 1 MiB
        await sink.write(b"x" * (1 << 20))
    await sink.commit()
    # ALWAYS: once per batch, then file + directory at commit; ON_CLOSE: file + directory.
    assert len(calls) == expected_calls


def _run_child(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_a_killed_writer_leaves_only_a_part(tmp_path: Path):
    final = tmp_path / "f.bin"
    child = _run_child(
        """
        import asyncio, os, signal, sys
        from pathlib import Path
        from storage.sink import BodySink
        async def main():
            sink = BodySink(Path(sys.argv[1]))
            await sink.open()
            for _ in range(5):
                await sink.write(b"y" * (1 << 20))
            await sink.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        asyncio.run(main())
        """,
        str(final),
    )
    assert child.returncode == -9
    assert not final.exists()
    assert part_path_for(final).stat().st_size == 5 << 20


def test_a_disk_error_mid_body_leaves_only_a_part(tmp_path: Path):
    final = tmp_path / "f.bin"
    child = _run_child(
        """
        import asyncio, resource, signal, sys
        from pathlib import Path
        from storage.sink import BodySink
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (3 << 20, 3 << 20))
        async def main():
            sink = BodySink(Path(sys.argv[1]))
            await sink.open()
            try:
                for _ in range(8):
                    await sink.write(b"z" * (1 << 20))
                await sink.commit()
            except OSError as exc:
                print("error", exc.errno)
                try:
                    await sink.close()  # writes what is left: fails again, still closes
                except OSError:
                    pass
                assert not sink.is_open
        asyncio.run(main())
        """,
        str(final),
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith("error 27")  # EFBIG
    assert not final.exists()
    assert part_path_for(final).stat().st_size <= 3 << 20


# --- lent buffers (room + wrote) and the write lanes ---


async def fill_lent(sink: BodySink, data: bytes, sizes: tuple[int, ...] = (65_536, 300_000, 7)):
    """Put `data` into the sink the way StreamReader.readinto does: into room(), then wrote()."""
    position = turn = 0
    while position < len(data):
        room = await sink.room()
        count = min(len(room), sizes[turn % len(sizes)], len(data) - position)
        room[:count] = data[position : position + count]
        await sink.wrote(count)
        position += count
        turn += 1


@pytest.mark.parametrize("threaded", [True, False])
async def test_lent_buffers_store_the_body_byte_exact_with_its_sha256(
    tmp_path: Path, threaded: bool
):
    data = os.urandom(9 * (1 << 20) + 333)
    final = tmp_path / "f.bin"
    sink = BodySink(final, threaded=threaded)
    await sink.open()
    await fill_lent(sink, data)
    result = await sink.commit(
        expected_size=len(data), expected_sha256=hashlib.sha256(data).hexdigest()
    )
    assert final.read_bytes() == data and result.size == len(data)


async def test_chunks_and_lent_buffers_mixed_keep_their_order(tmp_path: Path):
    final = tmp_path / "f.bin"
    sink = BodySink(final)
    await sink.open()
    expected = b""
    for i in range(12):
        piece = bytes([i]) * (400_000 + i)
        if i % 2:
            await sink.write(piece)
        else:
            await fill_lent(sink, piece)
        expected += piece
    result = await sink.commit(expected_size=len(expected))
    assert final.read_bytes() == expected
    assert result.sha256 == hashlib.sha256(expected).hexdigest()


async def test_lent_buffers_are_reused_so_memory_stays_bounded(tmp_path: Path):
    sink = BodySink(tmp_path / "f.bin", fsync=FsyncPolicy.NEVER)
    await sink.open()
    buffers: set[int] = set()
    for _ in range(200):  # 200 MiB
        room = await sink.room()
        buffers.add(id(room.obj))
        room[:] = b"m" * len(room)
        await sink.wrote(len(room))
    await sink.commit(expected_size=200 << 20)
    assert len(buffers) <= 5  # MAX_IN_FLIGHT batches out, one filling


async def test_wrote_more_than_the_room_is_refused(tmp_path: Path):
    sink = BodySink(tmp_path / "f.bin")
    await sink.open()
    room = await sink.room()
    with pytest.raises(StorageError):
        await sink.wrote(len(room) + 1)
    await sink.discard()


async def test_after_a_failed_write_no_later_batch_reaches_the_file(tmp_path: Path, monkeypatch):
    import storage.sink as sink_module

    real = sink_module._write_all
    calls = 0

    def flaky(fd, chunks):  # the second batch fails, as a full disk would; later ones could pass
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(28, "No space left on device")
        real(fd, chunks)

    monkeypatch.setattr(sink_module, "_write_all", flaky)
    final = tmp_path / "f.bin"
    sink = BodySink(final)
    await sink.open()
    batches = [bytes([i]) * (1 << 20) for i in range(8)]
    with pytest.raises(OSError, match="No space"):
        for batch in batches:
            await fill_lent(sink, batch, sizes=(1 << 20,))
        await sink.commit()
    with pytest.raises(OSError, match="No space"):
        await sink.close()  # the lane stays failed; the file is closed all the same
    assert not sink.is_open and not final.exists()
    # The .part is the body's prefix up to the failure: resuming from its size stays correct.
    assert part_path_for(final).read_bytes() == batches[0]


async def test_put_writes_and_hashes_a_whole_body_at_once(tmp_path: Path):
    final = tmp_path / "page.html"
    sink = BodySink(final)
    await sink.open()
    sink.put(DATA[:5000])
    assert part_path_for(final).read_bytes() == DATA[:5000]  # written before commit
    result = await sink.commit(
        expected_size=5000, expected_sha256=hashlib.sha256(DATA[:5000]).hexdigest()
    )
    assert result.size == 5000 and final.read_bytes() == DATA[:5000]


async def test_put_after_resumed_prefix_appends(tmp_path: Path):
    final = tmp_path / "f.bin"
    part_path_for(final).write_bytes(DATA[:700])
    sink = BodySink(final)
    await sink.open(700)
    sink.put(DATA[700:2000])
    result = await sink.commit(expected_size=2000)
    assert result.sha256 == hashlib.sha256(DATA[:2000]).hexdigest()
    assert final.read_bytes() == DATA[:2000]


async def test_put_refuses_while_written_chunks_wait(tmp_path: Path):
    sink = BodySink(tmp_path / "f.bin")
    await sink.open()
    await sink.write(b"queued")
    with pytest.raises(StorageError):
        sink.put(b"more")
    await sink.close()


async def test_open_at_zero_empties_a_stale_part(tmp_path: Path):
    final = tmp_path / "f.bin"
    part_path_for(final).write_bytes(b"stale bytes of another attempt")
    sink = BodySink(final)
    await sink.open()
    sink.put(b"new")
    await sink.commit(expected_size=3)
    assert final.read_bytes() == b"new"


async def test_open_new_creates_a_locked_empty_part_only_when_there_is_none(tmp_path: Path):
    final = tmp_path / "f.bin"
    sink = BodySink(final)
    assert sink.open_new() is True
    assert sink.is_open and part_path_for(final).stat().st_size == 0
    other = BodySink(final)
    assert other.open_new() is False  # there is one now: the caller reads its state first
    with pytest.raises(PathBusyError):
        await other.open()
    sink.put(b"body")
    await sink.commit(expected_size=4)
    assert final.read_bytes() == b"body"


async def test_open_new_leaves_an_existing_part_untouched(tmp_path: Path):
    final = tmp_path / "f.bin"
    part_path_for(final).write_bytes(b"resumable bytes")
    sink = BodySink(final)
    assert sink.open_new() is False and not sink.is_open
    assert part_path_for(final).read_bytes() == b"resumable bytes"
