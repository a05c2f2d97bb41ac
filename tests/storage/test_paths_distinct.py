"""Distinct URLs get distinct files: the mirror tree draws RFC 3986's line, as the frontier does.

Before, each pair below shared one file, so the second download overwrote the first's body while
both records pointed at it.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from crawler.urls import canonicalize
from storage import Outcome, Store, download
from storage.paths import MirrorTree, mirror_relpath
from tests.storage.origin import Body, Origin, Resource

# Pairs of paths that are different resources by RFC 3986 (a server may answer them apart).
APART = [
    ("/dir/", "/dir/index.html"),
    ("/a//b", "/a/b"),
    ("/p+q", "/p%2Bq"),
    ("/a:b", "/a%3Ab"),
    ("/a@b", "/a%40b"),
    ("/x;y=1", "/x%3By=1"),
    ("/100%25", "/100%2525"),
    ("/dir/?x=1", "/dir/index.html?x=1"),
    ("//lead", "/lead"),
]


# The pairs our client also sends apart: like aiohttp's (yarl's), it writes `%3A`, `%40` and
# `%3B` of a path as `:`, `@` and `;`, so those pairs are one request and one body.
ON_THE_WIRE = [pair for pair in APART if "?" not in pair[1] and "%3" not in pair[1] + pair[0]]
ON_THE_WIRE = [pair for pair in ON_THE_WIRE if "%40" not in pair[1]]


@pytest.mark.parametrize(("first", "second"), APART)
def test_different_resources_map_to_different_files(first: str, second: str) -> None:
    assert mirror_relpath("http://h" + first) != mirror_relpath("http://h" + second)


def test_user_info_keeps_logins_apart_and_never_writes_the_password() -> None:
    plain = mirror_relpath("http://h/c")
    alice = mirror_relpath("http://alice:s3cret@h/c")
    other = mirror_relpath("http://alice:other@h/c")
    assert len({plain, alice, other}) == 3
    assert "s3cret" not in str(alice)
    assert alice.parts[0].startswith("alice~")


# Pairs that are one resource by RFC 3986 6.2.2 (the frontier's canonical form is the same).
SAME = [
    ("/%41b", "/Ab"),
    ("/caf%C3%A9", "/café"),
    ("/a%7Cb", "/a|b"),
    ("/%5Bx%5D", "/[x]"),
    ("/p%2bq", "/p%2Bq"),
    ("/a/./b/../c", "/a/c"),
    ("/100%", "/100%25"),
]


@pytest.mark.parametrize(("first", "second"), SAME)
def test_equivalent_forms_share_a_file(first: str, second: str) -> None:
    assert mirror_relpath("http://h" + first) == mirror_relpath("http://h" + second)


_PIECES = st.sampled_from(
    ["a", "b", "", ".", "..", "index.html", "%2e", "+", "%2B", "%2b", ":", "%3A", "@", "%40",
     "%", "%25", "%2525", "%41", "A", "é", "%C3%A9", "|", "%7C", "[", "%5B", "%2F", "%5C",
     "~", "%7E", "=", "%3D", "%%", "a%%file", "%ff", " ", "%20", "x.part", "CON"]
)
_PATHS = st.lists(st.lists(_PIECES, max_size=3).map("".join), max_size=5).map(
    lambda segments: "/" + "/".join(segments)
)
_QUERIES = st.one_of(st.just(""), st.sampled_from(["?", "?a=1", "?a=%31", "?b"]))


@settings(max_examples=3000, deadline=None)
@given(_PATHS, _QUERIES, _PATHS, _QUERIES)
def test_urls_the_frontier_keeps_apart_get_files_apart(
    path1: str, query1: str, path2: str, query2: str
) -> None:
    first, second = "http://h" + path1 + query1, "http://h" + path2 + query2
    assume(first == first.rstrip() and second == second.rstrip())  # see the next test
    if canonicalize(first) != canonicalize(second):
        assert mirror_relpath(first) != mirror_relpath(second)


@settings(max_examples=2000, deadline=None)
@given(_PATHS)
def test_a_url_and_its_canonical_form_share_a_file(path: str) -> None:
    assume(path == path.rstrip())  # canonicalize strips a URL's surrounding spaces
    url = "http://h" + path
    assert mirror_relpath(url) == mirror_relpath(canonicalize(url))
    tree = MirrorTree("/srv/out/files")
    assert tree.path_text_for(canonicalize(url)) == str(tree.root / mirror_relpath(url))


async def test_each_of_the_colliding_pairs_keeps_its_own_body(
    session, origin: Origin, store: Store
) -> None:
    """On a real server and disk: every URL's record names a file holding that URL's body."""
    paths = [path for pair in ON_THE_WIRE for path in pair]
    for seed, path in enumerate(paths):
        origin.resources[path] = Resource(Body(1000 + seed, seed=seed))
    records = [await download(session, origin.url(path), store) for path in paths]
    assert {origin_request.path for origin_request in origin.requests} == set(paths)
    for seed, (path, record) in enumerate(zip(paths, records, strict=True)):
        assert record.outcome is Outcome.STORED, (path, record.error)
        stored = store.locate(record.path).read_bytes()
        assert stored == Body(1000 + seed, seed=seed).bytes(), path
    assert len({PurePosixPath(record.path) for record in records}) == len(paths)
