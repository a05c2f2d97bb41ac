"""`SqliteFrontier`: the embedded frontier, the default when no Redis URL is given.

The state is one SQLite file (WAL mode); several worker processes on one machine can share
it, each with its own `SqliteFrontier`, because every state change is one ``BEGIN IMMEDIATE``
transaction (see sqlite_store.py). A crawl stopped at any point, killed included, resumes
from the file: committed steps are kept, and leases of the dead process expire back into
their queues (or call `recover_leases()` when no other process of the job is alive).

Where the SQL runs: on the event loop's own thread, unless it would have to wait. A step is
a fraction of a millisecond of Python and SQLite, and sending it to a thread costs more than
that: every statement lets go of the GIL, the loop takes it, and the step waits for it back,
each handover a futex wake (a crawl's worker made eight of them per page; running the steps on
the loop made the whole crawl about 10% faster). What can block goes to the one thread of a
single-thread executor instead, so the loop never sleeps on SQLite:
  - a write step that finds the write lock held by another process (tried once without
    waiting, `WriteLockBusy`), which the thread then waits for;
  - the WAL checkpoints, which sync the file: automatic checkpoints are off on this connection,
    and one is sent to the thread every `CHECKPOINT_EVERY` steps;
  - closing, which checkpoints too.
While anything sent to the thread is unfinished, every later step goes there as well, behind
it: steps keep their order, and the connection is never used by two threads at once. Acks
from concurrent fetch tasks are group-committed into one transaction either way.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from .admission import Admitted
from .base import CommitResult, FrontierBase, Settle
from .errors import FrontierConfigError, FrontierError, FrontierUnavailable
from .settings import FrontierSettings, check_job_name
from .sqlite_store import SqliteStore, WriteLockBusy
from .task import FinalRecord, FrontierStats, HostBacklog, Task

__all__ = ["SqliteFrontier"]

T = TypeVar("T")
log = logging.getLogger("crawl.frontier")

# Steps between two WAL checkpoints (each step writes a few pages; SQLite's own automatic
# checkpoint comes at 1,000 pages).
CHECKPOINT_EVERY = 64


class SqliteFrontier(FrontierBase):
    """The `Frontier` on a SQLite file. Build it with `await SqliteFrontier.open(path, job)`."""

    def __init__(
        self, store: SqliteStore, executor: ThreadPoolExecutor, job: str, settings: FrontierSettings
    ) -> None:
        super().__init__(job, settings)
        self._store = store
        self._executor = executor
        self.path = store.path
        # The last call sent to the thread: until it is done, every call goes there too.
        self._on_thread: Future[object] | None = None
        self._steps_since_checkpoint = 0

    @classmethod
    async def open(
        cls, path: str | Path, job: str, settings: FrontierSettings | None = None
    ) -> SqliteFrontier:
        """Open or create the frontier file; a file holds one job (another name is an error)."""
        check_job_name(job)
        wanted = settings or FrontierSettings()
        if wanted.dedupe != "exact":
            raise FrontierConfigError(
                "the SQLite frontier dedupes exactly (its task table keeps every fingerprint); "
                "dedupe='bloom' needs the Redis frontier"
            )
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frontier-sqlite")
        loop = asyncio.get_running_loop()
        try:
            store, stored = await loop.run_in_executor(
                executor, _open_store, str(file), wanted, job
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        merged = stored if settings is None else wanted.merged_with_stored(stored)
        store.settings = merged
        return cls(store, executor, job, merged)

    async def _call(self, fn: Callable[..., T], *args: object, inline: bool = True) -> T:
        """`fn(*args)` on the store: here when nothing waits on the thread and it need not
        wait itself (see the module docstring), else on the thread, in order."""
        try:
            if inline and self._thread_idle():
                store = self._store
                store.waits = False
                try:
                    result = fn(*args)
                except WriteLockBusy:
                    pass  # another process writes: wait for it on the thread
                else:
                    self._count_step()
                    return result
                finally:
                    store.waits = True
            return await asyncio.wrap_future(self._send(fn, *args))
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                message = f"frontier file {self.path} stayed locked: {text}"
                raise FrontierUnavailable(message) from exc
            raise FrontierError(f"frontier file {self.path}: {text}") from exc
        except sqlite3.DatabaseError as exc:
            raise FrontierError(f"frontier file {self.path}: {exc}") from exc

    def _thread_idle(self) -> bool:
        return self._on_thread is None or self._on_thread.done()

    def _send(self, fn: Callable[..., T], *args: object) -> Future[T]:
        future = self._executor.submit(fn, *args)
        self._on_thread = future  # type: ignore[assignment]
        return future

    def _count_step(self) -> None:
        self._steps_since_checkpoint += 1
        if self._steps_since_checkpoint >= CHECKPOINT_EVERY:
            self._steps_since_checkpoint = 0
            self._send(self._store.checkpoint).add_done_callback(_log_checkpoint_error)

    # ---- storage steps -------------------------------------------------------------------

    async def _commit(
        self, adds: list[Admitted], settles: list[Settle], out_of_scope: int
    ) -> CommitResult:
        return await self._call(self._store.commit, adds, settles, out_of_scope)

    async def _lease(self, n: int, worker: str) -> list[Task]:
        return await self._call(self._store.lease, n, worker)

    async def _renew(self, leases: list[tuple[bytes, int]]) -> set[str]:
        renewed, deadline = await self._call(self._store.renew, leases)
        for task_id in renewed:
            if task_id in self._leased:
                self._leased[task_id].deadline = deadline
        return renewed

    async def _add_seed_hosts(self, hosts: set[str]) -> None:
        await self._call(self._store.add_seed_hosts, hosts)

    async def _load_scope(self, known_revision: int) -> tuple[int, set[str] | None]:
        return await self._call(self._store.load_scope, known_revision)

    async def _close_store(self) -> None:
        try:
            await self._call(self._store.close, inline=False)  # closing checkpoints: it syncs
        finally:
            self._executor.shutdown(wait=True)

    # ---- the rest of the API -------------------------------------------------------------

    async def stats(self) -> FrontierStats:
        return await self._call(self._store.stats)

    async def is_finished(self) -> bool:
        return await self._call(self._store.is_finished)

    async def pause(self) -> None:
        await self._call(self._store.set_meta, "paused", b"1")

    async def resume(self) -> None:
        await self._call(self._store.set_meta, "paused", b"0")

    async def is_paused(self) -> bool:
        return await self._call(self._store.meta, "paused") == b"1"

    async def set_host_delay(self, host: str, seconds: float) -> None:
        seconds = min(max(seconds, 0.0), self.settings.max_crawl_delay)
        await self._call(self._store.set_host_delay, host, seconds)

    async def robots_get(self, origin: str) -> bytes | None:
        return await self._call(self._store.robots_get, origin)

    async def robots_put(self, origin: str, entry: bytes, ttl: float) -> None:
        await self._call(self._store.robots_put, origin, entry, ttl)

    async def robots_claim(self, origin: str, holder: str, ttl: float) -> bool:
        return await self._call(self._store.robots_claim, origin, holder, ttl)

    async def failures(self, limit: int = 1000) -> list[FinalRecord]:
        return await self._call(self._store.failures, limit)

    async def busiest_hosts(self, n: int = 10) -> list[HostBacklog]:
        return await self._call(self._store.busiest_hosts, n)

    async def recover_leases(self) -> int:
        return await self._call(self._store.recover_leases)

    async def save_settings(self) -> FrontierSettings:
        before = await self._call(self._store.swap_meta, "settings", self.settings.pack())
        return FrontierSettings.unpack(before) if isinstance(before, bytes) else self.settings

    async def clear(self) -> None:
        await self._call(self._store.clear)
        self._stored_seed_hosts.clear()
        self._admitter.scope.seed_hosts.clear()
        self._scope_revision = -1


def _log_checkpoint_error(future: Future[None]) -> None:
    # Not fatal: the WAL only grows until a later checkpoint (or the next process) succeeds.
    if not future.cancelled() and future.exception() is not None:
        log.warning("frontier WAL checkpoint failed: %s", future.exception())


def _open_store(
    path: str, settings: FrontierSettings, job: str
) -> tuple[SqliteStore, FrontierSettings]:
    try:
        store = SqliteStore(path, settings, autocheckpoint=False)
    except sqlite3.DatabaseError as exc:
        raise FrontierConfigError(f"cannot use {path} as a frontier file: {exc}") from exc
    try:
        held = store.set_meta_if_missing("job", job)
        if held != job:
            raise FrontierConfigError(
                f"frontier file {path} holds job {held!r}, not {job!r} (use --job {held})"
            )
        stored = store.set_meta_if_missing("settings", settings.pack())
        if not isinstance(stored, bytes):
            raise FrontierConfigError(f"frontier file {path} has no valid settings")
        return store, FrontierSettings.unpack(stored)
    except BaseException:
        store.close()
        raise
