"""Mirror-tree mapping: hostile URLs, arbitrary URLs (hypothesis), and file/directory clashes."""

from __future__ import annotations

import hashlib
import os
import tempfile
import unicodedata
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.errors import InvalidMirrorURL
from storage.paths import MAX_NAME_BYTES, MirrorTree, displaced_path, mirror_relpath

HOSTILE = [
    ("http://h/../../etc/passwd", "h/etc/passwd"),
    ("http://h/%2e%2e/%2e%2e/etc/passwd", "h/etc/passwd"),
    ("http://h/%2E%2E%2f%2E%2E%2fetc", "h/..%2F..%2Fetc"),
    ("http://h/..%2f..%2fetc/passwd", "h/..%2F..%2Fetc/passwd"),
    ("http://h/a\\..\\..\\..\\b", "h/b"),
    ("http://h/a%5c..%5cb", "h/a%5C..%5Cb"),
    ("http://h/a%00b", "h/a%00b"),
    ("http://h/%00", "h/%00"),
    ("http://h/a%0d%0ab", "h/a%0D%0Ab"),
    ("http://h/CON", "h/%43ON"),
    ("http://h/dir/nul.txt", "h/dir/%6Eul.txt"),
    ("http://h/com1/x", "h/%63om1/x"),
    ("http://h/...", "h/..%2E"),
    ("http://h/a./b ", "h/a%2E/b%20"),
    ("http://h/a//b///c", "h/a/%%/b/%%/%%/c"),
    ("http://h/a//..", "h/a/index.html"),
    ("http://h/a/./b/../c", "h/a/c"),
    ("http://h/a/..", "h/index.html"),
    ("http://h", "h/index.html"),
    ("http://h/dir/", "h/dir/index.html"),
    ("http://h/dir/index.html", "h/dir/%69ndex.html"),
    ("http://h/x.part", "h/x%2Epart"),
    ("http://h/x.part.json", "h/x%2Epart.json"),
    ("http://h/x.PART.json.tmp", "h/x%2EPART.json.tmp"),
    ("http://h/a%2Fb", "h/a%2Fb"),
    ("http://h/100%25", "h/100%2525"),
    ("http://h/p%2bq", "h/p%252Bq"),
    ("http://h/a:b", "h/a%3Ab"),
    ("http://h/a%%file", "h/a%2525%2525file"),
    ("http://h/q?a=1&b=/../x", "h/q@a=1&b=%2F..%2Fx~{h}"),
    ("http://h/list.php?page=2", "h/list@page=2~{h}.php"),
    ("http://h/?x", "h/index@x~{h}.html"),
    ("http://H.Example.COM.:8080/", "h.example.com+8080/index.html"),
    ("https://h:443/x", "h/x"),
    ("http://h:443/x", "h+443/x"),
    ("http://[::1]:81/x", "%3A%3A1+81/x"),
    ("http://user:pw@h/x#frag", "user~30c952fa@h/x"),
    ("http://a%40b@h:81/x", "a%2540b@h+81/x"),
    ("http://h/\u202egnp.exe", "h/%E2%80%AEgnp.exe"),
    ("http://h/%ff%fe", "h/%FF%FE"),
    ("http://h/caf%C3%A9", "h/café"),
]


@pytest.mark.parametrize(("url", "expected"), HOSTILE)
def test_hostile_urls_map_inside_the_tree(url: str, expected: str) -> None:
    # `{h}`: the first 8 hex digits of the raw query's sha256, which keeps queries apart.
    query_hash = hashlib.sha256(urlsplit(url).query.encode()).hexdigest()[:8]
    assert mirror_relpath(url) == PurePosixPath(expected.replace("{h}", query_hash))


def test_ten_thousand_character_segment_is_shortened_with_a_hash() -> None:
    rel = mirror_relpath("http://h/" + "a" * 10_000 + ".html")
    name = rel.name
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert name.startswith("aaaa") and name.endswith(".html") and "~" in name
    other = mirror_relpath("http://h/" + "a" * 9_999 + "b.html")
    assert other != rel


def test_a_path_cannot_take_the_name_of_another_url_s_query() -> None:
    query = mirror_relpath("http://h/q.php?x=1")
    crafted = mirror_relpath(f"http://h/{query.name}")  # `q@x=1~<hash>.php` as a path
    assert crafted != query and crafted.name == query.name.replace("~", "%7E")


def test_a_path_cannot_take_the_shortened_name_of_a_long_one() -> None:
    long = mirror_relpath("http://h/" + "a" * 10_000 + ".html")
    crafted = mirror_relpath(f"http://h/{long.name}")
    assert crafted != long  # its `~` escaped, it is over the limit and shortened in turn
    short = mirror_relpath("http://h/notes~0123456789abcdef.txt")
    assert short.name == "notes%7E0123456789abcdef.txt"


def test_a_tilde_elsewhere_stays_readable() -> None:
    assert mirror_relpath("http://h/~user/notes~1.txt") == PurePosixPath("h/~user/notes~1.txt")


def test_long_multibyte_names_are_cut_on_character_boundaries() -> None:
    name = mirror_relpath("http://h/" + "é" * 300).name
    assert len(name.encode()) <= MAX_NAME_BYTES
    name.encode("utf-8")  # raises if a character was split


def test_long_escaped_names_are_not_cut_inside_an_escape() -> None:
    name = mirror_relpath("http://h/" + "%00" * 200).name
    head = name.split("~")[0]
    assert len(head) % 3 == 0 and set(head[::3]) == {"%"}


def test_very_deep_paths_are_folded_below_path_max() -> None:
    rel = mirror_relpath("http://h/" + "abcdefgh/" * 2000 + "f")
    assert len(str(rel).encode()) < 1600
    assert rel.name == "f"
    assert mirror_relpath("http://h/" + "abcdefgh/" * 1999 + "x/f") != rel


@pytest.mark.parametrize(
    "url", ["ftp://h/x", "file:///etc/passwd", "http:///x", "http://h:99999/x", "//h/x", "x"]
)
def test_urls_that_name_no_file_are_rejected(url: str) -> None:
    with pytest.raises(InvalidMirrorURL):
        mirror_relpath(url)


# --- properties ------------------------------------------------------------------------------

_PIECES = st.sampled_from(
    ["..", ".", "%2e", "%2E%2e", "%2f", "%5c", "\\", "/", "//", "%00", "%", "%zz", "CON",
     "nul.txt", " ", "~", "@", "+", "?", "#", ":", "%%file", ".part", ".json", "é", "\u202e",
     "\r", "\n", "\t", "\x7f", "\udcff", "a" * 300]
)
_SEGMENT_TEXT = st.lists(st.one_of(_PIECES, st.text(max_size=12)), max_size=6).map("".join)
_HOSTS = st.one_of(
    st.sampled_from(["h", "example.com", "127.0.0.1", "[::1]", "..", "a+b", "xn--caf-dma"]),
    st.from_regex(r"[a-z0-9.\-]{1,20}", fullmatch=True),
)
_URLS = st.builds(
    lambda scheme, host, port, path, query: f"{scheme}://{host}{port}{path}{query}",
    st.sampled_from(["http", "https", "HTTP"]),
    _HOSTS,
    st.one_of(st.just(""), st.integers(0, 70000).map(lambda p: f":{p}")),
    st.lists(_SEGMENT_TEXT, max_size=8).map(lambda segs: "/" + "/".join(segs)),
    st.one_of(st.just(""), _SEGMENT_TEXT.map(lambda q: "?" + q)),
)
_ANY_URLS = st.one_of(_URLS, st.text(max_size=80).map(lambda t: "http://h/" + t), st.text())


def _check_safe(rel: PurePosixPath) -> None:
    assert not rel.is_absolute()
    assert len(rel.parts) >= 2
    for part in rel.parts:
        assert part not in ("", ".", "..")
        assert "/" not in part and "\\" not in part
        assert not any(unicodedata.category(c)[0] == "C" for c in part)
        assert len(part.encode("utf-8", "surrogateescape")) <= MAX_NAME_BYTES
        assert not part.endswith((".", " "))
        assert not part.lower().endswith((".part", ".part.json", ".part.json.tmp"))
        assert part.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT1"}


@settings(max_examples=1500, deadline=None)
@given(_ANY_URLS)
def test_any_url_maps_inside_the_root_deterministically(url: str) -> None:
    try:
        rel = mirror_relpath(url)
    except InvalidMirrorURL:
        return
    assert mirror_relpath(url) == rel
    _check_safe(rel)
    root = Path("/srv/out/files")
    joined = os.path.normpath(root.joinpath(*rel.parts))
    assert joined.startswith(str(root) + os.sep)
    assert MirrorTree(root).path_for(url) == root.joinpath(*rel.parts)
    assert MirrorTree(root).path_text_for(url) == str(root.joinpath(*rel.parts))


@settings(max_examples=200, deadline=None)
@given(st.lists(_URLS, min_size=1, max_size=4))
def test_mapped_paths_can_be_created_on_disk(urls: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        tree = MirrorTree(Path(folder) / "files")
        for url in urls:
            try:
                path = tree.path_for(url)
            except InvalidMirrorURL:
                continue
            tree.ensure_parent(path)
            target = path if not path.is_dir() else displaced_path(path)
            target.write_bytes(b"x")
            resolved = target.resolve()
            assert resolved.is_relative_to(tree.root.resolve())


# URLs made of the characters `MirrorTree.path_for`'s fast path accepts, with the names that
# still need the general rules (dot segments, devices, reserved suffixes, trailing dots, long).
_PLAIN_SEGMENTS = st.one_of(
    st.from_regex(r"[A-Za-z0-9._-]{0,12}", fullmatch=True),
    st.sampled_from(
        ["", ".", "..", "...", "a.", "CON", "nul.txt", "Com1", "x.part", "x.PART.json", "a" * 199,
         "a" * 200, "a" * 201, "b" * 120, "index.html"]
    ),
)
_PLAIN_URLS = st.builds(
    lambda scheme, host, port, segments: f"{scheme}://{host}{port}/" + "/".join(segments),
    st.sampled_from(["http", "https"]),
    st.one_of(
        st.sampled_from(["h", "H.Example.COM.", "127.0.0.1", "..", ".", "a-b", "con"]),
        st.from_regex(r"[A-Za-z0-9.\-]{1,20}", fullmatch=True),
    ),
    st.one_of(st.just(""), st.integers(0, 99999).map(lambda p: f":{p}"), st.just(":080")),
    st.lists(_PLAIN_SEGMENTS, max_size=40),
)


@settings(max_examples=2000, deadline=None)
@given(_PLAIN_URLS)
def test_fast_mapping_of_plain_urls_matches_the_general_one(url: str) -> None:
    tree = MirrorTree("/srv/out/files")
    try:
        rel = mirror_relpath(url)
    except InvalidMirrorURL:
        with pytest.raises(InvalidMirrorURL):
            tree.path_for(url)
        return
    assert tree.path_for(url) == tree.root.joinpath(*rel.parts)
    assert tree.path_for(url) == tree.root.joinpath(*rel.parts)  # again, host segment cached
    assert tree.path_text_for(url) == str(tree.root.joinpath(*rel.parts))


def test_str_paths_get_the_same_folders_and_displaced_names_as_paths(tmp_path: Path) -> None:
    by_str, by_path = MirrorTree(tmp_path / "s"), MirrorTree(tmp_path / "p")
    for url in ("http://h/a/b/c.html", "http://h/a/b/", "http://h/a?q=1"):
        text = by_str.path_text_for(url)
        by_str.ensure_parent(text)
        by_path.ensure_parent(by_path.path_for(url))
        assert os.path.isdir(os.path.dirname(text))
        assert displaced_path(text) == str(displaced_path(Path(text)))
    assert {p.relative_to(tmp_path / "s") for p in (tmp_path / "s").rglob("*")} == {
        p.relative_to(tmp_path / "p") for p in (tmp_path / "p").rglob("*")
    }


def test_plain_urls_take_the_fast_mapping() -> None:
    tree = MirrorTree("/srv/out/files")
    assert tree._plain_relpath("http://Example.com:8080/a/b.html") == "example.com+8080/a/b.html"
    assert tree._plain_relpath("https://h/dir/") == "h/dir/index.html"
    assert tree._plain_relpath("http://h/a/../b") is None  # dot segments: the general rules
    assert tree._plain_relpath("http://h/a?q=1") is None


# --- file / directory clash ------------------------------------------------------------------


def _store(tree: MirrorTree, url: str, data: bytes) -> Path:
    path = tree.path_for(url)
    tree.ensure_parent(path)
    target = displaced_path(path) if path.is_dir() else path
    target.write_bytes(data)
    return target


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize("order", [("/a", "/a/b"), ("/a/b", "/a")])
def test_url_that_is_file_and_directory_resolves_the_same_in_any_order(
    tmp_path: Path, order: tuple[str, str]
) -> None:
    tree = MirrorTree(tmp_path / "files")
    for path in order:
        _store(tree, "http://h" + path, path.encode())
    assert _snapshot(tree.root) == {"h/a%%file": b"/a", "h/a/b": b"/a/b"}
    assert tree.existing_file(tree.path_for("http://h/a")) == tree.root / "h/a%%file"
    assert tree.existing_file(tree.path_for("http://h/a/b")) == tree.root / "h/a/b"


def test_deep_clash_moves_each_blocking_file_aside(tmp_path: Path) -> None:
    tree = MirrorTree(tmp_path / "files")
    for path in ("/a", "/a/b", "/a/b/c"):
        _store(tree, "http://h" + path, path.encode())
    assert _snapshot(tree.root) == {
        "h/a%%file": b"/a",
        "h/a/b%%file": b"/a/b",
        "h/a/b/c": b"/a/b/c",
    }


def test_symlink_in_the_tree_is_not_followed_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    tree = MirrorTree(tmp_path / "files")
    (tree.root / "h").mkdir(parents=True)
    (tree.root / "h" / "a").symlink_to(outside)
    _store(tree, "http://h/a/b", b"data")
    assert list(outside.iterdir()) == []
    assert (tree.root / "h/a/b").read_bytes() == b"data"
