"""A small tmpfs mounted over a test's folder, to fill up on purpose (disk-full tests).

    with small_disk(workdir / "out", 6 << 20) as disk:   # 6 MiB
        ...                                             # writes end in ENOSPC
        disk.grow(64 << 20)                             # "free space": contents kept

Mounting needs root (CI runs the suite as root); elsewhere the test is skipped, and under
CI=true it fails instead (see tests/support/binaries.py).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.binaries import require_binary, require_feature


@dataclass
class SmallDisk:
    path: Path

    def grow(self, size: int) -> None:
        """Make room: the same mount, `size` bytes big, with what it holds kept."""
        _mount("-o", f"remount,size={size}", "tmpfs", self.path)

    def read_only(self) -> None:
        """Remount it read-only (only while no file on it is open for writing)."""
        _mount("-o", "remount,ro", "tmpfs", self.path)


@contextmanager
def small_disk(path: Path, size: int) -> Iterator[SmallDisk]:
    require_feature(os.geteuid() == 0, "mounting a tmpfs needs root")
    require_binary("mount")
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", path)
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def _mount(*args: str | Path) -> None:
    done = subprocess.run(["mount", *map(str, args)], capture_output=True, text=True)
    require_feature(done.returncode == 0, f"mount {' '.join(map(str, args))}: {done.stderr}")
