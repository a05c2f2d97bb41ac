"""Another connection holding a SQLite file's write lock, as another process would."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["write_lock_held"]


@contextmanager
def write_lock_held(path: Path | str) -> Iterator[threading.Event]:
    """Hold the write lock of `path` (BEGIN IMMEDIATE on a connection of its own) until the
    event yielded is set, or the block ends."""
    release, held = threading.Event(), threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            held.set()
            release.wait(30)
            other.execute("COMMIT")
        finally:
            other.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(30)
        yield release
    finally:
        release.set()
        holder.join(30)
