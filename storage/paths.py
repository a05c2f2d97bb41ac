"""Where a URL's body lives in the mirror tree: `out/files/<host>[+port]/<path>`.

`mirror_relpath(url)` is a pure function of the URL string, so every worker on every machine
agrees on it. The result never contains `..`, `.`, an empty segment, a separator, NUL or a
control character, and it is always relative.

Two URLs get the same file only when they are the same resource by RFC 3986 (6.2.2): the same
path after escapes of unreserved characters (`%41` is `A`) and of characters that may not
stand bare in a URL (non-ASCII, space, `"<>|{}`...) are decoded and dot segments removed. That
is the equivalence `crawler.urls.canonicalize` draws, so the frontier and the mirror agree on
what one URL is. Everything the RFC keeps apart stays apart on disk:
- an escaped reserved character is not the character (`/p%2Bq` is not `/p+q`, and `%3A` is not
  `:`): the escape is kept as text, so its `%` is written `%25` (`p%252Bq`);
- an empty segment is a folder of its own, named `%%` (`/a//b` is `a/%%/b`, not `a/b`);
- `index.html` is the name of a directory URL's body (`/dir/` → `dir/index.html`), so a segment
  that is itself `index.html` is written `%69ndex.html`;
- user info is part of the host folder (`u~<hash of the password>@host`): the password is never
  written out.
(http and https URLs of one host share its folder, as wget does: they are one site.) A folder
written before these rules keeps its files, and its records name them; a URL whose name changed
is fetched whole again, once, under its new name.

After that, every character that is unsafe in a file name on Linux, macOS or Windows is
escaped as `%XX` (so a literal `%` becomes `%25`, and `%` in a mapped name is always followed
by two hex digits).

A query is kept in the name as `<stem>@<readable query>~<8 hex digits of its hash>.<ext>`, and a
name too long is cut to `<head>~<16 hex digits>.<ext>`; a name mapped from a path that happens
to end that way has its `~` escaped (`%7E`), so no path can take another URL's name.
Names this module hands out for its own use contain `%%`, which a mapped name cannot:
`%%` is an empty segment's folder, `<name>%%file` holds the body of a URL whose mapped path is
a directory that another URL needed (see `MirrorTree.ensure_parent`), and `%%deep~<hash>`
folds the middle of absurdly deep paths.
Names ending in `.part`, `.part.json` or `.part.json.tmp` are reserved for downloads in progress.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import unicodedata
from pathlib import Path, PurePosixPath
from typing import TypeVar
from urllib.parse import SplitResult, unquote_to_bytes, urlsplit

from storage.errors import InvalidMirrorURL, StorageError, UnsafePathError

__all__ = [
    "DISPLACED_SUFFIX",
    "MAX_NAME_BYTES",
    "MirrorTree",
    "displaced_path",
    "mirror_relpath",
    "sanitize_segment",
]

# File systems allow 255 bytes per name; we stay well below so that `.part.json.<tmp>` and
# `%%file` can still be appended to any mapped name.
MAX_NAME_BYTES = 200
# Keep the whole relative path far from PATH_MAX (4096) whatever the output folder's depth.
MAX_DIRS = 32
MAX_DIR_BYTES = 1000
KEPT_DIRS_WHEN_FOLDING = 16
KEPT_DIR_BYTES_WHEN_FOLDING = 500
QUERY_READABLE_BYTES = 80
DISPLACED_SUFFIX = "%%file"
DEEP_FOLD_PREFIX = "%%deep~"
DIRECTORY_INDEX = "index.html"
# A segment named as the directory index is written with its first letter escaped (as a Windows
# device name is), which no other segment maps to: `i` is unreserved, so never left escaped.
LITERAL_INDEX = "%69ndex.html"
EMPTY_SEGMENT = "%%"
_KNOWN_DIRS_MAX = 100_000
_KNOWN_HOSTS_MAX = 10_000
# Hot paths keep paths as str (pathlib's parsing costs more than a page's mapping); the helpers
# that take either give back what they got.
AnyPath = TypeVar("AnyPath", str, Path)

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters no file name may hold on some OS we care about, plus `%` (our escape character).
_UNSAFE_ASCII = frozenset('/\\%:*?"<>|')
# `+` separates host from port; `@` and `~` are used in query and hash decorations.
_UNSAFE_IN_HOST = _UNSAFE_ASCII | {"+", "@", "~"}
# Reserved characters (RFC 3986 2.2) that may stand bare in a path segment, and `%` itself: an
# escape of one of these means something else than the character, so it is kept as an escape.
# (`/`, `?` and `#` cannot stand bare in a segment; `[` and `]` may not stand bare in a path.)
_KEPT_ESCAPES = frozenset(b":@!$&'()*+,;=%")
_ESCAPE_OR_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})?")
_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{dev}{n}" for dev in ("COM", "LPT") for n in "0123456789¹²³"]
)
_RESERVED_SUFFIX = re.compile(r"\.part(\.json(\.tmp)?)?$", re.IGNORECASE)
_EXTENSION = re.compile(r"(?<=[^.])\.[A-Za-z0-9]{1,10}$")
# The `~` of a name that ends like `_with_query`'s or `_shorten`'s decoration.
_LOOKS_DECORATED = re.compile(r"~(?=(?:[0-9a-f]{8}){1,2}(?:\.[A-Za-z0-9]{1,10})?$)")
# Text made only of these characters needs no escaping (none is unsafe or invisible).
_PLAIN = re.compile(r"[A-Za-z0-9._-]*")
# A URL whose path is made of such text (no query, fragment, escapes or user info):
# `MirrorTree.path_for`'s fast path. Groups: origin, path.
_PLAIN_URL = re.compile(r"(https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?)(/[A-Za-z0-9._/-]*)?", re.ASCII)


def mirror_relpath(url: str) -> PurePosixPath:
    """The path, relative to `out/files`, where the body of `url` is stored.

    Deterministic, always relative, never escapes its root. Raises `InvalidMirrorURL` for a
    URL that is not http(s) or has no usable host or port.
    """
    parts = _split(url)
    host = _host_segment(parts)
    dirs, name = _path_segments(parts.path)
    if parts.query:
        name = _with_query(name, parts.query)
    name = _shorten(name)
    dirs = _fold_deep(dirs)
    rel = PurePosixPath(host, *dirs, name)
    _check_relative(rel)
    return rel


def sanitize_segment(raw: bytes) -> str:
    """One path segment's decoded bytes as a safe, readable file name (at most MAX_NAME_BYTES)."""
    return _shorten(_safe_name(raw))


def displaced_path(path: AnyPath) -> AnyPath:
    """Where the file of a URL goes when its mapped path is (or became) a directory (a str for
    a str, a Path for a Path)."""
    if isinstance(path, str):
        return path + DISPLACED_SUFFIX
    return path.with_name(path.name + DISPLACED_SUFFIX)


def current_location(path: Path) -> Path:
    """Where the file stored at `path` is now: there, or, when a later URL below it made that
    path a directory (`/a`, then `/a/b`), at its displaced twin beside it."""
    if path.is_dir():
        twin = displaced_path(path)
        if twin.is_file():
            return twin
    return path


class MirrorTree:
    """The `files/` folder of an output directory, with clash-safe placement of files."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self._root_prefix = os.path.join(str(self.root), "")
        # Directories this tree has made or found: they are never moved or removed (only files
        # are displaced), so the next file in one needs no mkdir/lstat round.
        self._known_dirs: set[str] = set()
        self._hosts: dict[str, str] = {}  # scheme://host[:port] -> its mapped segment

    def path_for(self, url: str) -> Path:
        """Absolute mapped path of `url` (pure; may be a directory when URLs clash)."""
        rel = self._plain_relpath(url)
        if rel is None:
            return self.join(mirror_relpath(url))
        return self.root / rel

    def path_text_for(self, url: str) -> str:
        """`str(path_for(url))`, without making a Path for the usual URL: a crawl maps every
        page, and pathlib's parsing would cost more than the mapping itself."""
        rel = self._plain_relpath(url)
        if rel is None:
            return str(self.join(mirror_relpath(url)))
        return self._root_prefix + rel

    def _plain_relpath(self, url: str) -> str | None:
        """`mirror_relpath(url)` as a string for the common URL that needs no decoding,
        escaping, shortening or folding (most URLs of a crawl); None for any other.

        Same result as the general mapping by construction (tests compare the two): every step
        it skips is one that would not change such a URL, and the host segment is computed by
        the general code, once per origin.
        """
        match = _PLAIN_URL.fullmatch(url)
        if match is None:
            return None
        origin = match.group(1)
        host = self._hosts.get(origin)
        if host is None:
            try:
                host = _host_segment(_split(origin))
            except InvalidMirrorURL:
                return None  # the general mapping raises the error
            if len(self._hosts) >= _KNOWN_HOSTS_MAX:
                self._hosts.clear()
            self._hosts[origin] = host
        names: list[str] = []
        pieces = (match.group(2) or "/").split("/")
        last = len(pieces) - 1
        for index in range(1, last + 1):  # pieces[0] is the nothing before the first `/`
            segment = pieces[index]
            if not segment:
                # The last one names the directory's index; an inner one, a folder of its own.
                names.append(DIRECTORY_INDEX if index == last else EMPTY_SEGMENT)
                continue
            if segment == "." or segment == ".." or len(segment) > MAX_NAME_BYTES:
                return None
            name = _guard_name(segment)
            names.append(LITERAL_INDEX if name == DIRECTORY_INDEX else name)
        if len(names) > MAX_DIRS + 1 or sum(map(len, names)) + len(names) > MAX_DIR_BYTES:
            return None
        return host + "/" + "/".join(names)

    def join(self, rel: PurePosixPath) -> Path:
        _check_relative(rel)
        path = self.root.joinpath(*rel.parts)
        # The parts were checked above (no "..", separators or empty names), so a plain prefix
        # test is enough here, and much cheaper than os.path.commonpath.
        if not str(path).startswith(self._root_prefix):
            raise UnsafePathError(f"{rel} is not inside {self.root}")
        return path

    def existing_file(self, path: Path) -> Path | None:
        """The stored file for mapped `path`: itself, its displaced twin, or None."""
        for candidate in (path, displaced_path(path)):
            try:
                if stat.S_ISREG(os.lstat(candidate).st_mode):
                    return candidate
            except OSError:
                continue
        return None

    def ensure_parent(self, path: str | Path) -> None:
        """Create the directories above `path` inside the root.

        A regular file (or anything but a real directory) standing where a directory is needed
        is moved to `<name>%%file`, so the final tree is the same whatever order URLs arrive in:
        `/a` and `/a/b` end up as `a%%file` and `a/b`.
        """
        parent = os.path.dirname(path)
        if parent in self._known_dirs:
            return
        rel = Path(path).relative_to(self.root)
        current = self.root
        os.makedirs(current, exist_ok=True)
        for part in rel.parts[:-1]:
            current = current / part
            _make_directory(current)
        if len(self._known_dirs) >= _KNOWN_DIRS_MAX:
            self._known_dirs.clear()
        self._known_dirs.add(parent)


def _make_directory(path: Path) -> None:
    for _ in range(16):
        try:
            os.mkdir(path)
            return
        except FileExistsError:
            pass
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue  # someone removed it between our mkdir and lstat: try again
        if stat.S_ISDIR(mode):
            return
        try:
            os.replace(path, displaced_path(path))
        except FileNotFoundError:
            continue
    raise StorageError(f"{path}: could not make a directory there (a file keeps reappearing)")


# --- pure mapping ------------------------------------------------------------------------------


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidMirrorURL(f"{url!r}: {exc}") from None
    if parts.scheme.lower() not in _DEFAULT_PORTS:
        raise InvalidMirrorURL(f"{url!r}: only http and https URLs are mirrored")
    if not parts.hostname:
        raise InvalidMirrorURL(f"{url!r}: no host")
    del port
    return parts


def _host_segment(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if host.endswith(".") and len(host) > 1:
        host = host[:-1]  # `example.com.` is the same host as `example.com`
    name = _escape_chars(host, _UNSAFE_IN_HOST)
    name = _guard_name(name)
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS[parts.scheme.lower()]:
        name = f"{name}+{port}"
    if parts.username is not None:
        name = f"{_user_prefix(parts.username, parts.password)}@{name}"
    return _shorten(name)


def _user_prefix(user: str, password: str | None) -> str:
    """`user` as it stands in the URL, escaped; a password only as 8 hex digits of its hash,
    so two logins stay apart without the secret reaching a file name."""
    prefix = _escape_chars(user, _UNSAFE_IN_HOST)
    if password:
        digest = hashlib.sha256(password.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        prefix = f"{prefix}~{digest}"
    return prefix


def _path_segments(path: str) -> tuple[list[str], str]:
    """(directory names, file name) after dot-segment removal, decoding and escaping."""
    # Browsers treat `\` as `/` in http(s) URLs; so do we, so `..\..\` is a dot segment too.
    pieces = path.replace("\\", "/").split("/")[1:]  # what precedes the first `/` is no segment
    stack: list[bytes] = []
    for raw in pieces:
        decoded = _segment_bytes(raw)
        if decoded == b"..":
            if stack:
                stack.pop()
        elif decoded != b".":
            stack.append(decoded)
    # RFC 3986 5.2.4: a path ending in `/`, `.` or `..` names a directory.
    is_directory = not pieces or pieces[-1] == "" or _segment_bytes(pieces[-1]) in (b".", b"..")
    if pieces and pieces[-1] == "":
        stack.pop()  # the empty piece after the last `/` names the directory's index
    names = [_segment_name(seg) for seg in stack]
    if is_directory:
        names.append(DIRECTORY_INDEX)
    return [_shorten(n) for n in names[:-1]], names[-1]


def _segment_bytes(raw: str) -> bytes:
    """A segment's bytes with the escapes RFC 3986 counts as equivalent decoded (see the module
    docstring); an escaped reserved character stays `%XX` (upper case), as does a bare `%`."""
    data = raw.encode("utf-8", "surrogatepass")
    if b"%" not in data:
        return data
    return _ESCAPE_OR_PERCENT.sub(_unescape, data)


def _unescape(match: re.Match[bytes]) -> bytes:
    digits = match.group(1)
    if digits is None:
        return b"%25"  # a `%` that starts no escape stands for itself, as `%25` does
    value = int(digits, 16)
    if value in _KEPT_ESCAPES:
        return b"%" + digits.upper()
    return bytes((value,))


def _segment_name(decoded: bytes) -> str:
    if not decoded:
        return EMPTY_SEGMENT
    name = _safe_name(decoded)
    return LITERAL_INDEX if name == DIRECTORY_INDEX else name


def _with_query(name: str, query: str) -> str:
    """`list.php` + `page=2` → `list@page=2~<hash8>.php`: readable, unique, extension kept."""
    raw = query.encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(raw).hexdigest()[:8]
    readable = _cut_escaped(
        _escape_chars(_decode(unquote_to_bytes(raw)), _UNSAFE_ASCII), QUERY_READABLE_BYTES
    )
    match = _EXTENSION.search(name)
    stem, ext = (name[: match.start()], match.group()) if match else (name, "")
    return f"{stem}@{readable}~{digest}{ext}"


def _safe_name(raw: bytes) -> str:
    name = _guard_name(_escape_chars(_decode(raw), _UNSAFE_ASCII))
    if "~" in name:
        # A name that ends as our decorations do (`~` and 8 or 16 hex digits, before an
        # extension: a query's, a shortened name's) gets that `~` escaped, so no URL's path
        # can take the name of another URL's query or shortened form.
        name = _LOOKS_DECORATED.sub("%7E", name)
    return name


def _decode(raw: bytes) -> str:
    # Invalid UTF-8 bytes survive as lone surrogates, then get escaped back to `%XX`.
    return raw.decode("utf-8", "surrogateescape")


def _escape_chars(text: str, unsafe: frozenset[str]) -> str:
    if _PLAIN.fullmatch(text) is not None:
        return text  # the common case, and safe in hosts and names alike: nothing to escape
    out: list[str] = []
    for ch in text:
        if ch in unsafe or _is_invisible(ch):
            out.append(_percent(ch))
        else:
            out.append(ch)
    return "".join(out)


def _is_invisible(ch: str) -> bool:
    # Controls, format characters (bidi overrides), surrogates, private use, line separators.
    category = unicodedata.category(ch)
    return category[0] == "C" or category in ("Zl", "Zp")


def _percent(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogateescape"))


def _guard_name(name: str) -> str:
    """Make an escaped name safe as a whole: trailing dots/spaces, devices, our own suffixes."""
    if name[-1:] in (".", " "):
        # Windows drops trailing dots and spaces; `.` and `..` become `%2E` and `.%2E`.
        name = name[:-1] + _percent(name[-1])
    base = name.split(".", 1)[0].rstrip(" ").upper()
    if base in _WINDOWS_DEVICES:
        name = _percent(name[0]) + name[1:]
    if _RESERVED_SUFFIX.search(name):
        dot = name.lower().rindex(".part")
        name = name[:dot] + "%2E" + name[dot + 1 :]
    return name


def _shorten(name: str) -> str:
    """Names over MAX_NAME_BYTES keep a readable head, a hash of the whole, and the extension."""
    if len(name.encode("utf-8", "surrogateescape")) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    match = _EXTENSION.search(name)
    ext = match.group() if match else ""
    head = _cut_escaped(name, MAX_NAME_BYTES - len(ext) - len(digest) - 1)
    return f"{head}~{digest}{ext}"


def _cut_escaped(text: str, limit: int) -> str:
    """A prefix of `text` of at most `limit` UTF-8 bytes that does not split a `%XX` escape."""
    out: list[str] = []
    size = 0
    i = 0
    while i < len(text):
        token = text[i : i + 3] if text[i] == "%" else text[i]
        width = len(token.encode("utf-8", "surrogateescape"))
        if size + width > limit:
            break
        out.append(token)
        size += width
        i += len(token)
    return "".join(out)


def _fold_deep(dirs: list[str]) -> list[str]:
    total = sum(len(d.encode("utf-8", "surrogateescape")) + 1 for d in dirs)
    if len(dirs) <= MAX_DIRS and total <= MAX_DIR_BYTES:
        return dirs
    kept: list[str] = []
    size = 0
    for d in dirs[:KEPT_DIRS_WHEN_FOLDING]:
        width = len(d.encode("utf-8", "surrogateescape")) + 1
        if size + width > KEPT_DIR_BYTES_WHEN_FOLDING:
            break
        kept.append(d)
        size += width
    rest = "/".join(dirs[len(kept) :]).encode("utf-8", "surrogateescape")
    return [*kept, DEEP_FOLD_PREFIX + hashlib.sha256(rest).hexdigest()[:16]]


def _check_relative(rel: PurePosixPath) -> None:
    """Defence in depth: whatever the code above did, refuse anything that could escape."""
    if rel.is_absolute() or not rel.parts:
        raise UnsafePathError(f"{rel!s} is not a relative path")
    for part in rel.parts:
        if part in ("", ".", "..") or "/" in part or "\\" in part or "\x00" in part:
            raise UnsafePathError(f"{rel!s} has an unsafe segment {part!r}")
