"""The first worker of `crawl run`, forked before the command line is even parsed.

A worker process spends about 0.1 s importing what it needs (asyncio, the client, the frontier,
storage) before it fetches anything, and `crawl run` used to start it only once its own imports,
the parsing of its options and its settings were done: on a crawl of a few thousand pages that
start-up was a tenth of the whole run. So `crawl run` (and `mirror`) forks one process first
thing (`fork_spare`, from `crawler.cli`), before importing click. The spare imports the worker's
modules while the command parses its options and seeds the job, then waits for its orders on a
pipe. The supervisor adopts it as worker 0 (`take_spare`) and, when the job is seeded, sends it
the environment a spawned worker would have had (`Spare.start`); it then runs exactly what
`python -m workers.process` runs. Nothing sent (the command failed, `--workers 0`, `--help`):
it sees the pipe close and exits 0 without a word.

Only where forking a bare interpreter is safe and cheap (Linux, no threads yet). A worker that
crashes is restarted the usual way, as a new `python -m workers.process`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import traceback
from collections.abc import Mapping

__all__ = ["ForkedProcess", "Spare", "fork_spare", "take_spare"]

_spare: Spare | None = None


class ForkedProcess:
    """The part of `subprocess.Popen`'s interface the supervisor uses, for a forked child."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            _pid, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)


class Spare:
    """A forked worker waiting for its environment (parent side)."""

    def __init__(self, pid: int, orders_fd: int) -> None:
        self.process = ForkedProcess(pid)
        self._orders_fd: int | None = orders_fd

    def start(self, env: Mapping[str, str]) -> None:
        """Let it work with `env` added to its environment (as a spawned worker's would be)."""
        fd, self._orders_fd = self._orders_fd, None
        if fd is None:
            raise RuntimeError("the spare worker was already started or let go")
        try:
            # A spare that died meanwhile shows up as a crashed worker; the supervisor restarts it.
            with contextlib.suppress(BrokenPipeError):
                os.write(fd, json.dumps(dict(env)).encode())
        finally:
            os.close(fd)

    def let_go(self) -> None:
        """Not needed after all: it exits quietly; wait for it."""
        fd, self._orders_fd = self._orders_fd, None
        if fd is not None:
            os.close(fd)
            with contextlib.suppress(ChildProcessError):
                self.process.wait()


def fork_spare() -> Spare | None:
    """Fork the spare worker now (see the module docstring); None where that is not done."""
    global _spare
    if _spare is not None:
        return _spare
    if sys.platform != "linux" or threading.active_count() > 1:
        return None  # forking a process that has threads can leave a lock held in the child
    orders_read, orders_write = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(orders_write)
        _spare_main(orders_read, parent)  # never returns
    os.close(orders_read)
    _spare = Spare(pid, orders_write)
    return _spare


def take_spare() -> Spare | None:
    """The spare this process forked, for the supervisor to adopt (once)."""
    global _spare
    spare, _spare = _spare, None
    return spare


def _spare_main(orders_fd: int, parent: int) -> None:
    """The child: import the worker, wait for orders, work like `python -m workers.process`."""
    code = 1
    try:
        # As the supervisor's spawned children: a group of their own (a terminal's Ctrl-C
        # reaches only the supervisor), and SIGTERM when the supervisor dies.
        os.setpgid(0, 0)
        from workers.supervisor import die_with_parent

        die_with_parent()
        if os.getppid() != parent:
            code = 0  # the supervisor is gone already
            return
        from workers import process  # the imports this process was forked early for

        orders = _read_to_end(orders_fd)
        if not orders:
            code = 0
            return
        os.environ.update(json.loads(orders))
        process.main()  # ends the process itself
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
        if stop.code is not None and not isinstance(stop.code, int):
            print(stop.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _read_to_end(fd: int) -> bytes:
    pieces = []
    try:
        while piece := os.read(fd, 1 << 16):
            pieces.append(piece)
    finally:
        os.close(fd)
    return b"".join(pieces)
