"""Reading Set-Cookie header fields the way RFC 6265 section 5.2 (and 5.1.1 for dates) says.

`http.cookies.SimpleCookie.load` is a parser for a different, older grammar: it reads
`a=1; b=2` as two cookies, drops a whole field over one unexpected attribute
(`a=1; HttpOnly, b=2`) or a space in a value (`a=x y`), and refuses names such as
`cart[item]` that servers (PHP, notably) do send. Browsers and aiohttp take one cookie per
field, the value up to the first ";", and ignore attributes they do not understand.
"""

from __future__ import annotations

import calendar
import datetime
import re
from collections.abc import Iterable
from http.cookies import Morsel

__all__ = ["make_morsel", "parse_cookie_date", "parse_set_cookie_headers"]

# Names browsers and aiohttp accept: RFC 6265 token characters plus the ones PHP-style
# array names use; no separators that would break the Cookie header (";", ",", space, "=").
_NAME_RE = re.compile(r"[!#$%&'()*+\-./0-9:<>?@A-Z\[\]^_`a-z{|}~]+")
# RFC 6265bis 5.6 step 1: a field with a control character (other than tab) is ignored.
_CTL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# What Morsel knows about; anything else in a field is an extension we ignore.
# (Not "partitioned": Morsel only knows it from Python 3.14 and fails to print it before.)
_ATTRIBUTES = frozenset({"expires", "max-age", "domain", "path", "secure", "httponly",
                         "samesite", "comment", "version"})
_FLAGS = frozenset({"secure", "httponly"})
_MAX_AGE_RE = re.compile(r"-?[0-9]+")
# RFC 6265 6.1 asks for 4096 bytes per cookie; browsers and aiohttp drop bigger name=value
# pairs, which would otherwise ride on every later request.
_MAX_PAIR_LENGTH = 4096
# aiohttp reads at most this many cookies from one response; a crawler has no use for more.
_MAX_PER_RESPONSE = 50

# RFC 6265 5.1.1: a date is a list of tokens separated by these delimiter octets.
_DATE_TOKEN_RE = re.compile(r"[^\x09\x20-\x2f\x3b-\x40\x5b-\x60\x7b-\x7e]+")
# Each field must end where the digits end (`10:18:145` is not a time).
_TIME_RE = re.compile(r"([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[^0-9]|$)")
_DAY_RE = re.compile(r"([0-9]{1,2})(?:[^0-9]|$)")
_YEAR_RE = re.compile(r"([0-9]{2,4})(?:[^0-9]|$)")
_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}


def parse_cookie_date(text: str) -> float | None:
    """Epoch seconds of a cookie-date (RFC 6265 5.1.1), None when it is not one.

    Unlike `email.utils`, this reads every format browsers read ("Wed, 09-Jun-2100 ...",
    asctime, trailing junk), always in UTC, with two-digit years 0-69 in the 2000s.
    """
    time_: tuple[int, int, int] | None = None
    day = month = year = None
    for token in _DATE_TOKEN_RE.findall(text):
        if time_ is None and (match := _TIME_RE.match(token)):
            hour, minute, second = (int(group) for group in match.groups())
            time_ = (hour, minute, second)
        elif day is None and (match := _DAY_RE.match(token)):
            day = int(match.group(1))
        elif month is None and token[:3].lower() in _MONTHS:
            month = _MONTHS[token[:3].lower()]
        elif year is None and (match := _YEAR_RE.match(token)):
            year = int(match.group(1))
    if time_ is None or day is None or month is None or year is None:
        return None
    if 70 <= year <= 99:
        year += 1900
    elif 0 <= year <= 69:
        year += 2000
    hour, minute, second = time_
    if not 1 <= day <= 31 or year < 1601 or hour > 23 or minute > 59 or second > 59:
        return None
    try:
        # The constructor refuses dates that do not exist (31 Feb), as step 6 says.
        moment = datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    return float(calendar.timegm(moment.timetuple()))


def make_morsel(name: str, value: str, coded_value: str) -> Morsel[str]:
    """A Morsel without `Morsel.set`'s name check, which refuses names browsers accept."""
    morsel: Morsel[str] = Morsel()
    morsel.__setstate__({"key": name, "value": value, "coded_value": coded_value})  # type: ignore[attr-defined]
    return morsel


def _unquote(coded: str) -> str:
    # A DQUOTE-wrapped value means the bare value (RFC 6265 4.1.1 cookie-value).
    if len(coded) >= 2 and coded[0] == coded[-1] == '"':
        return coded[1:-1]
    return coded


def _parse_one(field: str) -> tuple[str, Morsel[str]] | None:
    if _CTL_RE.search(field):
        return None
    pair, _, attributes = field.partition(";")
    name, equals, coded = pair.partition("=")
    name, coded = name.strip(" \t"), coded.strip(" \t")
    # RFC 6265 5.2 steps 2 and 5: no "=" or an empty name means no cookie.
    if not equals or not name or not _NAME_RE.fullmatch(name):
        return None
    if len(name) + len(coded) > _MAX_PAIR_LENGTH:
        return None
    # Cookie names are case-sensitive but Morsel reserves its attribute names as keys.
    if name.lower() in _ATTRIBUTES:
        return None
    morsel = make_morsel(name, _unquote(coded), coded)
    for attribute in attributes.split(";"):
        key, _, attribute_value = attribute.partition("=")
        key, attribute_value = key.strip(" \t").lower(), attribute_value.strip(" \t")
        if key not in _ATTRIBUTES:
            continue
        if key in _FLAGS:
            dict.__setitem__(morsel, key, True)
        elif key == "expires" and parse_cookie_date(attribute_value) is None:
            continue  # 5.2.1: an unreadable date is ignored, not a session-ending error
        elif key == "max-age" and not _MAX_AGE_RE.fullmatch(attribute_value):
            continue  # 5.2.2: "+5", "1_0", "abc" are ignored (int() would take two of them)
        elif key == "domain" and not attribute_value:
            continue  # 5.2.3: an empty Domain is ignored, leaving a host-only cookie
        else:
            # The last attribute of a name wins (5.3 step 3 reads the list backwards).
            dict.__setitem__(morsel, key, attribute_value)
    return name, morsel


def parse_set_cookie_headers(fields: Iterable[str]) -> list[tuple[str, Morsel[str]]]:
    """One (name, morsel) per readable Set-Cookie field, in order; duplicates are kept.

    Two fields may set the same name for different paths or domains, so this is a list, not
    a mapping keyed by name.
    """
    cookies: list[tuple[str, Morsel[str]]] = []
    for field in fields:
        parsed = _parse_one(field)
        if parsed is not None:
            cookies.append(parsed)
            if len(cookies) == _MAX_PER_RESPONSE:
                break
    return cookies
