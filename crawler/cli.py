"""The `crawl` program: `crawl ...` and `python -m crawler.cli ...` start here.

The commands themselves are in `crawler.commands`. What this adds, before importing them: for
`crawl run` and `crawl mirror`, the first worker process is forked at once
(`workers.spare`), so that its start-up overlaps the command's own; and once such a crawl is
over (workers gone, records and summary written), the process ends without the interpreter's
teardown of every module it loaded, which only kept the shell waiting (about 30 ms).
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["main"]

# Commands that run worker processes and end once they have.
_CRAWLING_COMMANDS = frozenset({"run", "mirror"})
_HELP_FLAGS = frozenset({"-h", "--help", "--version"})


def main() -> None:
    args = sys.argv[1:]
    crawling = bool(args) and args[0] in _CRAWLING_COMMANDS and not _HELP_FLAGS & set(args)
    spare = None
    if crawling:
        from workers.spare import fork_spare

        spare = fork_spare()
    code: int | None = None
    try:
        from crawler.commands import main as commands

        commands()
    except SystemExit as done:
        if not crawling or not isinstance(done.code, int | None):
            raise
        code = done.code or 0
    finally:
        if spare is not None:
            from workers.spare import take_spare

            if take_spare() is spare:  # no supervisor adopted it: the command ended first
                spare.let_go()
    if code is not None:
        _exit_now(code)


def _exit_now(code: int) -> None:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
