"""The WHATWG Encoding Standard's labels, and the Python codec that decodes each as a browser does.

`codec_for_label(label)` is the standard's "get an encoding" followed by the choice of a Python
codec: None for a label the standard does not list (browsers ignore it, so must we: Python
knows "utf-7", "utf-32", "unicode_escape", "rot13"... and no browser does), else a name that
`codecs.lookup` accepts.

`LABELS` is the standard's table (https://encoding.spec.whatwg.org/#names-and-labels, as of
the 2025 review draft), every label mapped to the standard's name of its encoding. `CODECS` maps
each of those encodings to the Python codec closest to the browser's decoder; where Python has
none close enough, to a codec this module registers ("whatwg-..."):

- windows-874 and windows-1250..1258: Python leaves some bytes 0x80-0x9F undefined (U+FFFD),
  where the standard's indexes map them to the C1 control of the same number (windows-1252's
  0x81 is U+0081); windows-1255 also gets 0xCA (U+05BA), KOI8-U the KOI8-RU letters at 0xAE and
  0xBE. Charmap codecs like Python's own: decoding costs what cp1252 costs.
- GBK and gb18030: the standard decodes both with the gb18030 decoder, which also reads a lone
  0x80 as U+20AC (Python's gb18030 does not); GBK's encoder (used for link queries) is GBK
  plus 0x80 for U+20AC, and writes four-byte gb18030 characters as character references, as
  Python's gbk does.
- Shift_JIS: decoded with cp932 (windows-31J: the NEC and IBM extensions browsers decode),
  and encoded with it too, except that the IBM extension kanji are written as the standard
  (and Windows) writes them, at 0xFA-0xFC, where Python's cp932 picks their NEC duplicates.
- ISO-2022-JP: decoded with Python's iso2022_jp_ext, which also reads half-width katakana
  (ESC ( I) as browsers do, and encoded with iso2022_jp, which, like a browser, never writes it.
- replacement (ISO-2022-KR, HZ-GB-2312, ISO-2022-CN): the standard decodes a whole non-empty
  document as one U+FFFD, because ASCII bytes in those encodings can be something else than
  ASCII (an attacker's "<script>"); a browser shows no link on such a page, so neither do we.
  Its output encoding, for queries, is UTF-8.
- x-user-defined: 0x80-0xFF are U+F780-U+F7FF.
"""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Callable

__all__ = [
    "CODECS",
    "LABELS",
    "REPLACEMENT",
    "SHIFT_JIS",
    "WINDOWS_1252",
    "X_USER_DEFINED",
    "codec_for_label",
]

# The standard's table: encoding name -> its labels.
_TABLE: dict[str, tuple[str, ...]] = {
    "UTF-8": ("unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "utf-8", "utf8",
              "x-unicode20utf8"),
    "IBM866": ("866", "cp866", "csibm866", "ibm866"),
    "ISO-8859-2": ("csisolatin2", "iso-8859-2", "iso-ir-101", "iso8859-2", "iso88592",
                   "iso_8859-2", "iso_8859-2:1987", "l2", "latin2"),
    "ISO-8859-3": ("csisolatin3", "iso-8859-3", "iso-ir-109", "iso8859-3", "iso88593",
                   "iso_8859-3", "iso_8859-3:1988", "l3", "latin3"),
    "ISO-8859-4": ("csisolatin4", "iso-8859-4", "iso-ir-110", "iso8859-4", "iso88594",
                   "iso_8859-4", "iso_8859-4:1988", "l4", "latin4"),
    "ISO-8859-5": ("csisolatincyrillic", "cyrillic", "iso-8859-5", "iso-ir-144", "iso8859-5",
                   "iso88595", "iso_8859-5", "iso_8859-5:1988"),
    "ISO-8859-6": ("arabic", "asmo-708", "csiso88596e", "csiso88596i", "csisolatinarabic",
                   "ecma-114", "iso-8859-6", "iso-8859-6-e", "iso-8859-6-i", "iso-ir-127",
                   "iso8859-6", "iso88596", "iso_8859-6", "iso_8859-6:1987"),
    "ISO-8859-7": ("csisolatingreek", "ecma-118", "elot_928", "greek", "greek8", "iso-8859-7",
                   "iso-ir-126", "iso8859-7", "iso88597", "iso_8859-7", "iso_8859-7:1987",
                   "sun_eu_greek"),
    "ISO-8859-8": ("csiso88598e", "csisolatinhebrew", "hebrew", "iso-8859-8", "iso-8859-8-e",
                   "iso-ir-138", "iso8859-8", "iso88598", "iso_8859-8", "iso_8859-8:1988",
                   "visual"),
    "ISO-8859-8-I": ("csiso88598i", "iso-8859-8-i", "logical"),
    "ISO-8859-10": ("csisolatin6", "iso-8859-10", "iso-ir-157", "iso8859-10", "iso885910",
                    "l6", "latin6"),
    "ISO-8859-13": ("iso-8859-13", "iso8859-13", "iso885913"),
    "ISO-8859-14": ("iso-8859-14", "iso8859-14", "iso885914"),
    "ISO-8859-15": ("csisolatin9", "iso-8859-15", "iso8859-15", "iso885915", "iso_8859-15",
                    "l9"),
    "ISO-8859-16": ("iso-8859-16",),
    "KOI8-R": ("cskoi8r", "koi", "koi8", "koi8-r", "koi8_r"),
    "KOI8-U": ("koi8-ru", "koi8-u"),
    "macintosh": ("csmacintosh", "mac", "macintosh", "x-mac-roman"),
    "windows-874": ("dos-874", "iso-8859-11", "iso8859-11", "iso885911", "tis-620",
                    "windows-874"),
    "windows-1250": ("cp1250", "windows-1250", "x-cp1250"),
    "windows-1251": ("cp1251", "windows-1251", "x-cp1251"),
    "windows-1252": ("ansi_x3.4-1968", "ascii", "cp1252", "cp819", "csisolatin1", "ibm819",
                     "iso-8859-1", "iso-ir-100", "iso8859-1", "iso88591", "iso_8859-1",
                     "iso_8859-1:1987", "l1", "latin1", "us-ascii", "windows-1252",
                     "x-cp1252"),
    "windows-1253": ("cp1253", "windows-1253", "x-cp1253"),
    "windows-1254": ("cp1254", "csisolatin5", "iso-8859-9", "iso-ir-148", "iso8859-9",
                     "iso88599", "iso_8859-9", "iso_8859-9:1989", "l5", "latin5",
                     "windows-1254", "x-cp1254"),
    "windows-1255": ("cp1255", "windows-1255", "x-cp1255"),
    "windows-1256": ("cp1256", "windows-1256", "x-cp1256"),
    "windows-1257": ("cp1257", "windows-1257", "x-cp1257"),
    "windows-1258": ("cp1258", "windows-1258", "x-cp1258"),
    "x-mac-cyrillic": ("x-mac-cyrillic", "x-mac-ukrainian"),
    "GBK": ("chinese", "csgb2312", "csiso58gb231280", "gb2312", "gb_2312", "gb_2312-80", "gbk",
            "iso-ir-58", "x-gbk"),
    "gb18030": ("gb18030",),
    "Big5": ("big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5"),
    "EUC-JP": ("cseucpkdfmtjapanese", "euc-jp", "x-euc-jp"),
    "ISO-2022-JP": ("csiso2022jp", "iso-2022-jp"),
    "Shift_JIS": ("csshiftjis", "ms932", "ms_kanji", "shift-jis", "shift_jis", "sjis",
                  "windows-31j", "x-sjis"),
    "EUC-KR": ("cseuckr", "csksc56011987", "euc-kr", "iso-ir-149", "korean", "ks_c_5601-1987",
               "ks_c_5601-1989", "ksc5601", "ksc_5601", "windows-949"),
    "replacement": ("csiso2022kr", "hz-gb-2312", "iso-2022-cn", "iso-2022-cn-ext", "iso-2022-kr",
                    "replacement"),
    "UTF-16BE": ("unicodefffe", "utf-16be"),
    "UTF-16LE": ("csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff", "utf-16",
                 "utf-16le"),
    "x-user-defined": ("x-user-defined",),
}  # fmt: skip

LABELS: dict[str, str] = {label: name for name, labels in _TABLE.items() for label in labels}

REPLACEMENT = "whatwg-replacement"
SHIFT_JIS = "whatwg-shift-jis"
WINDOWS_1252 = "whatwg-windows-1252"
X_USER_DEFINED = "whatwg-x-user-defined"

# Encoding name -> Python codec (as `codecs.lookup(...).name` spells it).
CODECS: dict[str, str] = {
    "UTF-8": "utf-8",
    "IBM866": "cp866",
    "ISO-8859-2": "iso8859-2",
    "ISO-8859-3": "iso8859-3",
    "ISO-8859-4": "iso8859-4",
    "ISO-8859-5": "iso8859-5",
    "ISO-8859-6": "iso8859-6",
    "ISO-8859-7": "iso8859-7",
    "ISO-8859-8": "iso8859-8",
    "ISO-8859-8-I": "iso8859-8",  # the same bytes; only the text direction differs
    "ISO-8859-10": "iso8859-10",
    "ISO-8859-13": "iso8859-13",
    "ISO-8859-14": "iso8859-14",
    "ISO-8859-15": "iso8859-15",
    "ISO-8859-16": "iso8859-16",
    "KOI8-R": "koi8-r",
    "KOI8-U": "whatwg-koi8-u",
    "macintosh": "mac-roman",
    "windows-874": "whatwg-windows-874",
    "windows-1250": "whatwg-windows-1250",
    "windows-1251": "whatwg-windows-1251",
    "windows-1252": WINDOWS_1252,
    "windows-1253": "whatwg-windows-1253",
    "windows-1254": "whatwg-windows-1254",  # also ISO-8859-9, as in browsers
    "windows-1255": "whatwg-windows-1255",
    "windows-1256": "cp1256",  # Python's maps every byte as the standard does
    "windows-1257": "whatwg-windows-1257",
    "windows-1258": "whatwg-windows-1258",
    "x-mac-cyrillic": "mac-cyrillic",
    "GBK": "whatwg-gbk",
    "gb18030": "whatwg-gb18030",
    "Big5": "big5hkscs",  # the standard's Big5 includes the HKSCS extensions
    "EUC-JP": "euc_jp",
    "ISO-2022-JP": "whatwg-iso-2022-jp",
    "Shift_JIS": SHIFT_JIS,
    "EUC-KR": "cp949",  # Unified Hangul Code: all 11,172 syllables, as browsers decode
    "replacement": REPLACEMENT,
    "UTF-16BE": "utf-16-be",
    "UTF-16LE": "utf-16-le",
    "x-user-defined": X_USER_DEFINED,
}

_ASCII_WHITESPACE = "\t\n\f\r "


def codec_for_label(label: str) -> str | None:
    """The Python codec for the encoding `label` names, or None when the standard lists no such
    label. Matching is ASCII case-insensitive after stripping ASCII whitespace, as the standard's
    "get an encoding" does (the Kelvin sign is no "k")."""
    label = label.strip(_ASCII_WHITESPACE)
    if not label.isascii():
        return None
    name = LABELS.get(label.lower())
    return None if name is None else CODECS[name]


# --- single-byte codecs ------------------------------------------------------------------------

_UNDEFINED = "\ufffe"  # what a charmap decoding table holds for a byte that decodes to nothing


def _table(base: str, patches: dict[int, str], c1_controls: bool) -> str:
    """A 256-character charmap decoding table: Python's codec `base` with the standard's changes."""
    table = []
    for byte in range(256):
        try:
            char = bytes((byte,)).decode(base)
        except UnicodeDecodeError:
            char = chr(byte) if c1_controls and 0x80 <= byte < 0xA0 else _UNDEFINED
        table.append(patches.get(byte, char))
    return "".join(table)


def _charmap(name: str, table: str) -> codecs.CodecInfo:
    encoding_table = codecs.charmap_build(table)

    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        return codecs.charmap_encode(text, errors, encoding_table)

    def decode(data: bytes, errors: str = "strict") -> tuple[str, int]:
        return codecs.charmap_decode(data, errors, table)

    return codecs.CodecInfo(encode, decode, name=name)


def _windows(number: int, patches: dict[int, str] | None = None) -> codecs.CodecInfo:
    base = f"cp{number}"
    return _charmap(f"whatwg-windows-{number}", _table(base, patches or {}, c1_controls=True))


def _x_user_defined() -> codecs.CodecInfo:
    table = "".join(chr(byte) for byte in range(0x80))
    table += "".join(chr(0xF780 + byte) for byte in range(0x80))
    return _charmap(X_USER_DEFINED, table)


# --- codecs that differ from Python's in a code point or two -----------------------------------

_EURO = "\u20ac"
_Handler = Callable[[UnicodeError], "tuple[str | bytes, int] | None"]


@functools.cache
def _first_then(handler: _Handler, mode: str) -> str:
    """The name of an error handler trying `handler`, then the error mode `mode` (registered on
    first use: one per mode a caller asks for, "replace" or "strict" in practice)."""
    fallback = codecs.lookup_error(mode)

    def handle(error: UnicodeError) -> tuple[str | bytes, int]:
        return handler(error) or fallback(error)

    name = f"whatwg-{handler.__name__}-{mode}"
    codecs.register_error(name, handle)
    return name


def _lone_0x80_is_euro(error: UnicodeError) -> tuple[str, int] | None:
    """The gb18030 decoder's first step: a lone 0x80 byte is U+20AC (cp936 put it there)."""
    if isinstance(error, UnicodeDecodeError) and error.object[error.start] == 0x80:
        return _EURO, error.start + 1
    return None


def _euro_is_0x80(error: UnicodeError) -> tuple[bytes, int] | None:
    """The GBK encoder writes U+20AC as 0x80, where gb18030 (and Python's gbk) have none."""
    if isinstance(error, UnicodeEncodeError) and error.object[error.start] == _EURO:
        return b"\x80", error.start + 1
    return None


def _split(
    name: str,
    decoder: str,
    encoder: str,
    decode_first: _Handler | None = None,
    encode_first: _Handler | None = None,
) -> codecs.CodecInfo:
    """A codec decoding with Python's `decoder` and encoding with `encoder`, each trying its
    `..._first` handler on an error before the caller's error mode."""

    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        if encode_first is not None:
            errors = _first_then(encode_first, errors)
        return text.encode(encoder, errors), len(text)

    def decode(data: bytes, errors: str = "strict") -> tuple[str, int]:
        if decode_first is not None:
            errors = _first_then(decode_first, errors)
        return bytes(data).decode(decoder, errors), len(data)

    return codecs.CodecInfo(encode, decode, name=name)


def _nec_selected_to_ibm() -> dict[str, bytes]:
    """The IBM extension kanji (lead bytes 0xFA-0xFC) that Python's cp932 encoder writes at
    their NEC-selected duplicates (0xED, 0xEE) instead: the standard's Shift_JIS encoder skips
    those duplicates (pointers 8272-8835), as Windows does, and writes the IBM bytes."""
    ibm: dict[str, bytes] = {}
    for lead in (0xFA, 0xFB, 0xFC):
        for trail in (*range(0x40, 0x7F), *range(0x80, 0xFD)):
            pair = bytes((lead, trail))
            try:
                char = pair.decode("cp932")
            except UnicodeDecodeError:
                continue
            if char.encode("cp932")[0] in (0xED, 0xEE):
                ibm.setdefault(char, pair)
    return ibm


_IBM_KANJI = _nec_selected_to_ibm()
_IBM_KANJI_RUN = re.compile("[" + "".join(_IBM_KANJI) + "]")


def _cp932_part(text: str, start: int, end: int, errors: str) -> bytes:
    """text[start:end] in cp932, an error reported at its place in the whole `text`."""
    try:
        return text[start:end].encode("cp932", errors)
    except UnicodeEncodeError as error:
        raise UnicodeEncodeError(
            "shift_jis", text, start + error.start, start + error.end, error.reason
        ) from None


def _shift_jis() -> codecs.CodecInfo:
    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        out, start = [], 0
        for match in _IBM_KANJI_RUN.finditer(text):
            out.append(_cp932_part(text, start, match.start(), errors))
            out.append(_IBM_KANJI[match.group()])
            start = match.end()
        out.append(_cp932_part(text, start, len(text), errors))
        return b"".join(out), len(text)

    def decode(data: bytes, errors: str = "strict") -> tuple[str, int]:
        return bytes(data).decode("cp932", errors), len(data)

    return codecs.CodecInfo(encode, decode, name=SHIFT_JIS)


def _replacement() -> codecs.CodecInfo:
    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        return text.encode("utf-8", errors), len(text)

    def decode(data: bytes, errors: str = "strict") -> tuple[str, int]:
        if not data:
            return "", 0
        error = UnicodeDecodeError(REPLACEMENT, bytes(data), 0, len(data), "not decodable")
        # "replace" gives the one U+FFFD for the whole document; "strict" raises.
        replacement, _end = codecs.lookup_error(errors)(error)
        return str(replacement), len(data)

    return codecs.CodecInfo(encode, decode, name=REPLACEMENT)


def _codecs() -> dict[str, codecs.CodecInfo]:
    infos = [
        _windows(874),
        _windows(1250),
        _windows(1251),
        _windows(1252),
        _windows(1253),
        _windows(1254),
        _windows(1255, {0xCA: "\u05ba"}),
        _windows(1257),
        _windows(1258),
        _charmap("whatwg-koi8-u", _table("koi8_u", {0xAE: "\u045e", 0xBE: "\u040e"}, False)),
        _x_user_defined(),
        _split("whatwg-gbk", "gb18030", "gbk", _lone_0x80_is_euro, _euro_is_0x80),
        _split("whatwg-gb18030", "gb18030", "gb18030", _lone_0x80_is_euro),
        _split("whatwg-iso-2022-jp", "iso2022_jp_ext", "iso2022_jp"),
        _shift_jis(),
        _replacement(),
    ]
    # codecs.lookup hands search functions the name lowercased, with "-" and " " as "_".
    return {info.name.replace("-", "_"): info for info in infos}


_REGISTERED = _codecs()
codecs.register(_REGISTERED.get)
