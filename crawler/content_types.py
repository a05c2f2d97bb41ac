"""Which bodies a crawl keeps, by Content-Type (`--accept-type`).

Patterns are media types (`application/pdf`), a type with any subtype (`image/*`) or `*/*`.
HTML is always accepted, whatever the patterns: its links are how a crawl finds the rest (wget
-A also fetches HTML for its links), and so is a body without a Content-Type, which may be
HTML (the worker sniffs it). Parameters (`; charset=...`) and case do not matter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

__all__ = ["ALWAYS_ACCEPTED", "accepts", "check_pattern", "media_type"]

ALWAYS_ACCEPTED = frozenset({"text/html", "application/xhtml+xml"})
# RFC 9110 token characters, but "*": in a pattern it only ever means "any".
_NAME = r"[!#$%&'+\-.^_`|~0-9a-z]+"
_PATTERN = re.compile(rf"(?:\*/\*|{_NAME}/\*|{_NAME}/{_NAME})")


def check_pattern(pattern: str) -> str:
    """The pattern in lower case, or ValueError saying what one looks like."""
    text = pattern.strip().lower()
    if not _PATTERN.fullmatch(text):
        raise ValueError(f"{pattern!r} is not a media type such as application/pdf or image/*")
    return text


def media_type(content_type: str | None) -> str | None:
    """`text/html; charset=utf-8` -> `text/html`; None for a missing or empty header."""
    if not content_type:
        return None
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind or None


def accepts(patterns: Iterable[str]) -> Callable[[str | None], bool]:
    """A test of a Content-Type header value against `patterns` (see the module docstring)."""
    exact = set(ALWAYS_ACCEPTED)
    families: set[str] = set()
    anything = False
    for pattern in map(check_pattern, patterns):
        if pattern == "*/*":
            anything = True
        elif pattern.endswith("/*"):
            families.add(pattern[:-1])
        else:
            exact.add(pattern)

    def accepted(content_type: str | None) -> bool:
        kind = media_type(content_type)
        if kind is None or anything or kind in exact:
            return True
        return any(kind.startswith(family) for family in families)

    return accepted
