"""`SqliteFrontier`: the embedded frontier, the default when no Redis URL is given.

The state is one SQLite file (WAL mode); several worker processes on one machine can share
it, each with its own `SqliteFrontier`, because every state change is one ``BEGIN IMMEDIATE``
transaction (see sqlite_store.py). A crawl stopped at any point, killed included, resumes
from the file: committed steps are kept, and leases of the dead process expire back into
their queues (or call `recover_leases()` when no other process of the job is alive).

Why a dedicated thread: sqlite3 calls block, on disk and on the file lock another process may
hold for a moment. Each `SqliteFrontier` owns one connection living on one worker thread
(a single-thread executor), so the event loop never waits on SQLite, the connection is never
shared between threads, and calls from many asyncio tasks are serialized in arrival order.
Acks from concurrent fetch tasks are group-committed into one transaction, so the thread hop
costs once per batch, not once per URL.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from .admission import Admitted
from .base import CommitResult, FrontierBase, Settle
from .errors import FrontierConfigError, FrontierError, FrontierUnavailable
from .settings import FrontierSettings, check_job_name
from .sqlite_store import SqliteStore
from .task import FinalRecord, FrontierStats, HostBacklog, Task

__all__ = ["SqliteFrontier"]

T = TypeVar("T")


class SqliteFrontier(FrontierBase):
    """The `Frontier` on a SQLite file. Build it with `await SqliteFrontier.open(path, job)`."""

    def __init__(
        self, store: SqliteStore, executor: ThreadPoolExecutor, job: str, settings: FrontierSettings
    ) -> None:
        super().__init__(job, settings)
        self._store = store
        self._executor = executor
        self.path = store.path

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

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args))
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                message = f"frontier file {self.path} stayed locked: {text}"
                raise FrontierUnavailable(message) from exc
            raise FrontierError(f"frontier file {self.path}: {text}") from exc
        except sqlite3.DatabaseError as exc:
            raise FrontierError(f"frontier file {self.path}: {exc}") from exc

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
            await self._call(self._store.close)
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

    async def clear(self) -> None:
        await self._call(self._store.clear)
        self._stored_seed_hosts.clear()
        self._admitter.scope.seed_hosts.clear()
        self._scope_revision = -1


def _open_store(
    path: str, settings: FrontierSettings, job: str
) -> tuple[SqliteStore, FrontierSettings]:
    try:
        store = SqliteStore(path, settings)
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
