"""Peak memory of the current process, for tests that prove a body streams."""

from __future__ import annotations

import resource

__all__ = ["peak_rss"]


def peak_rss() -> int:
    """This process's peak resident set size in bytes.

    VmHWM belongs to the address space made at exec; ru_maxrss would also count the parent's
    memory at fork time (it survives execve), which says nothing about the child's work.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
