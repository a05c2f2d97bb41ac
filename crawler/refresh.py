"""Parsing a declarative refresh: the `content` of `<meta http-equiv="refresh">`, or the value of
an HTTP `Refresh` header ("0; url=/home/"), as HTML's "shared declarative refresh steps" do
(https://html.spec.whatwg.org/multipage/browsing-the-web.html#shared-declarative-refresh-steps).

`parse_refresh(value)` returns the delay and the URL string, still to be resolved against the
document (the caller's job: `crawler.extract` resolves it like any link), or None when the value
is not a refresh at all; a browser then ignores it, and a later `<meta>` refresh may still count.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Refresh", "parse_refresh"]

# Infra's "ASCII whitespace": tab, LF, FF, CR, space (not VT, not what str.isspace() takes).
_WHITESPACE = "\t\n\f\r "
_DIGITS = "0123456789"
# A delay of more digits than this (over 30 billion years) is read as _SATURATED.
_MAX_DIGITS = 18
_SATURATED = 10**_MAX_DIGITS


class Refresh(NamedTuple):
    """A refresh that parsed: `delay` in whole seconds (the spec drops the fraction: ".5" is 0,
    "1.9" is 1) and `url`, the URL string as written (unresolved, quotes removed), or None when
    the value names no URL: a reload of the same page, nothing for a crawler to follow."""

    delay: int
    url: str | None


def parse_refresh(value: str) -> Refresh | None:
    """The delay and URL string of a refresh value, or None when it does not parse.

    Steps 2 to 11.10 of the shared declarative refresh steps. It does not parse when the value
    does not start with a time ("url=x", "-1; url=x", ""), or when the time is followed by
    something other than ";", "," or whitespace ("5x"). "5" and "5;" parse, without a URL.
    An empty URL string ("0; url=") is returned as "": it resolves to the document itself.
    """
    end = len(value)
    position = _skip(value, 0, _WHITESPACE)
    time_end = _skip(value, position, _DIGITS)
    if time_end == position and value[position : position + 1] != ".":
        return None  # no time: not a refresh ("url=x", a negative number, empty)
    digits = value[position:time_end].lstrip("0")
    # Saturated: int() refuses strings of over 4,300 digits, and any such delay is "never".
    # ("" is "0", "000" or no digits before the ".": ".5")
    delay = int(digits or "0") if len(digits) <= _MAX_DIGITS else _SATURATED
    # The fraction, and any further dots and digits ("1.5.3"), are read and ignored.
    position = _skip(value, time_end, _DIGITS + ".")
    if position < end:
        if value[position] not in ";," + _WHITESPACE:
            return None
        position = _skip(value, position, _WHITESPACE)
        if value[position : position + 1] in (";", ","):
            position += 1
        position = _skip(value, position, _WHITESPACE)
    if position >= end:
        return Refresh(delay, None)
    # From here the URL is the rest of the value, unless it starts with "url" and "=" (each
    # letter any case, whitespace around "="): then what follows, in optional quotes.
    url_start = position
    if value[position : position + 3].lower() != "url":
        return Refresh(delay, _unquoted(value, position))
    position = _skip(value, position + 3, _WHITESPACE)
    if value[position : position + 1] != "=":
        # "0; urlx" or "0; url x": no "url=" prefix after all, the URL is all of it.
        return Refresh(delay, value[url_start:])
    position = _skip(value, position + 1, _WHITESPACE)
    return Refresh(delay, _unquoted(value, position))


def _unquoted(value: str, position: int) -> str:
    """The rest of `value` from `position` ("skip quotes"): when it opens with ' or ", up to
    the matching quote, or to the end when that quote never closes."""
    quote = value[position : position + 1]
    if quote not in ("'", '"'):
        return value[position:]
    url = value[position + 1 :]
    closing = url.find(quote)
    return url if closing < 0 else url[:closing]


def _skip(value: str, position: int, characters: str) -> int:
    """The first position from `position` on whose character is not one of `characters`."""
    end = len(value)
    while position < end and value[position] in characters:
        position += 1
    return position
