"""Parsers of setting values: a raw value in (text from the environment or a flag, or a typed
value from TOML), the typed value out, or a ValueError whose message says what was expected.

Each parser also accepts its own output, so a `Settings` built directly is checked the same way.
"""

from __future__ import annotations

import enum
import math
import re
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

Parser = Callable[[Any], Any]
_NONE_WORDS = frozenset({"", "none", "unlimited", "off"})
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DOMAIN = re.compile(
    r"(?:[a-z0-9_](?:[a-z0-9_\-]*[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_\-]*[a-z0-9_])?"
)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected text")
    return value.strip()


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError("expected a whole number")


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError("expected a number") from None
    else:
        raise ValueError("expected a number")
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def _is_none_word(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in _NONE_WORDS


def integer(minimum: int, maximum: int | None = None, *, optional: bool = False) -> Parser:
    def parse(value: Any) -> int | None:
        if value is None or (optional and _is_none_word(value)):
            if optional:
                return None
            raise ValueError("a value is required")
        number = _integer(value)
        if number < minimum or (maximum is not None and number > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ValueError(f"must be {bounds}")
        return number

    return parse


def number(minimum: float, *, above: bool = False, optional: bool = False) -> Parser:
    def parse(value: Any) -> float | None:
        if optional and (value is None or _is_none_word(value)):
            return None
        result = _number(value)
        if result < minimum or (above and result == minimum):
            raise ValueError(f"must be {'>' if above else '>='} {minimum:g}")
        return result

    return parse


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise ValueError("expected true or false")


def auto_boolean(value: Any) -> bool | None:
    """True, False, or None for "auto" (decided at run time, e.g. by whether stdout is a TTY)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    return boolean(value)


def byte_size(*, optional: bool) -> Parser:
    """Bytes as a number or with a unit: 5000000, 10MB, 1.5GiB (k/M/G/T; 'i' means 1024)."""

    def parse(value: Any) -> int | None:
        if optional and (value is None or _is_none_word(value)):
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            result = value
        elif isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())) is not None:
            digits, unit, binary = match.groups()
            result = int(float(digits) * (1024 if binary else 1000) ** _SIZE_POWERS[unit.lower()])
        else:
            raise ValueError("expected a size in bytes like 5000000, 10MB or 2GiB")
        if result < 1:
            raise ValueError("must be at least 1 byte")
        return result

    return parse


def choice(kind: type[enum.StrEnum]) -> Parser:
    def parse(value: Any) -> enum.StrEnum:
        try:
            return kind(_text(value).lower())
        except ValueError:
            allowed = ", ".join(member.value for member in kind)
            raise ValueError(f"expected one of {allowed}") from None

    return parse


def _items(value: Any) -> list[str]:
    """A list from TOML/flags, or a comma-separated string from the environment."""
    if isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        raise ValueError("expected a list")
    if not all(isinstance(part, str) for part in parts):
        raise ValueError("expected a list of text")
    return [part.strip() for part in parts if part.strip()]


def domain_names(value: Any) -> tuple[str, ...]:
    result = []
    for item in _items(value):
        name = item.lower().removeprefix("*.").strip(".")
        if not name.isascii():
            # The same IDNA as URLs' hosts get (UTS #46, non-transitional): Python's "idna"
            # codec is IDNA 2003, which turns "straße" into "strasse", a name no link has.
            import idna

            try:
                name = idna.encode(name, uts46=True, transitional=False).decode("ascii")
            except (idna.IDNAError, UnicodeError, ValueError):
                raise ValueError(f"{item!r} is not a domain name") from None
        if _DOMAIN.fullmatch(name) is None:
            raise ValueError(f"{item!r} is not a domain name")
        result.append(name)
    return tuple(dict.fromkeys(result))


def media_types(value: Any) -> tuple[str, ...]:
    """Content-Type patterns (application/pdf, image/*, */*), comma-separated in one string."""
    from crawler.content_types import check_pattern

    return tuple(dict.fromkeys(check_pattern(item) for item in _items(value)))


def regexes(value: Any) -> tuple[str, ...]:
    """Regular expressions; in one string (the environment) they are separated by newlines,
    since commas belong to regex syntax."""
    if isinstance(value, str):
        value = value.splitlines()
    result = []
    for item in _items(value):
        try:
            re.compile(item)
        except re.error as error:
            # wget's --accept and shells take globs: "*.pdf" is the likeliest bad regex.
            glob = "; a regex, not a glob: *.pdf is \\.pdf$" if item.startswith("*") else ""
            raise ValueError(f"{item!r} is not a regular expression ({error}{glob})") from None
        result.append(item)
    return tuple(result)


def redis_url(value: Any) -> str | None:
    if value is None or _is_none_word(value):
        return None
    url = _text(value)
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss", "unix", "redis+cluster", "rediss+cluster"}:
        raise ValueError(
            "expected a redis://, rediss://, unix:// or (a Redis Cluster node) "
            "redis+cluster:// URL"
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError("the Redis URL has no host")
    if _CONTROL.search(url):
        raise ValueError("control characters are not allowed")
    return url


PROXY_FROM_ENV = "env"
NO_PROXY = "none"


def proxy_setting(value: Any) -> str:
    """The proxy setting: 'env' (HTTP_PROXY, HTTPS_PROXY, NO_PROXY ... as curl reads them),
    'none', or the URL of an http:// or https:// proxy; host:port means http://host:port."""
    text = _text(value)
    word = text.lower()
    if word == PROXY_FROM_ENV:
        return PROXY_FROM_ENV
    if word in _NONE_WORDS or word in {"direct", "no"}:
        return NO_PROXY
    if _CONTROL.search(text) or any(char.isspace() for char in text):
        raise ValueError("control characters and spaces are not allowed")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme.lower() not in {"http", "https"}:
        raise ValueError("expected 'env', 'none' or an http:// or https:// proxy URL")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise ValueError("the proxy URL has a bad port") from None
    if not parts.hostname:
        raise ValueError("the proxy URL has no host")
    if parts.path not in {"", "/"} or parts.query or parts.fragment:
        raise ValueError("a proxy URL is scheme://[user:password@]host[:port], with no path")
    return text


def _optional_file(value: Any) -> Path | None:
    """None for a none word, else the path of a file that exists (or ValueError)."""
    if value is None or _is_none_word(value):
        return None
    path = value if isinstance(value, Path) else Path(_text(value)).expanduser()
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    return path


def ca_file(value: Any) -> Path | None:
    """A PEM file of CA certificates, checked by loading it."""
    path = _optional_file(value)
    if path is not None:
        try:
            ssl.create_default_context(cafile=str(path))
        except (OSError, ssl.SSLError) as error:
            raise ValueError(f"no CA certificates could be loaded from {path} ({error})") from None
    return path


def cookie_file(value: Any) -> Path | None:
    """A Netscape cookies.txt or a JSON cookie file, checked by reading it."""
    path = _optional_file(value)
    if path is not None:
        from crawler.cookie_file import CookieFileError, read_cookie_file

        try:
            read_cookie_file(path)
        except CookieFileError as error:
            raise ValueError(str(error)) from None
    return path


def job_name(value: Any) -> str:
    name = _text(value)
    if _JOB_NAME.fullmatch(name) is None:
        raise ValueError(
            "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def directory(value: Any) -> Path:
    if isinstance(value, Path):
        return value
    text = _text(value)
    if not text or "\x00" in text:
        raise ValueError("expected a directory path")
    return Path(text).expanduser()


def header_line_value(value: Any) -> str:
    """Text that goes into a request header as it is: no CR, LF, NUL or other controls."""
    text = _text(value)
    if not text:
        raise ValueError("must not be empty")
    if _CONTROL.search(text):
        raise ValueError("control characters (CR, LF, NUL ...) are not allowed")
    return text


def header_pairs(value: Any) -> tuple[tuple[str, str], ...]:
    """A TOML table {name = value}, a list of "Name: value", or such lines separated by newlines."""
    if isinstance(value, Mapping):
        pairs = [(str(name), item) for name, item in value.items()]
    elif isinstance(value, list | tuple) and all(isinstance(item, list | tuple) for item in value):
        if not all(len(item) == 2 for item in value):
            raise ValueError("expected (name, value) pairs")
        pairs = [(str(name), item) for name, item in value]
    else:
        lines = value.splitlines() if isinstance(value, str) else _items(value)
        pairs = []
        for line in lines:
            if not line.strip():
                continue
            name, colon, item = line.partition(":")
            if not colon:
                raise ValueError(f"{line!r} is not 'Name: value'")
            pairs.append((name, item))
    result = []
    for name, item in pairs:
        name = name.strip()
        if _HEADER_NAME.fullmatch(name) is None:
            raise ValueError(f"{name!r} is not a header name")
        if not isinstance(item, str) or _CONTROL.search(item.strip()):
            raise ValueError(f"header {name} needs a text value without control characters")
        result.append((name, item.strip()))
    return tuple(result)
