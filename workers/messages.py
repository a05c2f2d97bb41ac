"""What a crawl tells its user on stderr, in the format they chose (`--log-format`).

Progress and the summary already come as JSON lines under `--log-format json`; so must every
other line on that stream (the job's seeding report, "interrupted: state saved", warnings from
the workers and the supervisor), or a log collector reading JSON lines chokes on them.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import click

from crawler.config import LogFormat

__all__ = ["JsonLogFormatter", "configure_logging", "say"]

TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class JsonLogFormatter(logging.Formatter):
    """A log record as one JSON object: event "log", its level, logger and message."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "event": "log",
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(log_format: LogFormat | str) -> None:
    """Warnings and errors on stderr, as text lines or JSON lines (replacing any setup)."""
    handler = logging.StreamHandler()
    if LogFormat(log_format) is LogFormat.JSON:
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)


def say(text: str, log_format: LogFormat | str, event: str = "message", **fields: Any) -> None:
    """One line for the user on stderr: `text`, or under JSON a {"event", "message", ...}
    object with `fields` beside it."""
    if LogFormat(log_format) is LogFormat.JSON:
        entry = {"event": event, "time": round(time.time(), 3), "message": text, **fields}
        text = json.dumps(entry, ensure_ascii=False)
    click.echo(text, err=True)
