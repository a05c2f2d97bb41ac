"""`download()`: one URL from the network into the output folder, resumable, with a record.

The life of a download, top to bottom:
  plan (resume a `.part` with Range + If-Range, or revalidate a stored file with
  If-None-Match / If-Modified-Since) → lock and open the `.part` → request → decide what the
  answer means (`storage.resume.decide`) → stream the body into the sink (and from there into
  the WARC) → verify and rename → record. Whatever happens, exactly one record is appended.

Works with any `ClientSession`-like object of the aiohttp client API (our `crawler.http`):
`session.get(url, headers=..., allow_redirects=...)` as an async context manager, and
`resp.content.iter_chunked(n)`; a `resp.content` with `readinto` (ours) fills the sink's own
buffers instead, so the body is copied once on its way to disk, and one that `can_splice` (ours,
on a plain connection) moves a large body from the socket into the file inside the kernel.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from crawler.http.decoders import SUPPORTED_ENCODINGS
from crawler.http.errors import ClientPayloadError
from storage.errors import DigestMismatchError, DownloadError, SizeMismatchError
from storage.exchange import fill_record, request_head, response_head
from storage.latest import LatestEntry, conditional_headers
from storage.paths import displaced_path
from storage.rate import RateLimit
from storage.records import FetchRecord, Outcome
from storage.resume import (
    Action,
    Decision,
    ResumePlan,
    ResumeState,
    content_coding,
    decide,
    int_header,
    load_state,
    plan_resume,
    remove_state,
    save_state,
)
from storage.sink import BodySink, FsyncPolicy, SinkResult
from storage.store import Store
from storage.warc import WarcRef, WarcWriter

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "SMALL_BODY_BYTES",
    "ProgressCallback",
    "download",
    "fetch_page",
]

DEFAULT_CHUNK_SIZE = 256 << 10
CHECKPOINT_BYTES = 64 << 20
# A body known to be this small gets no resume state file before it starts: a page costs one
# file creation, not three. Cut by an error or a cancellation it still gets one (see
# `_stop_on_error`); only a killed process loses it, and with it at most this much to re-fetch.
STATELESS_BODY_BYTES = 1 << 20
# A body known (Content-Length) to be at most this long is read whole into memory, then
# written, hashed and renamed at once (`_receive_small`), and handed to the caller of
# `fetch_page` (a crawler parses it for links without reading the file back).
SMALL_BODY_BYTES = 256 << 10
# A body with at least this much still to come, of known length, on a plain connection, is
# spliced from the socket into the file (see `_stream_spliced`), in moves of at most a step.
SPLICE_MIN_BYTES = 4 << 20
SPLICE_STEP_BYTES = 8 << 20
# Bodies of answers we do not store (errors, redirects) are archived up to this size.
UNSTORED_BODY_LIMIT = 8 << 20
# A payload up to this long is archived on the event loop's thread (about 0.2 ms for a 4 KiB
# page, gzip included); a longer one in a thread, as reading and gzipping it takes a while.
WARC_INLINE_BYTES = 64 << 10

# A refused body (`accept`) known to be at most this long is read and dropped, so its
# connection goes back to the pool: cheaper than a new connection; a longer one closes it.
DRAIN_REFUSED_BYTES = 64 << 10

ProgressCallback = Callable[[int, int | None], None]
"""Called as bytes arrive: (bytes of the file so far, expected total or None)."""


async def download(
    session: Any,
    url: str,
    store: Store,
    *,
    dest: Path | None = None,
    headers: Mapping[str, str] | None = None,
    expected_sha256: str | None = None,
    resume: bool = True,
    conditional: bool = True,
    max_size: int | None = None,
    allow_redirects: bool = True,
    timeout: Any = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    meta: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    rate_limit: RateLimit | None = None,
    accept: Callable[[str | None], bool] | None = None,
) -> FetchRecord:
    """Fetch `url` with `session` into `store` (at `dest`, default: its mirror path).

    Returns the record of a fetch that got an answer: `outcome` says whether a verified file is
    in place (STORED), the stored one is still current (NOT_MODIFIED), or why nothing was stored
    (HTTP_ERROR, NOT_STORED, TOO_LARGE). Raises `DownloadError` (record attached, cause chained)
    when the transfer failed: connection errors, timeouts, a short body, a sha256 mismatch, a
    `.part` locked by another download. A resumable `.part` is kept for the next attempt.

    `accept(content_type)`: a 2xx answer whose Content-Type it refuses is closed before its
    body, and recorded as SKIPPED (nothing stored, any `.part` of it dropped).
    """
    job = _Download(
        session,
        url,
        store,
        dest=dest,
        headers=headers,
        expected_sha256=expected_sha256,
        resume=resume,
        conditional=conditional,
        max_size=max_size,
        allow_redirects=allow_redirects,
        timeout=timeout,
        chunk_size=chunk_size,
        meta=meta,
        progress=progress,
        rate_limit=rate_limit,
        accept=accept,
    )
    return await job.run()


async def fetch_page(
    session: Any,
    url: str,
    store: Store,
    *,
    headers: Mapping[str, str] | None = None,
    max_size: int | None = None,
    allow_redirects: bool = True,
    meta: Mapping[str, Any] | None = None,
    rate_limit: RateLimit | None = None,
    accept: Callable[[str | None], bool] | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[FetchRecord, bytes | None]:
    """`download(session, url, store, ...)` for a crawler: also returns the stored body's bytes
    when it was small enough (`SMALL_BODY_BYTES`) to be held whole on its way to disk, so links
    are extracted without reading the file back; None otherwise (read `record.path`).

    Raises `DownloadError` exactly as `download` does.
    """
    job = _Download(
        session,
        url,
        store,
        dest=None,
        headers=headers,
        expected_sha256=None,
        resume=True,
        conditional=True,
        max_size=max_size,
        allow_redirects=allow_redirects,
        timeout=None,
        chunk_size=DEFAULT_CHUNK_SIZE,
        meta=meta,
        progress=progress,
        rate_limit=rate_limit,
        accept=accept,
    )
    record = await job.run()
    return record, job.body if record.outcome is Outcome.STORED else None


class _Download:
    def __init__(self, session: Any, url: str, store: Store, **options: Any) -> None:
        self.session = session
        self.url = url
        self.store = store
        self.dest: Path | None = options["dest"]
        self.headers: Mapping[str, str] = options["headers"] or {}
        self.expected_sha256: str | None = options["expected_sha256"]
        self.resume: bool = options["resume"]
        self.conditional: bool = options["conditional"]
        self.max_size: int | None = options["max_size"]
        self.allow_redirects: bool = options["allow_redirects"]
        self.timeout: Any = options["timeout"]
        self.chunk_size: int = options["chunk_size"]
        self.progress: ProgressCallback | None = options["progress"]
        self.rate_limit: RateLimit | None = options["rate_limit"]
        self.accept: Callable[[str | None], bool] | None = options["accept"]
        meta = dict(options["meta"] or {})
        self.record = FetchRecord(
            url=url, fetched_at=time.time(), writer=store.writer_id, meta=meta
        )
        self.state: ResumeState | None = None  # what the `.part`'s bytes are, when resumable
        self.entry: LatestEntry | None = None  # the stored version we revalidate
        self.receiving = False
        self.hops_archived = False  # the redirects the client followed are in the WARC
        self.state_on_disk = False  # whether a state file may sit beside the `.part`
        self.started = time.monotonic()
        self.last_response: Any = None
        self.body: bytes | None = None  # a small stored body, kept for `fetch_page`

    def _place(self) -> None:
        """Where the file goes; its folders exist afterwards (clashes resolved)."""
        self.final_path: str | Path
        if self.dest is None:
            self.final_path = self.store.tree.path_text_for(self.url)
            self.store.tree.ensure_parent(self.final_path)
        else:
            dest = Path(self.dest).absolute()
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.final_path = dest
        self.sink = BodySink(self.final_path, fsync=self.store.fsync)
        self.part_path = self.sink.part_path

    # --- the life of a download --------------------------------------------------------------

    async def run(self) -> FetchRecord:
        self.sink: BodySink | None = None
        try:
            self._place()
            if self.sink.open_new():
                # No `.part` was there, so no state either (see `_remove_state`): nothing to
                # resume, only perhaps a stored file to revalidate.
                plan = self._plan_revalidation()
            else:
                plan = self._plan()
                await self.sink.open(plan.offset)
            self.record.resumed_from = plan.offset
            if await self._exchange(plan):
                # The server would not continue the `.part`: once more, from zero.
                self.state = self.entry = None
                await self.sink.restart()
                self.record.resumed_from = 0
                await self._exchange(ResumePlan(0, {}))
        except asyncio.CancelledError:
            await self._stop_on_cancel()
            raise
        except Exception as exc:
            await self._stop_on_error(exc)
            self._finish(Outcome.FAILED)
            raise DownloadError(self.record) from exc
        return self.record

    def _plan(self) -> ResumePlan:
        # A `.part` is there, so a state file may be too, even one not read (resume=False) or
        # not readable: counted as on disk, it goes with the `.part` instead of outliving it.
        self.state_on_disk = True
        if self.resume:
            state = load_state(self.part_path)
            if state is not None:  # without a state, a `.part` is never resumed
                plan = plan_resume(state, _file_size(self.part_path), self.url)
                if plan.resuming:
                    self.state = state
                    return plan
        return self._plan_revalidation()

    def _plan_revalidation(self) -> ResumePlan:
        # Without anything at the mapped path there is no stored file to revalidate (its
        # displaced twin exists only beside a directory there, and directories stay): one
        # look in the file system costs far less than one in the latest index, and "not
        # stored yet" is the usual answer in a crawl.
        if self.conditional and os.access(self.final_path, os.F_OK):
            latest = self.store.latest
            entry = latest.get(self.url)
            if entry is not None and not self._still_stored(entry):
                # The index may be behind the logs (the file stored again by an earlier run,
                # a writer whose log a hit never made it read): asked again once it caught up,
                # rather than fetch the whole file on every re-crawl after it changed once.
                entry = latest.get(self.url, refresh=True)
            if entry is not None and self._still_stored(entry):
                self.entry = entry
        return ResumePlan(0, {})

    def _still_stored(self, entry: LatestEntry) -> bool:
        places = (self.final_path, displaced_path(self.final_path))
        wanted = {self.store.relative(p) for p in places}
        if entry.path not in wanted:
            return False
        try:
            found = os.stat(self.store.locate(entry.path))
        except OSError:
            return False
        if entry.mtime_ns is not None and found.st_mtime_ns != entry.mtime_ns:
            # Changed since it was stored (edited in place, say): a 304 would vouch for bytes
            # that are not the server's, so it is fetched whole instead.
            return False
        return found.st_size == entry.size

    async def _exchange(self, plan: ResumePlan) -> bool:
        """One request and its answer. True: ask again without Range."""
        kwargs: dict[str, Any] = {"headers": self._request_headers(plan)}
        kwargs["allow_redirects"] = self.allow_redirects
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        asked = time.monotonic()
        async with self.session.get(self.url, **kwargs) as resp:
            self.record.timings.ttfb = time.monotonic() - asked
            self.last_response = resp
            fill_record(self.record, resp)
            if resp.status == 304 and self.entry is not None:
                await self._not_modified(resp, self.entry)
                return False
            if self.accept is not None and 200 <= resp.status < 300:
                content_type = resp.headers.get("Content-Type")
                if not self.accept(content_type):
                    await _drain_if_small(resp)
                    await self._drop_part()
                    self.record.error = f"Content-Type {content_type} not accepted"
                    self._finish(Outcome.SKIPPED)
                    return False
            decision = decide(resp.status, resp.headers, plan.offset, self.state)
            if decision.reason:
                self.record.notes.append(decision.reason)
            if decision.action is Action.FETCH_AGAIN:
                return True
            if decision.action is Action.ALREADY_WHOLE:
                await self._already_whole(resp, decision, plan)
            elif decision.action is Action.NOT_A_BODY:
                await self._not_a_body(resp, plan)
            else:
                await self._receive(resp, decision, plan)
        return False

    def _request_headers(self, plan: ResumePlan) -> dict[str, str]:
        headers = dict(self.headers)
        if not any(k.lower() == "accept-encoding" for k in headers):
            # Range offsets count stored bytes; a decoded body could never be resumed.
            headers["Accept-Encoding"] = "identity"
        headers.update(plan.headers)
        if not plan.resuming and self.entry is not None:
            headers.update(conditional_headers(self.entry))
        return headers

    # --- answers -----------------------------------------------------------------------------

    async def _receive(self, resp: Any, decision: Decision, plan: ResumePlan) -> None:
        if decision.action is Action.RESTART:
            await self.sink.restart()
            self.record.resumed_from = 0
        decoded = self._decoded_encoding(resp)
        expected = _expected_size(resp, decision, self.sink.start_offset, decoded is not None)
        if self.max_size is not None and expected is not None and expected > self.max_size:
            await self._drop_part()
            self.record.error = f"Content-Length {expected} is over max_size {self.max_size}"
            await self._archive(resp, None, truncated="length")  # the head, and no payload
            self._finish(Outcome.TOO_LARGE)
            return
        # A continued body keeps the validators it was started with if the 206 omits them.
        before = self.state if decision.action is Action.APPEND else None
        self.state = ResumeState(
            url=self.url,
            etag=resp.headers.get("ETag") or (before.etag if before else None),
            last_modified=resp.headers.get("Last-Modified")
            or (before.last_modified if before else None),
            expected_length=expected,
            bytes_done=self.sink.size,
            # Also a coding passed through undecoded: the `.part` then holds coded bytes, which
            # a 206 of the identity body would be spliced onto.
            content_encoding=decoded or content_coding(resp.headers),
        )
        left = None if expected is None else expected - self.sink.start_offset
        if self.sink.start_offset > 0 or left is None or left > STATELESS_BODY_BYTES:
            # Resuming, the state is what lets a killed process resume again: however short
            # the rest, the `.part` before it may be long.
            self._save_state()
        else:
            self._remove_state()  # a stale one of an earlier, longer attempt
        self.receiving = True
        if expected is not None and expected - self.sink.start_offset <= SMALL_BODY_BYTES:
            await self._receive_small(resp, expected)
            return
        cut = await self._stream(resp, expected)
        await self.sink.flush()
        self.record.received = self.sink.size - self.sink.start_offset
        if cut:
            await self._keep_cut_body(resp)
            return
        if expected is not None and self.sink.size != expected:
            raise SizeMismatchError(str(self.part_path), expected, self.sink.size)
        ref = await self._archive(
            resp, (self.part_path, self.sink.start_offset, self.record.received)
        )
        self._remove_state()  # before the `.part` is renamed (an error saves it again)
        result = await self.sink.commit(
            expected_size=expected, expected_sha256=self.expected_sha256
        )
        self.receiving = False
        ref = await self._archive_whole(resp, result, ref)
        self._stored(result, ref)

    async def _receive_small(self, resp: Any, expected: int) -> None:
        """A body known to be small: read whole, then written, hashed and renamed in one go.

        No batches, lent buffers or thread hops: for a web page they cost more than its bytes.
        Whatever arrived before an error still goes to the `.part` (see `_stop_on_error`).
        """
        sink = self.sink
        want = expected - sink.start_offset
        pieces: list[bytes] = []
        got = 0
        try:
            while True:
                # One byte more than announced is asked for: a longer body is an error.
                piece = await resp.content.read(want - got + 1)
                if not piece:
                    break
                pieces.append(piece)
                got += len(piece)
                if self.rate_limit is not None:
                    await self.rate_limit.took(len(piece))
                if got > want:
                    break
        except BaseException:
            # What arrived is kept in the `.part`, as a streamed body's would be.
            try:
                sink.put(b"".join(pieces))
            except Exception as second:  # the disk may be failing too: keep the first error
                self.record.notes.append(f"while saving the partial body: {_one_line(second)}")
            raise
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        sink.put(data)
        self.record.received = got
        if self.progress is not None:
            self.progress(sink.size, expected)
        if sink.size != expected:
            raise SizeMismatchError(str(self.part_path), expected, sink.size)
        ref = await self._archive(resp, (self.part_path, sink.start_offset, got))
        self._remove_state()  # before the `.part` is renamed (an error saves it again)
        result = await sink.commit(expected_size=expected, expected_sha256=self.expected_sha256)
        self.receiving = False
        if sink.start_offset == 0:
            self.body = data
        ref = await self._archive_whole(resp, result, ref)
        self._stored(result, ref)

    async def _stream(self, resp: Any, expected: int | None) -> bool:
        """Body chunks into the sink. True when cut at max_size."""
        content = resp.content
        if (
            expected is not None
            and expected - self.sink.size >= SPLICE_MIN_BYTES
            and getattr(content, "can_splice", False)
        ):
            return await self._stream_spliced(content, expected)
        if hasattr(content, "readinto"):
            return await self._stream_into(content, expected)
        sink, limit = self.sink, self.max_size
        next_checkpoint = sink.size + CHECKPOINT_BYTES
        rate = self.rate_limit
        chunk_size = self.chunk_size if rate is None else min(self.chunk_size, rate.read_bytes)
        async for chunk in content.iter_chunked(chunk_size):
            if limit is not None and sink.size + len(chunk) > limit:
                await sink.write(chunk[: limit - sink.size])
                return True
            await sink.write(chunk)
            next_checkpoint = self._progressed(expected, next_checkpoint)
            if rate is not None:
                await rate.took(len(chunk))
        return False

    async def _stream_into(self, content: Any, expected: int | None) -> bool:
        """The body read straight into the sink's buffers (our client's `readinto`): the bytes
        are copied once, from the socket, and written and hashed from there."""
        sink, limit, rate = self.sink, self.max_size, self.rate_limit
        next_checkpoint = sink.size + CHECKPOINT_BYTES
        while True:
            room = await sink.room()
            if limit is not None:
                room = room[: limit - sink.size + 1]  # one byte past the limit tells a cut
            if rate is not None:
                room = room[: rate.read_bytes]
            count = await content.readinto(room)
            if not count:
                return False
            if limit is not None and sink.size + count > limit:
                await sink.wrote(limit - sink.size)
                return True
            await sink.wrote(count)
            next_checkpoint = self._progressed(expected, next_checkpoint)
            if rate is not None:
                await rate.took(count)

    async def _stream_spliced(self, content: Any, expected: int) -> bool:
        """The body moved from the socket into the `.part` inside the kernel (our client's
        `splice_into`), never copied through Python; the sink hashes it from the page cache.
        The length is known and within max_size (checked before), so it is never cut."""
        sink, rate = self.sink, self.rate_limit
        step = SPLICE_STEP_BYTES if rate is None else rate.read_bytes
        next_checkpoint = sink.size + CHECKPOINT_BYTES
        while True:
            upcoming = min(step, expected - sink.size)
            fd = await sink.splice_target(upcoming)
            count = await content.splice_into(fd, upcoming)
            if not count:
                return False
            await sink.spliced(count)
            next_checkpoint = self._progressed(expected, next_checkpoint)
            if rate is not None:
                await rate.took(count)

    def _progressed(self, expected: int | None, next_checkpoint: int) -> int:
        """After bytes went into the sink: tell the progress callback, and save the resume
        state once `next_checkpoint` is passed. Returns the next checkpoint."""
        size = self.sink.size
        if self.progress is not None:
            self.progress(size, expected)
        if size < next_checkpoint:
            return next_checkpoint
        self._save_state()
        return size + CHECKPOINT_BYTES

    async def _already_whole(self, resp: Any, decision: Decision, plan: ResumePlan) -> None:
        ref = await self._archive_unstored(resp)
        remove_state(self.part_path)  # before the `.part` is renamed
        self.state_on_disk = False
        result = await self.sink.commit(
            expected_size=decision.total_length, expected_sha256=self.expected_sha256
        )
        self._stored(result, ref)

    async def _not_modified(self, resp: Any, entry: LatestEntry) -> None:
        await self._drop_part()
        ref: WarcRef | None = None
        warc = self.store.warc
        if warc is not None:
            ref = await _write_warc(
                warc,
                warc.write_revisit,
                self.record.final_url or self.url,
                request_head(resp, self.url),
                response_head(resp),
                here=True,  # no payload to read
                payload_sha256=entry.sha256,
                refers_to_uri=entry.warc_target_uri or self.url,
                refers_to_date=entry.warc_date,
                refers_to_record=entry.warc_record_id,
            )
            self._note_warc(ref)
        # The stored version stays; its record refreshes the validators (see storage.latest_logs).
        self.record.etag = resp.headers.get("ETag") or entry.etag
        self.record.last_modified = resp.headers.get("Last-Modified") or entry.last_modified
        # Where the file is now: a URL below it may have displaced it since it was stored.
        self.record.path = self.store.relative(self.store.locate(entry.path))
        self.record.size = entry.size
        self.record.sha256 = entry.sha256
        self.record.mtime_ns = entry.mtime_ns
        self._finish(Outcome.NOT_MODIFIED)

    async def _not_a_body(self, resp: Any, plan: ResumePlan) -> None:
        await self._archive_unstored(resp)
        if plan.resuming:
            await self.sink.close()  # a 503 on a resume keeps the `.part` for the next try
        else:
            await self._drop_part()
        self._finish(Outcome.HTTP_ERROR if resp.status >= 400 else Outcome.NOT_STORED)

    async def _keep_cut_body(self, resp: Any) -> None:
        """Over max_size: what was read stays as `.part` (never resumed), recorded as cut."""
        await self._archive(
            resp, (self.part_path, self.sink.start_offset, self.record.received), truncated="length"
        )
        self.receiving = False
        await self.sink.close()
        remove_state(self.part_path)
        self.record.path = self.store.relative(self.part_path)
        self.record.size = self.sink.size
        self.record.error = f"body cut at max_size {self.max_size}"
        self._finish(Outcome.TOO_LARGE)

    # --- WARC ----------------------------------------------------------------------------------

    async def _archive(
        self, resp: Any, body: tuple[str | Path, int, int] | None, truncated: str | None = None
    ) -> WarcRef | None:
        """The exchange's request and response records; `body` None: the response head alone
        (a body refused unread, marked `truncated`)."""
        warc = self.store.warc
        if warc is None:
            return None
        if not self.hops_archived:
            self.hops_archived = True
            await self._archive_hops(warc, resp)
        ref = await _write_warc(
            warc,
            warc.write_exchange,
            self.record.final_url or self.url,
            request_head(resp, self.url),
            response_head(resp),
            body,
            here=body is None or body[2] <= WARC_INLINE_BYTES,
            truncated=truncated,
            decoded_encoding=self._decoded_encoding(resp),
        )
        self._note_warc(ref)
        return ref

    async def _archive_hops(self, warc: WarcWriter, resp: Any) -> None:
        """A response and request record for each redirect the client followed, before the
        final one's, so the URL asked for (and each hop's) can be found and replayed. A hop's
        body is there when the client read it (a small one, to keep its connection); else
        the head alone, marked truncated."""
        for hop in getattr(resp, "history", ()):
            body: bytes | None
            try:
                body = await hop.read()
            except Exception:  # released unread (large or of unknown length)
                body = None
            hop_length = hop.headers.get("Content-Length")
            truncated = None
            if body is None and hop_length != "0":
                truncated = "unspecified"
            await _write_warc(
                warc,
                warc.write_exchange,
                str(hop.url),
                request_head(hop, str(hop.url)),
                response_head(hop),
                body or b"",
                here=True,
                truncated=truncated,
                decoded_encoding=self._decoded_encoding(hop),
            )

    async def _archive_whole(
        self, resp: Any, result: Any, ref: WarcRef | None
    ) -> WarcRef | None:
        """After a resumed body (a 206 carried only its rest), the whole file as a resource
        record, which the fetch record (and a later revisit, by its digest) then names: the
        206 alone holds part of the payload, and the parts before it may be in no WARC (a
        killed process archived nothing). Otherwise `ref`, the response record, as it is."""
        warc = self.store.warc
        if warc is None or ref is None or self.sink is None or self.sink.start_offset == 0:
            return ref
        whole = await _write_warc(
            warc,
            warc.write_resource,
            self.record.final_url or self.url,
            resp.headers.get("Content-Type", ""),
            (result.path_text, 0, result.size),
            concurrent_to=ref.record_id,
            here=result.size <= WARC_INLINE_BYTES,
        )
        self._note_warc(whole)
        return whole

    async def _archive_unstored(self, resp: Any) -> WarcRef | None:
        """Archive a body we do not keep (error page, redirect) through a spool file."""
        if self.store.warc is None:
            return None
        self.store.tmp_dir.mkdir(parents=True, exist_ok=True)
        spool_path = self.store.tmp_dir / f"{os.urandom(16).hex()}.body"
        spool = BodySink(spool_path, fsync=FsyncPolicy.NEVER)
        await spool.open(0)
        try:
            limit = min(self.max_size or UNSTORED_BODY_LIMIT, UNSTORED_BODY_LIMIT)
            truncated = None
            async for chunk in resp.content.iter_chunked(self.chunk_size):
                if spool.size + len(chunk) > limit:
                    await spool.write(chunk[: limit - spool.size])
                    truncated = "length"
                    break
                await spool.write(chunk)
            await spool.flush()
            self.record.received = spool.size  # read (to be archived), though not stored
            return await self._archive(resp, (spool.part_path, 0, spool.size), truncated)
        finally:
            await spool.discard()

    def _decoded_encoding(self, resp: Any) -> str | None:
        """The Content-Encoding the client undid for us (so bytes on disk are decoded), if any.

        Only what the client really decodes counts: stacked ("gzip, gzip") or unknown
        ("x-custom") codings reach us as sent, and their archived head must keep saying so.
        """
        if not getattr(self.session, "auto_decompress", True):
            return None
        encoding = _last_content_encoding(resp.headers)
        if encoding is None or encoding.strip().lower() not in SUPPORTED_ENCODINGS:
            return None  # identity, or passed through undecoded (`make_decoder` gives None)
        return encoding

    def _note_warc(self, ref: WarcRef) -> None:
        self.record.warc_file = ref.file
        self.record.warc_record_id = ref.record_id

    # --- endings -------------------------------------------------------------------------------

    def _stored(self, result: SinkResult, ref: WarcRef | None) -> None:
        # The record is all the latest index needs (storage.latest_logs reads it from there).
        record = self.record
        record.path = self.store.relative(result.path_text)
        record.size = result.size
        record.sha256 = result.sha256
        record.mtime_ns = result.mtime_ns
        state = self.state
        if state is not None:
            record.etag, record.last_modified = state.etag, state.last_modified
        if ref is not None:
            record.warc_date = ref.date
        self._finish(Outcome.STORED)

    def _finish(self, outcome: Outcome) -> None:
        self.record.outcome = outcome
        self.record.timings.total = time.monotonic() - self.started
        self.store.records.append(self.record)

    async def _stop_on_error(self, exc: Exception) -> None:
        """Keep what can be resumed, archive what arrived, drop what cannot be trusted."""
        self.record.error = _one_line(exc)
        if self.sink is None or not self.sink.is_open:
            return
        hopeless = isinstance(exc, DigestMismatchError) or (
            isinstance(exc, SizeMismatchError) and exc.got > exc.expected
        )
        try:
            if self.receiving and not hopeless:
                await self.sink.flush()
                self.record.received = self.sink.size - self.sink.start_offset
                await self._archive_truncated(_truncation(exc))
        except Exception as second:  # the disk may be what failed; keep the first error
            self.record.notes.append(f"while saving the partial body: {_one_line(second)}")
        try:
            if hopeless or not self._resumable():
                await self._drop_part()
                return
            await self.sink.close()
        except Exception as second:
            self.sink.close_now()
            self.record.notes.append(f"while closing the partial body: {_one_line(second)}")
        if not hopeless:
            self._try_save_state()

    async def _archive_truncated(self, why: str) -> None:
        resp = self.last_response
        if resp is not None:
            body = (self.part_path, self.sink.start_offset, self.record.received)
            await self._archive(resp, body, truncated=why)

    async def _stop_on_cancel(self) -> None:
        """Cancelled (shutdown, lease lost): write what arrived, keep it resumable, record."""
        if self.sink is not None and self.sink.is_open:
            try:
                await self.sink.close()
            except BaseException:  # cancelled again, or the disk failed: close without waiting
                self.sink.close_now()
            # From the file: a splice moves bytes into it without passing through the sink.
            kept = _file_size(self.part_path)
            self.record.received = max(0, kept - self.sink.start_offset)
            if self._resumable():
                self._try_save_state()
        self.record.error = "cancelled"
        self._finish(Outcome.FAILED)

    def _resumable(self) -> bool:
        state = self.state
        return (
            state is not None
            and state.validator() is not None
            and not state.content_encoding
            and _file_size(self.part_path) > 0
        )

    def _save_state(self) -> None:
        if self.state is None:
            return
        self.state.bytes_done = self.sink.size
        if self.state.validator() is None or self.state.content_encoding:
            self._remove_state()
        else:
            save_state(self.part_path, self.state)
            self.state_on_disk = True

    def _try_save_state(self) -> None:
        """`_save_state` while already failing: a disk too full for the state file must not
        hide the first error, and the state file of an earlier save, if any, still holds."""
        try:
            self._save_state()
        except OSError as second:
            self.record.notes.append(f"while saving the resume state: {_one_line(second)}")

    def _remove_state(self) -> None:
        # Always before the `.part` itself goes (renamed or deleted): a state file then never
        # outlives its `.part`, so a download that finds no `.part` need not look for one.
        if self.state_on_disk:
            remove_state(self.part_path)
            self.state_on_disk = False

    async def _drop_part(self) -> None:
        self._remove_state()
        await self.sink.discard()


def _expected_size(resp: Any, decision: Decision, start: int, decoded: bool) -> int | None:
    """The whole file's length from the answer, or None when the body's length is unknown."""
    if decoded:
        return None  # Content-Length counts encoded bytes; the client hands us decoded ones
    if decision.action is Action.APPEND:
        if decision.total_length is not None:
            return decision.total_length
        length = int_header(resp.headers.get("Content-Length"))
        return None if length is None else start + length
    return decision.total_length


async def _drain_if_small(resp: Any) -> None:
    """Read and drop a body we will not keep when it is short (`DRAIN_REFUSED_BYTES`), so the
    connection is reused; a failure here only means it is closed instead, as a long one is."""
    length = resp.content_length
    if length is None or length > DRAIN_REFUSED_BYTES:
        return
    try:
        async for _ in resp.content.iter_any():
            pass
    except Exception:  # the record says why the body was refused, not why draining failed
        return


def _truncation(exc: BaseException) -> str:
    """WARC-Truncated for a body an error cut short (WARC 1.1 6.3.12): "time" for a timeout,
    "unspecified" for one that arrived but could not be read (undecodable, bad framing: the
    client keeps that cause), "disconnect" for the connection's end."""
    if isinstance(exc, TimeoutError):
        return "time"
    cause = exc.__cause__
    if isinstance(exc, ClientPayloadError) and cause is not None and not isinstance(cause, OSError):
        return "unspecified"
    return "disconnect"


def _last_content_encoding(headers: Any) -> str | None:
    """The Content-Encoding value the client decodes by: the last field when there are
    several, as crawler.http's parser keeps the last one."""
    getall = getattr(headers, "getall", None)
    if getall is None:
        value: str | None = headers.get("Content-Encoding")
        return value
    values = getall("Content-Encoding", ())
    return values[-1] if values else None


def _file_size(path: str | Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


async def _write_warc(
    warc: WarcWriter, write: Callable[..., WarcRef], *args: Any, here: bool, **kwargs: Any
) -> WarcRef:
    """`write(*args, **kwargs)` (a `warc` method): on this thread when `here` and no other
    thread is writing (a small record: a thread hop would cost more, see storage.warc), else
    in a thread, so the event loop never waits for the writer."""
    ref = warc.without_waiting(write, *args, **kwargs) if here else None
    if ref is None:
        ref = await asyncio.to_thread(write, *args, **kwargs)
    return ref


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
