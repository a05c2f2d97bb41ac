"""Parsers for two parameterised response headers: `Link` (RFC 8288) and `Content-Disposition`
(RFC 6266, with RFC 8187 `filename*`). Pure functions of header text: no I/O, no response.

`ClientResponse.links` and `ClientResponse.content_disposition` are built on them, with
aiohttp's shapes: `links` is a MultiDictProxy keyed by relation type whose values are
MultiDictProxy views of the link's parameters plus "url" (resolved against the response URL);
`content_disposition` is a `ContentDisposition(type, parameters, filename)`.

Where aiohttp splits on regular expressions, these scan the text once and honour quoted strings:
a comma or semicolon inside a quoted parameter does not end a link or a parameter. Relation
types are case-insensitive and space-separated (RFC 8288 3.3): `rel="next Last"` is filed under
"next" and under "last".

A `filename` comes from the server and is not a safe path: strip it to its last segment and
check it before using it as a file name (`storage.paths` does this for the crawler's own files).
"""

from __future__ import annotations

import codecs
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import unquote, unquote_to_bytes

from multidict import MultiDict, MultiDictProxy
from yarl import URL

__all__ = ["ContentDisposition", "parse_content_disposition", "parse_links"]

# RFC 9110 5.6.2 tchar.
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
_SPACE = " \t"


@dataclass(frozen=True, slots=True)
class ContentDisposition:
    """aiohttp's `ContentDisposition`: the type (lowercased), the parameters (names lowercased,
    `name*` values decoded) and the file name, preferring `filename*` to `filename`."""

    type: str | None
    parameters: MappingProxyType[str, str]
    filename: str | None


def parse_links(values: Iterable[str], base: URL) -> MultiDictProxy[MultiDictProxy[str | URL]]:
    """Every link of the `Link` header lines `values`, filed by relation type (the target URL
    when a link has no rel), each with its parameters and "url" resolved against `base`."""
    links: MultiDict[MultiDictProxy[str | URL]] = MultiDict()
    for value in values:
        scanner = _Scanner(value)
        while scanner.skip_to_link():
            target = scanner.link_target()
            if target is None:
                continue  # not a link-value; skip to the next comma
            params = scanner.parameters(stop=",")
            link: MultiDict[str | URL] = MultiDict(params)
            try:
                link.add("url", base.join(URL(target)))
            except ValueError:
                continue  # a target yarl cannot read: no link rather than an exception
            proxy = MultiDictProxy(link)
            rel = link.get("rel")
            relation_types = str(rel).lower().split() if isinstance(rel, str) else []
            for relation in relation_types or [target]:
                links.add(relation, proxy)
    return MultiDictProxy(links)


def parse_content_disposition(value: str | None) -> ContentDisposition | None:
    """The parsed header, or None without one. An unreadable type gives type None and no
    parameters (as aiohttp); an unreadable parameter is left out."""
    if value is None:
        return None
    scanner = _Scanner(value)
    disposition = scanner.token()
    scanner.skip_space()
    if not disposition or not (scanner.at_end() or scanner.peek() == ";"):
        return ContentDisposition(None, MappingProxyType({}), None)
    params: dict[str, str] = {}
    for name, raw in scanner.parameters(stop=None):
        if name in params:
            continue  # RFC 6266 4.1: a parameter given twice is an error; the first one counts
        if name.endswith("*") and not _is_continuation(name):
            decoded = _decode_ext_value(raw)
            if decoded is None:
                continue
            raw = decoded
        params[name] = raw
    return ContentDisposition(disposition.lower(), MappingProxyType(params), _filename(params))


def _filename(params: dict[str, str]) -> str | None:
    # RFC 6266 4.3: filename* wins over filename; RFC 2231 continuations (filename*0,
    # filename*1*...) are joined in order, each decoded on its own when it is extended.
    if "filename*" in params:
        return params["filename*"]
    if "filename" in params:
        return params["filename"]
    parts = list(_continuations(params, "filename"))
    return "".join(parts) if parts else None


def _is_continuation(name: str) -> bool:
    # name*0, name*1*...: RFC 2231 3. Their values stay as sent; `_filename` joins them.
    _head, star, tail = name.partition("*")
    return bool(star) and tail.removesuffix("*").isdigit()


def _continuations(params: dict[str, str], name: str) -> Iterator[str]:
    """The value RFC 2231 pieces `name*0`, `name*1`... spell: the encoded pieces' bytes and the
    plain ones' text joined, then decoded once in the charset the first piece names (a
    character may be split between two pieces); nothing when there are none or they do not
    decode."""
    charset = "utf-8"
    octets = bytearray()
    index = 0
    while True:
        plain, extended = f"{name}*{index}", f"{name}*{index}*"
        if extended in params:
            value = params[extended]
            if index == 0:
                named, quote, rest = value.partition("'")
                if quote:
                    charset = named or "utf-8"
                    value = rest.partition("'")[2]
            octets += unquote_to_bytes(value)
        elif plain in params:
            try:
                octets += params[plain].encode(charset)
            except (LookupError, UnicodeEncodeError):
                return
        elif index == 0:
            return
        else:
            break
        index += 1
    try:
        yield octets.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return


def _decode_ext_value(raw: str) -> str | None:
    """RFC 8187 ext-value, charset'language'pct-encoded; None when it is not one, its charset
    is unknown or its bytes are not in it."""
    charset, quote, rest = raw.partition("'")
    _language, quote2, encoded = rest.partition("'")
    if not (quote and quote2):
        return None
    try:
        codecs.lookup(charset or "utf-8")  # unquote() never looks when nothing is escaped
        return unquote(encoded, charset or "utf-8", "strict")
    except (LookupError, UnicodeDecodeError):
        return None


class _Scanner:
    """A cursor over one header value, for the two grammars above."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def at_end(self) -> bool:
        return self.at >= len(self.text)

    def peek(self) -> str:
        return self.text[self.at]

    def skip_space(self) -> None:
        text, at = self.text, self.at
        while at < len(text) and text[at] in _SPACE:
            at += 1
        self.at = at

    def token(self) -> str:
        start = self.at
        text = self.text
        while self.at < len(text) and text[self.at] in _TOKEN_CHARS:
            self.at += 1
        return text[start : self.at]

    def bare_value(self, stop: str | None) -> str:
        """An unquoted value: up to the next ";" or `stop`, spaces around it dropped. Wider
        than a token, as browsers read it (`filename=a b.txt`, `filename=../x`): what the
        server meant, not a cut-off piece of it."""
        text = self.text
        start = self.at
        while self.at < len(text) and text[self.at] != ";" and text[self.at] != stop:
            self.at += 1
        return text[start : self.at].strip(_SPACE)

    def quoted(self) -> str:
        """A quoted-string starting at the cursor (on its quote), unescaped; an unclosed one
        runs to the end."""
        text = self.text
        out: list[str] = []
        self.at += 1
        while self.at < len(text):
            char = text[self.at]
            self.at += 1
            if char == '"':
                break
            if char == "\\" and self.at < len(text):
                char = text[self.at]
                self.at += 1
            out.append(char)
        return "".join(out)

    def skip_to_link(self) -> bool:
        """Past separators to the next link-value's "<"; False at the end."""
        text = self.text
        while self.at < len(text) and text[self.at] in _SPACE + ",":
            self.at += 1
        return self.at < len(text)

    def link_target(self) -> str | None:
        """The URI-Reference between "<" and ">", or None (the rest of this link skipped)."""
        text = self.text
        if text[self.at] != "<":
            self._skip_past(",")
            return None
        end = text.find(">", self.at + 1)
        if end < 0:
            self.at = len(text)
            return None
        inner = text.find("<", self.at + 1, end)
        if inner >= 0:
            # "<" cannot stand in a URI: this one was never closed, the next link starts there.
            self.at = inner
            return None
        target = text[self.at + 1 : end].strip()
        self.at = end + 1
        return target

    def parameters(self, stop: str | None) -> list[tuple[str, str]]:
        """`; name[=value]` pairs up to `stop` (consumed) or the end; names lowercased, quoted
        values unescaped. A malformed parameter is skipped to the next ";"."""
        text = self.text
        found: list[tuple[str, str]] = []
        while True:
            self.skip_space()
            if self.at_end():
                return found
            char = self.peek()
            if stop is not None and char == stop:
                self.at += 1
                return found
            if char != ";":
                self._skip_past(";", stop)
                continue
            self.at += 1
            self.skip_space()
            name = self.token().lower()
            self.skip_space()
            value = ""
            if not self.at_end() and self.peek() == "=":
                self.at += 1
                self.skip_space()
                quoted = not self.at_end() and self.peek() == '"'
                value = self.quoted() if quoted else self.bare_value(stop)
            if name:
                found.append((name, value))
            elif not self.at_end() and text[self.at] not in ";" + (stop or ""):
                self._skip_past(";", stop)

    def _skip_past(self, *stops: str | None) -> None:
        """To the next of `stops` outside quotes (left on it), or the end."""
        wanted = "".join(stop for stop in stops if stop)
        text = self.text
        while self.at < len(text):
            char = text[self.at]
            if char in wanted:
                return
            if char == '"':
                self.quoted()
                continue
            self.at += 1
