"""Run N worker processes on one machine, restart the ones that crash, stop them on a signal.

Each child is a `crawl worker` process with the same settings, so one machine with `--workers 4`
behaves exactly like four machines each running `crawl worker`: the frontier is the only thing
they share. Children exit 0 when the frontier says the job is finished.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from workers.spare import Spare

log = logging.getLogger("crawl.supervisor")

# Exit codes a worker uses (see workers/process.py).
EXIT_FINISHED = 0
EXIT_INTERRUPTED = 130
# The output folder cannot be written (disk full, read-only): the worker handed its URLs back
# and stopped; the others would fail alike, so they are stopped too (EX_TEMPFAIL, sysexits.h).
EXIT_DISK_FAILED = 75
# The frontier failed for good (its job was wiped from Redis, refused commands): the worker
# said why and stopped; the others would meet the same, and a restart would only join an
# empty job and call it finished, so they are stopped too (EX_UNAVAILABLE, sysexits.h).
EXIT_FRONTIER_FAILED = 69

# A child that keeps crashing faster than this is given up on, so a broken install
# does not become an endless restart loop.
MAX_RESTARTS = 20
RESTART_BACKOFF_S = 0.5
POLL_S = 0.05
PR_SET_PDEATHSIG = 1
# A child started behind a gate reads one byte from this file descriptor before it works.
START_FD_ENV = "CRAWL_START_FD"
GATE_OPEN = b"g"


def wait_at_gate() -> bool:
    """In a child: wait until the supervisor opens the gate (True), or closed it (False).
    True at once for a child started without one."""
    fd = os.environ.pop(START_FD_ENV, None)
    if fd is None:
        return True
    try:
        return os.read(int(fd), 1) == GATE_OPEN
    finally:
        os.close(int(fd))


def die_with_parent() -> None:
    """In the child before exec: SIGTERM when the supervisor dies (Linux), so a killed
    `crawl run` leaves no worker running without it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class _Process(Protocol):
    """What the supervisor needs of a child: `subprocess.Popen`, or `ForkedProcess`."""

    pid: int

    def poll(self) -> int | None: ...
    def wait(self) -> int: ...
    def send_signal(self, signum: int) -> None: ...


@dataclass(slots=True)
class _Child:
    index: int
    process: _Process
    restarts: int = 0
    started: float = field(default_factory=time.monotonic)
    # Readable once the process has exited (Linux), so the supervisor wakes at once.
    pidfd: int | None = None

    def close_pidfd(self) -> None:
        fd, self.pidfd = self.pidfd, None
        if fd is not None:
            os.close(fd)


def _open_pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None  # not Linux 5.3+: the supervisor polls instead


def _wait_for_an_exit(children: list[_Child], timeout: float) -> None:
    """Sleep `timeout`, or less when one of `children` exits first."""
    fds = [child.pidfd for child in children if child.pidfd is not None]
    if not fds or len(fds) < len(children):
        time.sleep(timeout)
        return
    select.select(fds, [], [], timeout)


class Supervisor:
    """Start `count` copies of `command`, keep them running until each exits cleanly."""

    def __init__(
        self,
        command: Sequence[str],
        count: int,
        *,
        env: Mapping[str, str] | None = None,
        on_tick: Callable[[], object] | None = None,
        spare: Spare | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("workers must be at least 1")
        self.command = list(command)
        self.count = count
        self.env = dict(env or {})
        self.on_tick = on_tick
        # A worker forked early (workers.spare) that becomes worker 0 instead of a new process.
        self._spare = spare
        self._children: dict[int, _Child] = {}
        self._stopping = False
        self._signals_seen = 0
        self._disk_failed = False
        self._frontier_failed = False

    def _child_env(self, index: int) -> dict[str, str]:
        return {**self.env, "CRAWL_WORKER_INDEX": str(index)}

    def _adopt_spare(self) -> Spare | None:
        """The spare as worker 0 (not started yet), when there is one."""
        spare, self._spare = self._spare, None
        if spare is not None:
            self._children[0] = _Child(0, spare.process, pidfd=_open_pidfd(spare.process.pid))
        return spare

    def _spawn(self, index: int, restarts: int = 0, gate: int | None = None) -> _Child:
        env = dict(os.environ, **self._child_env(index))
        if gate is not None:
            env[START_FD_ENV] = str(gate)
        # Children get a process group of their own: a terminal's Ctrl-C reaches only the
        # supervisor, which passes one SIGTERM on. Reaching them too, it would count as their
        # second signal and make them exit at once instead of handing their leases back.
        process = subprocess.Popen(
            self.command,
            env=env,
            process_group=0,
            preexec_fn=die_with_parent,
            pass_fds=() if gate is None else (gate,),
        )
        child = _Child(index, process, restarts, pidfd=_open_pidfd(process.pid))
        self._children[index] = child
        return child

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals_seen += 1
        self._stop_children()

    def _stop_children(self) -> None:
        self._stopping = True
        for child in self._children.values():
            if child.process.poll() is None:
                try:
                    # First signal: let workers hand back their leases; second: stop now.
                    child.process.send_signal(
                        signal.SIGTERM if self._signals_seen == 1 else signal.SIGKILL
                    )
                except ProcessLookupError:
                    pass

    def run(self, before: Callable[[], object] | None = None) -> int:
        """Block until every child is done; returns 0 when finished, 130 when interrupted,
        75 when a worker could not write the output folder, 69 when the frontier failed for
        good (the rest were stopped, in both cases).

        With `before`, the children are started first and wait at a gate while `before` runs
        (seeding the job): their start-up overlaps it. If `before` raises, the children are
        let go with nothing to do, and the exception propagates once they have exited.
        """
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            if before is None:
                spare = self._adopt_spare()
                if spare is not None:
                    spare.start(self._child_env(0))
                for index in range(len(self._children), self.count):
                    self._spawn(index)
            else:
                self._run_gated(before)
            return self._wait_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run_gated(self, before: Callable[[], object]) -> None:
        spare = self._adopt_spare()
        spawned = self.count - len(self._children)
        read_end, write_end = os.pipe()
        try:
            for index in range(len(self._children), self.count):
                self._spawn(index, gate=read_end)
        finally:
            os.close(read_end)
        try:
            before()
        except BaseException:
            os.close(write_end)  # end of file at the gate: the children exit at once
            if spare is not None:
                spare.let_go()
            for child in self._children.values():
                child.process.wait()
                child.close_pidfd()
            self._children.clear()
            raise
        try:
            os.write(write_end, GATE_OPEN * spawned)
        except BrokenPipeError:
            # No child is left at the gate: a signal during seeding reached them all (they
            # had no handler yet). `_wait_all` reaps them and says the crawl was interrupted.
            pass
        finally:
            os.close(write_end)
        if spare is not None:
            spare.start(self._child_env(0))

    def _wait_all(self) -> int:
        failed = False
        while self._children:
            _wait_for_an_exit(list(self._children.values()), POLL_S)
            if self.on_tick is not None:
                self.on_tick()
            for index, child in list(self._children.items()):
                code = child.process.poll()
                if code is None:
                    continue
                del self._children[index]
                child.close_pidfd()
                if code in (EXIT_DISK_FAILED, EXIT_FRONTIER_FAILED):
                    first = not (self._disk_failed or self._frontier_failed)
                    if code == EXIT_DISK_FAILED:
                        self._disk_failed = True
                    else:
                        self._frontier_failed = True
                    if first:
                        self._signals_seen = max(self._signals_seen, 1)
                        self._stop_children()  # they hand their leases back and exit
                    continue
                if code == EXIT_FINISHED or self._stopping:
                    continue
                if child.restarts >= MAX_RESTARTS:
                    log.error("worker %d failed %d times; giving up on it", index, child.restarts)
                    failed = True
                    continue
                # A signal to this one child (exit 130) is no reason to end short of the job:
                # only the frontier says when it is finished, so it is replaced like a crash.
                signalled = code == EXIT_INTERRUPTED
                why = "was stopped by a signal" if signalled else f"exited with {code}"
                log.warning("worker %d %s; restarting it", index, why)
                time.sleep(RESTART_BACKOFF_S)
                self._spawn(index, child.restarts + 1)
        if self._disk_failed:
            return EXIT_DISK_FAILED
        if self._frontier_failed:
            return EXIT_FRONTIER_FAILED
        if self._stopping:
            return EXIT_INTERRUPTED
        return 1 if failed else EXIT_FINISHED
