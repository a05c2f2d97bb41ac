"""Moving a body from a socket into a file inside the kernel (Linux `splice(2)`).

A plain (not TLS) socket's bytes go socket → pipe → file: the socket's pages are moved into the
pipe by reference and copied once, into the file's page cache. Read through user space they
would be copied twice (socket to our buffer, our buffer to the page cache) and pass through
Python objects on the way. Only an identity body whose length is known qualifies: there is no
framing to strip and nothing to decode.

`BodyMove` does one bounded move on a thread of its own, with blocking `poll` between
non-blocking splices, so the event loop goes on with other work meanwhile. The thread is a
daemon: a loop stopped without cancelling its tasks never wakes it, and interpreter exit must
not wait for a silent server on its account. It works on duplicates of the socket and file
descriptors: whatever the owners do meanwhile (the connection closed on a timeout, the file
closed on a cancellation) cannot make it read or write another file that got the same
descriptor number. `cancel()` wakes it through an eventfd.

At most `THREADS` moves run at once, and none ever queues: when all are running, `try_start`
says no and the caller copies through user space for that step instead, so a thousand
concurrent downloads never wait behind each other for a thread.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import threading
from concurrent.futures import Future
from dataclasses import dataclass

__all__ = ["SPLICE_AVAILABLE", "BodyMove", "MoveResult"]

SPLICE_AVAILABLE = hasattr(os, "splice") and hasattr(os, "eventfd")
# One move's pipe: 1 MiB is the default ceiling an unprivileged process may ask for
# (/proc/sys/fs/pipe-max-size); the kernel's default of 64 KiB would mean 16 times the calls.
PIPE_BYTES = 1 << 20
THREADS = 16

_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_slots = threading.BoundedSemaphore(THREADS)


@dataclass(frozen=True, slots=True)
class MoveResult:
    """How many bytes reached the file, and why the move stopped short (None: it did not)."""

    moved: int
    error: OSError | None = None  # reading the socket failed (a reset, say)
    write_error: OSError | None = None  # writing the file failed (the disk is full, say)
    timed_out: bool = False
    eof: bool = False
    cancelled: bool = False


class BodyMove:
    """Up to `count` bytes from `sock_fd` to `file_fd` (at its file position), on a thread."""

    def __init__(self, sock_fd: int, file_fd: int, count: int, timeout: float | None) -> None:
        self.count = count
        self.timeout = timeout
        # Held while the descriptors are closed and while cancel() writes to the eventfd: a
        # late cancel() must not write into whatever file reused its number.
        self._lock = threading.Lock()
        self._sock = self._file = self._wake = -1
        try:
            self._sock = os.dup(sock_fd)
            self._file = os.dup(file_fd)
            self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        except BaseException:
            self._close()
            raise

    def try_start(self) -> Future[MoveResult] | None:
        """Start on a free thread; None (and nothing started) when all are busy."""
        if not _slots.acquire(blocking=False):
            self._close()
            return None
        done: Future[MoveResult] = Future()
        done.set_running_or_notify_cancel()
        try:
            thread = threading.Thread(target=self._run, args=(done,), name="http-splice")
            thread.daemon = True
            thread.start()
        except BaseException:
            _slots.release()
            self._close()
            raise
        return done

    def cancel(self) -> None:
        """Stop as soon as possible (the thread closes the descriptors itself)."""
        with self._lock:
            if self._wake >= 0:
                os.eventfd_write(self._wake, 1)

    def _run(self, done: Future[MoveResult]) -> None:
        try:
            result = self._move()
        except BaseException as exc:  # a bug, not an I/O error (those are in the result)
            self._finish()
            done.set_exception(exc)
        else:
            # Descriptors closed before anyone hears of the end: the `.part` is no longer held
            # (its lock included) once the caller goes on, say to resume it.
            self._finish()
            done.set_result(result)

    def _finish(self) -> None:
        try:
            self._close()
        finally:
            _slots.release()

    def _move(self) -> MoveResult:
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            try:
                fcntl.fcntl(write_end, _F_SETPIPE_SZ, PIPE_BYTES)
            except OSError:
                pass  # over the user's pipe quota: the default size works, only slower
            poller = select.poll()
            poller.register(self._sock, select.POLLIN)
            poller.register(self._wake, select.POLLIN)
            wait_ms = -1 if self.timeout is None else max(1, int(self.timeout * 1000))
            moved = 0
            while moved < self.count:
                try:
                    taken = os.splice(
                        self._sock, write_end, min(self.count - moved, PIPE_BYTES), flags=_FLAGS
                    )
                except BlockingIOError:
                    ready = poller.poll(wait_ms)
                    if not ready:
                        return MoveResult(moved, timed_out=True)
                    if any(fd == self._wake for fd, _ in ready):
                        return MoveResult(moved, cancelled=True)  # nobody waits for it
                    continue
                except OSError as exc:
                    return MoveResult(moved, error=exc)
                if taken == 0:
                    return MoveResult(moved, eof=True)
                try:
                    moved += _drain_pipe(read_end, self._file, taken)
                except _PartialDrain as partial:
                    return MoveResult(moved + partial.done, write_error=partial.error)
            return MoveResult(moved)
        finally:
            os.close(read_end)
            os.close(write_end)

    def _close(self) -> None:
        with self._lock:
            fds = (self._sock, self._file, self._wake)
            self._sock = self._file = self._wake = -1
            for fd in fds:
                if fd >= 0:
                    os.close(fd)


class _PartialDrain(Exception):
    def __init__(self, done: int, error: OSError) -> None:
        super().__init__(error)
        self.done = done
        self.error = error


def _drain_pipe(read_end: int, file_fd: int, count: int) -> int:
    """Everything in the pipe into the file: `count` bytes, or `_PartialDrain` on an error
    (the disk is full, say) saying how many made it."""
    done = 0
    while done < count:
        try:
            # Blocking on the file side: a regular file is always "ready", the pipe is full.
            written = os.splice(read_end, file_fd, count - done, flags=os.SPLICE_F_MOVE)
        except InterruptedError:
            continue
        except OSError as exc:
            raise _PartialDrain(done, exc) from exc
        if written == 0:
            raise _PartialDrain(done, OSError(errno.EIO, "splice into the file wrote nothing"))
        done += written
    return done
