"""Fixtures for storage tests: our client's session, a local origin, an output folder."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from crawler.http import _splice
from storage import Store
from tests.storage.origin import Origin

# The one place that names the HTTP client storage is tested with.
SESSION_MODULE = "crawler.http"


def make_session(**kwargs: Any) -> Any:
    return importlib.import_module(SESSION_MODULE).ClientSession(**kwargs)


@pytest.fixture
async def session() -> AsyncIterator[Any]:
    async with make_session() as client:
        yield client


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    server = Origin()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def store(out_dir: Path) -> Iterator[Store]:
    with Store(out_dir, writer_id="test") as opened:
        yield opened


@pytest.fixture
def warc_store(out_dir: Path) -> Iterator[Store]:
    with Store(out_dir, writer_id="test", warc=True) as opened:
        yield opened


@pytest.fixture
def kernel_moved(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes each splice thread moved, so a test can tell the kernel path was taken."""
    moved: list[int] = []
    real = _splice.BodyMove._move

    def counting(self: _splice.BodyMove) -> _splice.MoveResult:
        result = real(self)
        moved.append(result.moved)
        return result

    monkeypatch.setattr(_splice.BodyMove, "_move", counting)
    return moved
