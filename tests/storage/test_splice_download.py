"""Large bodies on plain connections are spliced from the socket into the `.part`: the same
guarantees as the copying paths (byte-exact, verified, resumable, never a complete-looking
partial file), with the bytes moved inside the kernel and hashed from the page cache."""

from __future__ import annotations

import asyncio
import hashlib
import os
import resource
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crawler.http import _splice
from storage import DownloadError, Outcome, Store, download
from storage.fetch import SPLICE_MIN_BYTES
from storage.sink import BodySink, FsyncPolicy, part_path_for
from tests.storage.origin import Body, Origin, Resource
from tests.storage.test_download import only_part_left, sha256_file
from tests.support.binaries import require_feature

MiB = 1 << 20


@pytest.fixture(autouse=True)
def _needs_splice() -> None:
    require_feature(_splice.SPLICE_AVAILABLE, "splice(2) and eventfd are Linux-only")


def assert_pool_empty(session) -> None:  # type: ignore[no-untyped-def]
    stats = session.connector.stats()
    assert (stats.acquired, stats.opening, stats.waiters) == (0, 0, 0), stats


@pytest.mark.parametrize("threaded", [True, False])
async def test_sink_hashes_bytes_put_in_its_file_by_someone_else(tmp_path: Path, threaded: bool):
    data = os.urandom(3 * MiB + 17)
    final = tmp_path / "f.bin"
    sink = BodySink(final, threaded=threaded)
    await sink.open()
    await sink.write(data[:100_000])  # queued, not yet written: splice_target writes it first
    position = 100_000
    for size in (MiB - 5, 7, MiB):
        fd = await sink.splice_target()
        assert os.lseek(fd, 0, os.SEEK_CUR) == position
        os.write(fd, data[position : position + size])
        await sink.spliced(size)
        position += size
    await sink.write(data[position:])
    result = await sink.commit(
        expected_size=len(data), expected_sha256=hashlib.sha256(data).hexdigest()
    )
    assert final.read_bytes() == data and result.size == len(data)


async def test_large_body_is_spliced_byte_exact(
    session, origin: Origin, store: Store, kernel_moved: list[int]
):
    body = Body(40 * MiB + 13, seed=50)
    origin.resources["/big"] = Resource(body)
    record = await download(session, origin.url("/big"), store, expected_sha256=body.sha256())
    assert record.outcome is Outcome.STORED and record.size == body.size
    assert sha256_file(store.absolute(record.path)) == body.sha256() == record.sha256
    # Everything but the first read's share (it came with the head) went through the kernel.
    assert body.size - MiB <= sum(kernel_moved) <= body.size
    assert_pool_empty(session)


async def test_body_below_the_threshold_is_read_not_spliced(
    session, origin: Origin, store: Store, kernel_moved: list[int]
):
    body = Body(SPLICE_MIN_BYTES - 1, seed=51)
    origin.resources["/mid"] = Resource(body)
    record = await download(session, origin.url("/mid"), store)
    assert record.sha256 == body.sha256() and kernel_moved == []


async def test_fsync_always_with_splice(session, origin: Origin, out_dir: Path):
    body = Body(9 * MiB + 1, seed=53)
    origin.resources["/f"] = Resource(body)
    with Store(out_dir, writer_id="t", fsync=FsyncPolicy.ALWAYS) as store:
        record = await download(session, origin.url("/f"), store)
        assert record.sha256 == body.sha256()
        assert sha256_file(store.absolute(record.path)) == body.sha256()


@pytest.fixture
def file_size_limit() -> Iterator[Callable[[], None]]:
    """Writes past 12 MiB fail with EFBIG in this process, as on a full disk (SIGXFSZ off),
    until the function it gives is called."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (12 * MiB, hard))

    def lift() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

    try:
        yield lift
    finally:
        lift()
        signal.signal(signal.SIGXFSZ, previous)


async def test_a_full_disk_mid_splice_fails_keeps_the_part_and_resumes(
    session,
    origin: Origin,
    store: Store,
    kernel_moved: list[int],
    file_size_limit: Callable[[], None],
):
    body = Body(20 * MiB + 5, seed=55)
    origin.resources["/full"] = Resource(body)
    url = origin.url("/full")
    final = store.tree.path_for(url)
    with pytest.raises(DownloadError) as failed:
        await download(session, url, store)
    record = failed.value.record
    assert record.outcome is Outcome.FAILED and "File too large" in (record.error or "")
    assert only_part_left(final)
    kept = part_path_for(final).stat().st_size
    assert 0 < kept <= 12 * MiB
    assert part_path_for(final).read_bytes() == body.bytes()[:kept]
    assert_pool_empty(session)

    file_size_limit()  # room on the disk again
    record = await download(session, url, store)
    assert record.outcome is Outcome.STORED and 0 < record.resumed_from <= kept
    assert sha256_file(final) == body.sha256() == record.sha256


async def test_a_sink_abandoned_mid_hash_leaves_no_descriptor_open(tmp_path: Path):
    # Each spliced window is hashed through a duplicate descriptor: one job running, others
    # queued, then the sink is dropped at once (a cancelled download). Every duplicate closes.
    before = set(os.listdir("/proc/self/fd"))
    data = os.urandom(8 * MiB)
    sink = BodySink(tmp_path / "f.bin")
    await sink.open()
    for _ in range(4):
        fd = await sink.splice_target()
        os.write(fd, data)
        await sink.spliced(len(data))
    sink.close_now()
    for _ in range(500):
        if set(os.listdir("/proc/self/fd")) <= before:
            break
        await asyncio.sleep(0.01)
    assert set(os.listdir("/proc/self/fd")) <= before
    assert part_path_for(tmp_path / "f.bin").stat().st_size == 4 * len(data)
