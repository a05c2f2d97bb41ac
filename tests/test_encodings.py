"""Charset labels are read as the WHATWG Encoding Standard reads them, each encoding decoded with
the Python codec closest to a browser's decoder (crawler.encodings, through html_encoding)."""

from __future__ import annotations

import codecs

import pytest

from crawler.encodings import CODECS, LABELS, codec_for_label
from crawler.extract import html_encoding

# The codec each of the standard's encodings must decode with: the brief this module answers.
EXPECTED_CODECS = {
    "UTF-8": "utf-8",
    "IBM866": "cp866",
    **{f"ISO-8859-{n}": f"iso8859-{n}" for n in (2, 3, 4, 5, 6, 7, 8, 10, 13, 14, 15, 16)},
    "ISO-8859-8-I": "iso8859-8",
    "KOI8-R": "koi8-r",
    "KOI8-U": "whatwg-koi8-u",
    "macintosh": "mac-roman",
    "windows-874": "whatwg-windows-874",
    **{f"windows-{n}": f"whatwg-windows-{n}" for n in (1250, 1251, 1252, 1253, 1254, 1255)},
    "windows-1256": "cp1256",
    "windows-1257": "whatwg-windows-1257",
    "windows-1258": "whatwg-windows-1258",
    "x-mac-cyrillic": "mac-cyrillic",
    "GBK": "whatwg-gbk",
    "gb18030": "whatwg-gb18030",
    "Big5": "big5hkscs",
    "EUC-JP": "euc_jp",
    "ISO-2022-JP": "whatwg-iso-2022-jp",
    "Shift_JIS": "whatwg-shift-jis",
    "EUC-KR": "cp949",
    "replacement": "whatwg-replacement",
    "UTF-16BE": "utf-16-be",
    "UTF-16LE": "utf-16-le",
    "x-user-defined": "whatwg-x-user-defined",
}


@pytest.mark.parametrize("label", sorted(LABELS))
def test_every_label_of_the_standard_names_its_encodings_codec(label: str) -> None:
    expected = EXPECTED_CODECS[LABELS[label]]
    assert html_encoding(b"<p>x</p>", f"text/html; charset={label}") == expected
    assert html_encoding(b"<p>x</p>", f"text/html; charset={label.upper()}") == expected


def test_the_label_table_is_the_standards() -> None:
    """Spot checks against the spec's table (2025 review draft), and its size: 228 labels of
    40 encodings, every encoding's lowercased name among its labels."""
    assert len(LABELS) == 228
    assert set(CODECS) == set(EXPECTED_CODECS) == set(LABELS.values())
    assert len(CODECS) == 40
    assert all(LABELS[name.lower()] == name for name in CODECS)
    spot_checks = {
        "unicode20utf8": "UTF-8",
        "x-unicode20utf8": "UTF-8",
        "866": "IBM866",
        "asmo-708": "ISO-8859-6",
        "iso-8859-6-i": "ISO-8859-6",
        "sun_eu_greek": "ISO-8859-7",
        "visual": "ISO-8859-8",
        "logical": "ISO-8859-8-I",
        "l9": "ISO-8859-15",
        "koi": "KOI8-R",
        "koi8-ru": "KOI8-U",
        "x-mac-roman": "macintosh",
        "tis-620": "windows-874",
        "iso-8859-11": "windows-874",
        "ansi_x3.4-1968": "windows-1252",
        "cp819": "windows-1252",
        "us-ascii": "windows-1252",
        "latin5": "windows-1254",
        "iso_8859-9:1989": "windows-1254",
        "x-mac-ukrainian": "x-mac-cyrillic",
        "gb2312": "GBK",
        "iso-ir-58": "GBK",
        "big5-hkscs": "Big5",
        "cseucpkdfmtjapanese": "EUC-JP",
        "ms932": "Shift_JIS",
        "windows-31j": "Shift_JIS",
        "windows-949": "EUC-KR",
        "ks_c_5601-1987": "EUC-KR",
        "hz-gb-2312": "replacement",
        "iso-2022-cn-ext": "replacement",
        "unicodefffe": "UTF-16BE",
        "utf-16": "UTF-16LE",
        "ucs-2": "UTF-16LE",
    }
    assert {label: LABELS[label] for label in spot_checks} == spot_checks


def test_the_table_agrees_with_webencodings() -> None:
    from webencodings.labels import LABELS as labels  # a test dependency (pyproject [test])

    assert {label: name.lower() for label, name in LABELS.items()} == labels


@pytest.mark.parametrize("codec", sorted(set(CODECS.values())))
def test_every_codec_decodes_any_bytes_and_encodes_a_query(codec: str) -> None:
    assert codecs.lookup(codec).name == codec
    assert isinstance(bytes(range(256)).decode(codec, "replace"), str)
    assert "caf".encode(codec) in (b"caf", "caf".encode("utf-16-le"), "caf".encode("utf-16-be"))


def test_labels_are_matched_as_the_standard_matches_them() -> None:
    assert codec_for_label(" \tShift_JIS\n") == "whatwg-shift-jis"
    assert codec_for_label("LATIN1") == "whatwg-windows-1252"
    assert codec_for_label("\u212aoi8-r") is None  # Kelvin sign: "K".lower() is "k" in Python
    assert codec_for_label("shift_jis\x0b") is None  # vertical tab is not ASCII whitespace
    assert codec_for_label("") is None


@pytest.mark.parametrize(
    ("codec", "byte", "char"),
    [
        *(("whatwg-windows-1252", b, chr(b)) for b in (0x81, 0x8D, 0x8F, 0x90, 0x9D)),
        ("whatwg-windows-1252", 0x80, "\u20ac"),
        ("whatwg-windows-1250", 0x98, "\x98"),
        ("whatwg-windows-1251", 0x98, "\x98"),
        ("whatwg-windows-1253", 0x9F, "\x9f"),
        ("whatwg-windows-874", 0x81, "\x81"),
        ("whatwg-windows-1255", 0xCA, "\u05ba"),
        ("whatwg-windows-1257", 0x9F, "\x9f"),
        ("whatwg-koi8-u", 0xAE, "\u045e"),
        ("whatwg-koi8-u", 0xBE, "\u040e"),
        ("whatwg-x-user-defined", 0x80, "\uf780"),
        ("whatwg-x-user-defined", 0xFF, "\uf7ff"),
    ],
)
def test_single_byte_codecs_follow_the_standards_indexes(codec: str, byte: int, char: str) -> None:
    assert bytes([byte]).decode(codec) == char
    assert char.encode(codec) == bytes([byte])


def test_bytes_the_standard_leaves_unmapped_stay_errors() -> None:
    with pytest.raises(UnicodeDecodeError):
        b"\xaa".decode("whatwg-windows-1253")
    assert b"a\xaab".decode("whatwg-windows-1253", "replace") == "a\ufffdb"
    with pytest.raises(UnicodeEncodeError):
        "\x80".encode("whatwg-windows-1252")  # 0x80 is U+20AC: U+0080 has no byte


def test_gbk_and_gb18030_read_0x80_as_the_euro_sign() -> None:
    assert b"a\x80b\x81\x80".decode("whatwg-gbk") == "a\u20acb\u4e90"  # 0x81 0x80 is a pair
    assert b"\x80".decode("whatwg-gb18030") == "\u20ac"
    assert "\u20ac\u4e2d".encode("whatwg-gbk") == b"\x80\xd6\xd0"
    assert "\u20ac".encode("whatwg-gb18030") == b"\xa2\xe3"
    with pytest.raises(UnicodeDecodeError):
        b"\xff".decode("whatwg-gbk")
    with pytest.raises(UnicodeEncodeError) as raised:
        "\u20ac\U00020000".encode("whatwg-gbk")  # four bytes in gb18030: none in GBK
    assert (raised.value.start, raised.value.end) == (1, 2)


def test_the_replacement_codec_reads_any_document_as_one_replacement_character() -> None:
    assert b'<a href="/x">x</a>'.decode("whatwg-replacement", "replace") == "\ufffd"
    assert b"".decode("whatwg-replacement") == ""
    with pytest.raises(UnicodeDecodeError):
        b"x".decode("whatwg-replacement")
    assert "caf\u00e9".encode("whatwg-replacement") == "caf\u00e9".encode()


def test_iso_2022_jp_reads_half_width_katakana_and_writes_plain_iso_2022_jp() -> None:
    assert b"\x1b(I\x31\x1b(B".decode("whatwg-iso-2022-jp") == "\uff71"
    assert "\u65e5".encode("whatwg-iso-2022-jp") == b"\x1b$BF|\x1b(B"


def test_shift_jis_decodes_as_cp932_and_writes_ibm_kanji_as_browsers_do() -> None:
    every_pair = bytes(
        b for lead in range(0x81, 0x100) for t in range(0x40, 0x100) for b in (lead, t)
    )
    assert every_pair.decode("whatwg-shift-jis", "replace") == every_pair.decode("cp932", "replace")
    assert "\u7e8a\u9ad9\u2170".encode("cp932") == b"\xed\x40\xee\xe0\xee\xef"  # NEC-selected
    assert "\u7e8a\u9ad9\u2170".encode("whatwg-shift-jis") == b"\xfa\x5c\xfb\xfc\xfa\x40"
    assert "\u2460\u2116\u2235".encode("whatwg-shift-jis") == b"\x87\x40\x87\x82\x81\xe6"
    with pytest.raises(UnicodeEncodeError) as raised:
        "\u7e8ax\u203d".encode("whatwg-shift-jis")
    assert (raised.value.start, raised.value.end) == (2, 3)
