"""A re-fetch revalidates a stored file (If-None-Match) only while it is the file stored: one
edited in place since, even to the same size, is fetched whole again, so a 304 never vouches
for bytes that are not the server's."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from storage import Outcome, Store, download
from tests.storage.origin import Body, Origin, Resource


def edit_in_place(path: Path) -> None:
    """Same length, other bytes, and a later mtime even on a coarse-grained file system."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 2_000_000_000))
    assert path.stat().st_size == before.st_size


async def test_a_stored_file_edited_in_place_is_fetched_again(
    session, origin: Origin, store: Store
):
    body = Body(4096, seed=81)
    origin.resources["/e"] = Resource(body)
    url = origin.url("/e")
    first = await download(session, url, store)
    path = store.absolute(first.path)
    edit_in_place(path)
    second = await download(session, url, store)
    assert "if-none-match" not in origin.requests[-1].headers
    assert second.outcome is Outcome.STORED and second.status == 200
    assert path.read_bytes() == body.bytes()


async def test_an_edit_after_a_304_is_found_too(session, origin: Origin, store: Store):
    body = Body(4096, seed=82)
    origin.resources["/e"] = Resource(body)
    url = origin.url("/e")
    first = await download(session, url, store)
    assert (await download(session, url, store)).outcome is Outcome.NOT_MODIFIED
    edit_in_place(store.absolute(first.path))
    third = await download(session, url, store)
    assert third.outcome is Outcome.STORED
    assert store.absolute(third.path).read_bytes() == body.bytes()


async def test_an_untouched_file_is_revalidated_by_a_later_process(
    session, origin: Origin, out_dir: Path
):
    # The check rides in the record, through the latest index that a new process derives.
    origin.resources["/e"] = Resource(Body(4096, seed=83))
    url = origin.url("/e")
    with Store(out_dir, writer_id="one") as store:
        first = await download(session, url, store)
    assert first.mtime_ns == store.absolute(first.path).stat().st_mtime_ns
    with Store(out_dir, writer_id="two") as store:
        entry = store.latest.get(url)
        assert entry is not None and entry.mtime_ns == first.mtime_ns
        second = await download(session, url, store)
    assert second.outcome is Outcome.NOT_MODIFIED
    assert origin.requests[-1].headers["if-none-match"] == '"v1"'


async def test_an_entry_from_before_mtimes_were_kept_is_revalidated_by_size(
    session, origin: Origin, store: Store
):
    origin.resources["/e"] = Resource(Body(4096, seed=84))
    url = origin.url("/e")
    await download(session, url, store)
    entry = store.latest.get(url)
    assert entry is not None
    store.latest.put(dataclasses.replace(entry, mtime_ns=None))
    second = await download(session, url, store)
    assert second.outcome is Outcome.NOT_MODIFIED


async def test_a_file_stored_again_by_another_writer_is_revalidated_not_refetched(
    session, origin: Origin, out_dir: Path
):
    # Each run of `crawl mirror --recrawl` writes under a new writer id. The second run read
    # the first one's record into the index; the third finds that (stale) entry there, and
    # must not take it as the last word: the second run's record says what is stored now.
    url = origin.url("/m")
    origin.resources["/m"] = Resource(Body(4096, seed=85))
    with Store(out_dir, writer_id="one") as store:
        await download(session, url, store)
    newer = Body(5000, seed=86)
    origin.resources["/m"] = Resource(newer, etag='"v2"')
    with Store(out_dir, writer_id="two") as store:
        changed = await download(session, url, store)
    assert changed.outcome is Outcome.STORED and changed.size == newer.size
    with Store(out_dir, writer_id="three") as store:
        third = await download(session, url, store)
    assert origin.requests[-1].headers.get("if-none-match") == '"v2"'
    assert third.outcome is Outcome.NOT_MODIFIED and third.sha256 == newer.sha256()
