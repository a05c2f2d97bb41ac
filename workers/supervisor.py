"""Run N worker processes on one machine, restart the ones that crash, stop them on a signal.

Each child is a `crawl worker` process with the same settings, so one machine with `--workers 4`
behaves exactly like four machines each running `crawl worker`: the frontier is the only thing
they share. Children exit 0 when the frontier says the job is finished.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

log = logging.getLogger("crawl.supervisor")

# Exit codes a worker uses (see workers/process.py).
EXIT_FINISHED = 0
EXIT_INTERRUPTED = 130

# A child that keeps crashing faster than this is given up on, so a broken install
# does not become an endless restart loop.
MAX_RESTARTS = 20
RESTART_BACKOFF_S = 0.5


@dataclass(slots=True)
class _Child:
    index: int
    process: subprocess.Popen[bytes]
    restarts: int = 0
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Start `count` copies of `command`, keep them running until each exits cleanly."""

    def __init__(
        self,
        command: Sequence[str],
        count: int,
        *,
        env: Mapping[str, str] | None = None,
        on_tick: Callable[[], object] | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("workers must be at least 1")
        self.command = list(command)
        self.count = count
        self.env = dict(env or {})
        self.on_tick = on_tick
        self._children: dict[int, _Child] = {}
        self._stopping = False
        self._signals_seen = 0

    def _spawn(self, index: int, restarts: int = 0) -> _Child:
        env = dict(os.environ, **self.env, CRAWL_WORKER_INDEX=str(index))
        process = subprocess.Popen(self.command, env=env)
        child = _Child(index, process, restarts)
        self._children[index] = child
        return child

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals_seen += 1
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

    def run(self) -> int:
        """Block until every child is done; returns 0 when finished, 130 when interrupted."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for index in range(self.count):
                self._spawn(index)
            return self._wait_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _wait_all(self) -> int:
        failed = False
        while self._children:
            time.sleep(0.1)
            if self.on_tick is not None:
                self.on_tick()
            for index, child in list(self._children.items()):
                code = child.process.poll()
                if code is None:
                    continue
                del self._children[index]
                if code == EXIT_FINISHED or self._stopping:
                    continue
                if code == EXIT_INTERRUPTED:
                    # Interrupted from outside (a signal to this one child): not a crash.
                    continue
                if child.restarts >= MAX_RESTARTS:
                    log.error("worker %d failed %d times; giving up on it", index, child.restarts)
                    failed = True
                    continue
                log.warning("worker %d exited with %d; restarting it", index, code)
                time.sleep(RESTART_BACKOFF_S)
                self._spawn(index, child.restarts + 1)
        if self._stopping:
            return EXIT_INTERRUPTED
        return 1 if failed else EXIT_FINISHED
