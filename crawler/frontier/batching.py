"""Group commit: many concurrent single calls become one store call.

A worker's fetch tasks each `await frontier.ack(...)` on their own; while one batch is on the
wire the next ones queue up and go out together, so acks cost one round trip (Redis) or one
transaction (SQLite) per batch, not per task, without the caller batching anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Send submitted items to `flush` in batches; each submitter gets its own result."""

    def __init__(
        self, flush: Callable[[list[T]], Awaitable[Sequence[R]]], *, max_batch: int = 1024
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                results = await self._flush([item for item, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def drain(self) -> None:
        """Wait until everything submitted so far has been flushed."""
        while self._runner is not None and not self._runner.done():
            await asyncio.shield(self._runner)
