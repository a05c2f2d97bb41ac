"""Property tests: canonicalization is idempotent and fingerprints are stable, for URLs
hypothesis builds from hostile parts (escapes, dot segments, unicode, case, ports...)."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.urls import InvalidURL, canonical_parts, canonicalize, fingerprint

LABEL_CHARS = string.ascii_letters + string.digits + "-" + "äöüßéñ"
PATH_CHARS = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/%? #[]\\\"<>{}|^`äé€\x00\x7f"

labels = st.text(LABEL_CHARS, min_size=1, max_size=10)
hosts = st.one_of(
    st.lists(labels, min_size=1, max_size=4).map(".".join),
    st.sampled_from(["127.0.0.1", "[::1]", "[2001:DB8::1]", "LOCALHOST", "a.test."]),
)
escapes = st.integers(0, 255).map(lambda b: f"%{b:02x}" if b % 2 else f"%{b:02X}")
segment = st.one_of(
    st.text(PATH_CHARS, max_size=8),
    st.sampled_from([".", "..", "%2e", "%2E%2e", ""]),
    escapes,
)
paths = st.lists(segment, max_size=6).map(lambda parts: "/" + "/".join(parts))
queries = st.one_of(st.none(), st.text(PATH_CHARS + "=&", max_size=20))
ports = st.one_of(st.none(), st.integers(0, 65535))
schemes = st.sampled_from(["http", "https", "HTTP", "Https"])


@st.composite
def urls(draw: st.DrawFn) -> str:
    url = f"{draw(schemes)}://{draw(hosts)}"
    port = draw(ports)
    if port is not None:
        url += f":{port}"
    url += draw(paths)
    query = draw(queries)
    if query is not None:
        url += "?" + query
    if draw(st.booleans()):
        url += "#" + draw(st.text(max_size=5))
    return url


@given(urls(), st.booleans())
@settings(max_examples=400)
def test_canonicalize_is_idempotent(url: str, sort_query: bool) -> None:
    try:
        once = canonicalize(url, sort_query=sort_query)
    except InvalidURL:
        return
    assert canonicalize(once, sort_query=sort_query) == once


@given(urls())
@settings(max_examples=300)
def test_fingerprint_is_stable_under_canonicalization(url: str) -> None:
    try:
        first = fingerprint(url)
    except InvalidURL:
        return
    assert fingerprint(canonicalize(url)) == first
    assert fingerprint(url) == first  # deterministic
    assert len(first) == 16


@given(urls())
@settings(max_examples=300)
def test_canonical_urls_are_plain_ascii_without_fragments(url: str) -> None:
    try:
        parts = canonical_parts(url)
    except InvalidURL:
        return
    assert parts.url.isascii()
    assert "#" not in parts.url
    assert not any(ch in parts.url for ch in " \t\r\n\x00\x7f\"<>\\^`{|}")
    assert parts.url.startswith(f"{parts.scheme}://")
    assert "/./" not in parts.url.split("?")[0]
    assert "/../" not in parts.url.split("?")[0]


@given(st.text(max_size=60))
@settings(max_examples=300)
def test_any_text_either_fails_cleanly_or_canonicalizes_idempotently(text: str) -> None:
    try:
        once = canonicalize(text)
    except InvalidURL:
        return
    assert canonicalize(once) == once


@given(urls())
@settings(max_examples=200)
def test_case_of_scheme_and_ascii_host_does_not_matter(url: str) -> None:
    scheme, rest = url.split("://", 1)
    host_end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    flipped = f"{scheme.swapcase()}://{rest[:host_end].upper()}{rest[host_end:]}"
    try:
        expected = fingerprint(url)
    except InvalidURL:
        return
    if rest[:host_end].isascii():
        assert fingerprint(flipped) == expected
