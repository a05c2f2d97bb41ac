"""What both backends share: turning API calls into admitted rows and settle items.

A backend implements a handful of storage steps (`_commit`, `_lease`, `_renew`, the scope
revision, ...); this class owns the policy around them: canonicalization and scope of links,
retry delays, group commit of acks, and the tasks this process holds leases on (their depth and
URL are needed to admit the links found on them).
"""

from __future__ import annotations

import abc
import enum
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from .admission import Admitted, Admitter
from .batching import GroupCommit
from .settings import FrontierSettings
from .task import Ack, AddResult, Link, Outcome, Task

__all__ = ["CommitResult", "FrontierBase", "Settle", "SettleKind"]

HOST_WIDE_STATUSES = frozenset({429, 503})
SCOPE_REFRESH_SECONDS = 2.0


class SettleKind(enum.StrEnum):
    """How a leased task leaves its lease; the values are the codes the stores use."""

    DONE = "D"
    SKIPPED = "S"
    FAILED = "F"
    RETRY = "R"  # this task waits `delay`, its host does not
    BACKOFF = "H"  # the whole host waits (429/503); delay < 0: the host's next backoff step
    RELEASE = "L"  # back to the queue untouched


@dataclass(slots=True)
class Settle:
    fp: bytes
    kind: SettleKind
    reason: str = ""
    delay: float = 0.0
    parent: Task | None = None
    links: Sequence[str | Link] = ()
    attempts: int = -1  # of the lease being settled, when known (tells leases apart)

    @property
    def id(self) -> str:
        return self.fp.hex()


@dataclass(slots=True)
class CommitResult:
    added: int = 0
    duplicates: int = 0
    settled: list[bool] = field(default_factory=list)


def task_fp(task: str | Task) -> bytes:
    task_id = task.id if isinstance(task, Task) else task
    try:
        fp = bytes.fromhex(task_id)
    except (TypeError, ValueError):
        fp = b""
    if len(fp) != 16:
        raise ValueError(f"not a task id (32 hex digits): {task_id!r}")
    return fp


class FrontierBase(abc.ABC):
    """The `Frontier` API on top of a backend's storage steps."""

    def __init__(self, job: str, settings: FrontierSettings) -> None:
        self.job = job
        self.settings = settings
        self._admitter = Admitter(settings)
        self._scope_revision = -1
        self._scope_checked = float("-inf")
        self._stored_seed_hosts: set[str] = set()
        self._leased: dict[str, Task] = {}
        self._settler: GroupCommit[Settle, bool] = GroupCommit(self._settle)
        self._before_settle: list[Callable[[], object]] = []
        self._closed = False

    # ---- storage steps a backend provides ------------------------------------------------

    @abc.abstractmethod
    async def _commit(
        self, adds: list[Admitted], settles: list[Settle], out_of_scope: int
    ) -> CommitResult:
        """Atomically (per partition): enqueue unseen `adds`, apply `settles` in order."""

    @abc.abstractmethod
    async def _lease(self, n: int, worker: str) -> list[Task]:
        """Reclaim expired leases and due retries, then lease up to n tasks."""

    @abc.abstractmethod
    async def _renew(self, leases: list[tuple[bytes, int]]) -> set[str]:
        """Extend live leases given as (fingerprint, attempts or -1 when unknown); the ids of
        those that were still leased (with that many attempts: the same lease)."""

    @abc.abstractmethod
    async def _add_seed_hosts(self, hosts: set[str]) -> None:
        """Remember seed hosts for the job's default scope and bump its scope revision."""

    @abc.abstractmethod
    async def _load_scope(self, known_revision: int) -> tuple[int, set[str] | None]:
        """(current revision, seed hosts when the revision differs from `known_revision`)."""

    @abc.abstractmethod
    async def _close_store(self) -> None:
        """Release the connection or thread of the store."""

    # ---- the API -------------------------------------------------------------------------

    async def add(self, seeds: Iterable[str | Link]) -> AddResult:
        if isinstance(seeds, str | Link):
            seeds = [seeds]
        await self._refresh_scope(force=True)
        admitted, rejected, hosts = self._admitter.seeds(seeds)
        new_hosts = hosts - self._stored_seed_hosts
        if self.settings.scope.follows_seeds and new_hosts:
            await self._add_seed_hosts(new_hosts)
            self._stored_seed_hosts.update(new_hosts)
        result = await self._commit(admitted, [], len(rejected))
        return AddResult(added=result.added, duplicates=result.duplicates, rejected=rejected)

    async def lease(self, n: int, worker: str) -> list[Task]:
        if n <= 0:
            return []
        tasks = await self._lease(n, worker)
        if len(self._leased) > 4 * n + 10_000:
            self._forget_stale_leases()
        for task in tasks:
            self._leased[task.id] = task
        return tasks

    async def renew(self, task_ids: Iterable[str | Task]) -> set[str]:
        leases = [(task_fp(task), self._attempts_of(task)) for task in task_ids]
        if not leases:
            return set()
        return await self._renew(leases)

    async def ack(
        self,
        task: str | Task,
        outcome: Outcome = Outcome.DONE,
        links: Sequence[str | Link] = (),
        *,
        reason: str = "",
    ) -> bool:
        return await self._settler.submit(self._ack_item(task, outcome, links, reason))

    async def ack_many(self, acks: Iterable[Ack]) -> list[bool]:
        items = [self._ack_item(a.task, a.outcome, a.links, a.reason) for a in acks]
        return await self._settle(items) if items else []

    async def retry(
        self,
        task: str | Task,
        delay: float | None = None,
        reason: str = "",
        *,
        status: int | None = None,
    ) -> bool:
        fp = task_fp(task)
        cap = self.settings.backoff_max
        if status in HOST_WIDE_STATUSES:
            wait = -1.0 if delay is None else min(max(delay, 0.0), cap)
            item = Settle(fp, SettleKind.BACKOFF, reason or f"HTTP {status}", wait)
        else:
            if delay is None:
                delay = min(cap, self.settings.backoff_base * 2 ** self._attempts_of(task, 0))
                delay *= random.uniform(0.5, 1.0)  # jitter: spread retries of a burst
            item = Settle(fp, SettleKind.RETRY, reason, min(max(delay, 0.0), cap))
        item.attempts = self._attempts_of(task)
        return await self._settler.submit(item)

    async def fail(self, task: str | Task, reason: str) -> bool:
        item = Settle(task_fp(task), SettleKind.FAILED, reason)
        item.attempts = self._attempts_of(task)
        return await self._settler.submit(item)

    async def release(self, tasks: Iterable[str | Task]) -> int:
        items = [
            Settle(task_fp(t), SettleKind.RELEASE, "released", attempts=self._attempts_of(t))
            for t in tasks
        ]
        return sum(await self._settle(items)) if items else 0

    def before_settling(self, hook: Callable[[], object]) -> None:
        """`hook()` runs before every commit that ends leases (see `Frontier`)."""
        hook_list = self._before_settle
        if hook not in hook_list:
            hook_list.append(hook)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._settler.drain()
        finally:
            await self._close_store()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ---- helpers -------------------------------------------------------------------------

    def _ack_item(
        self, task: str | Task, outcome: Outcome | str, links: Sequence[str | Link], reason: str
    ) -> Settle:
        fp = task_fp(task)
        kind = SettleKind.SKIPPED if Outcome(outcome) is Outcome.SKIPPED else SettleKind.DONE
        parent = task if isinstance(task, Task) else self._leased.get(fp.hex())
        if links and parent is None:
            raise ValueError(
                f"links for task {fp.hex()} need the Task (this frontier did not lease it)"
            )
        return Settle(fp, kind, reason, 0.0, parent, links, self._attempts_of(task))

    def _attempts_of(self, task: str | Task, unknown: int = -1) -> int:
        """Attempts of the lease this process holds on `task` (`unknown` when it holds none)."""
        if isinstance(task, Task):
            return task.attempts
        known = self._leased.get(task)
        return known.attempts if known is not None else unknown

    async def _settle(self, items: list[Settle]) -> list[bool]:
        adds: list[Admitted] = []
        out_of_scope = 0
        if any(item.links for item in items):
            await self._refresh_scope()
            for item in items:
                if item.links and item.kind is SettleKind.DONE and item.parent is not None:
                    admitted, rejected = self._admitter.links(item.parent, item.links)
                    adds.extend(admitted)
                    out_of_scope += len(rejected)
        for hook in self._before_settle:
            hook()  # what must be on disk before these tasks are over (see `before_settling`)
        result = await self._commit(adds, items, out_of_scope)
        for item in items:
            self._leased.pop(item.id, None)
        return result.settled

    async def _refresh_scope(self, *, force: bool = False) -> None:
        """Pick up seed hosts other processes added (checked at most every 2 s per process)."""
        if not self.settings.scope.follows_seeds:
            return
        now = time.monotonic()
        if not force and now - self._scope_checked < SCOPE_REFRESH_SECONDS:
            return
        revision, hosts = await self._load_scope(self._scope_revision)
        self._scope_checked = now
        if hosts is not None:
            self._admitter.scope.add_seed_hosts(hosts)
            self._stored_seed_hosts.update(hosts)
        self._scope_revision = revision

    def _forget_stale_leases(self) -> None:
        cutoff = time.time() - 2 * self.settings.lease_seconds
        for task_id in [k for k, t in self._leased.items() if t.deadline < cutoff]:
            del self._leased[task_id]
