"""CookieJar.save / CookieJar.load: aiohttp's JSON cookie file, read and written both ways.

A file saved by aiohttp's jar loads into ours and one saved by ours loads into aiohttp's, with
the same cookies sent afterwards: host-only against domain cookies, paths, Secure, expiry (an
absolute deadline) and the caller's shared cookies (domain ""). A loaded cookie passes the
jar's rules again as if https://<its domain> had set it; a malformed file changes nothing.
"""

from __future__ import annotations

import json
import os
import pickle
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from crawler.http import ClientSession, CookieJar
from tests.support.cookie_clock import FakeClock, install_fake_clock

# Set over https (so Secure and __Host- cookies are kept by both jars) and over http.
FIELDS = {
    "https://example.com/": [
        "host=1; Path=/",
        "dom=2; Domain=example.com; Path=/",
        "sec=3; Secure; HttpOnly; SameSite=Lax; Max-Age=3600",
        "deep=4; Path=/a",
        "slash=5; Path=/a/",
        "__Host-h=6; Secure; Path=/",
        "dated=7; Expires=Wed, 09 Jun 2100 10:18:14 GMT",
        "quoted=\"x y\"; Path=/",
    ],
    "http://sub.example.com/x/y": ["subhost=8", "subdom=9; Domain=example.com"],
}
# Given without a URL: shared with every host; a host's own "dom" wins over this one.
SHARED = {"shared": "s", "dom": "shared-dom"}
URLS = [
    "https://example.com/",
    "http://example.com/",
    "https://example.com/a/b",
    "http://example.com/a",
    "https://sub.example.com/",
    "http://sub.example.com/x/z",
    "https://deep.sub.example.com/x",
    "http://other.com/",
]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return install_fake_clock(monkeypatch)


def fill(jar: CookieJar | aiohttp.CookieJar) -> None:
    for url, fields in FIELDS.items():
        jar.update_cookies_from_headers(fields, URL(url))
    jar.update_cookies(SHARED)


def sent(jar: CookieJar | aiohttp.CookieJar, url: str) -> dict[str, tuple[str, str]]:
    return {name: (morsel.value, morsel.coded_value)
            for name, morsel in jar.filter_cookies(URL(url)).items()}


def sent_everywhere(jar: CookieJar | aiohttp.CookieJar) -> dict[str, dict[str, tuple[str, str]]]:
    return {url: sent(jar, url) for url in URLS}


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def record(name: str, value: str = "v", **attributes: Any) -> dict[str, Any]:
    return {"key": name, "value": value, "coded_value": value, "path": "/", **attributes}




# --- Round trips -----------------------------------------------------------------------------


def test_ours_to_file_to_ours_sends_the_same_cookies(tmp_path: Path) -> None:
    saved = CookieJar()
    fill(saved)
    saved.save(tmp_path / "cookies.json")
    loaded = CookieJar()
    loaded.load(tmp_path / "cookies.json")
    assert len(loaded) == len(saved)
    expected = sent_everywhere(saved)
    assert sent_everywhere(loaded) == expected
    # The cases the file must not blur: host-only stays off subdomains, Secure off http.
    assert "host" not in expected["https://sub.example.com/"]
    assert "dom" in expected["https://sub.example.com/"]
    assert "sec" not in expected["http://example.com/"]
    assert expected["http://other.com/"] == {"shared": ("s", "s"), "dom": ("shared-dom",) * 2}
    assert expected["https://example.com/"]["dom"] == ("2", "2")
    attributes = {m.key: (m["domain"], m["path"], bool(m["secure"]), bool(m["httponly"]),
                          m["samesite"]) for m in loaded}
    assert attributes["sec"] == ("example.com", "/", True, True, "Lax")
    assert attributes["shared"] == ("", "/", False, False, "")


async def test_aiohttp_file_loads_into_ours(tmp_path: Path) -> None:
    theirs = aiohttp.CookieJar()
    fill(theirs)
    theirs.save(tmp_path / "aiohttp.json")
    ours = CookieJar()
    ours.load(tmp_path / "aiohttp.json")
    assert len(ours) == len(theirs)
    assert sent_everywhere(ours) == sent_everywhere(theirs)


async def test_our_file_loads_into_aiohttp(tmp_path: Path) -> None:
    ours = CookieJar()
    fill(ours)
    ours.save(tmp_path / "ours.json")
    theirs = aiohttp.CookieJar()
    theirs.load(tmp_path / "ours.json")
    assert len(theirs) == len(ours)
    assert sent_everywhere(theirs) == sent_everywhere(ours)
    assert theirs.host_only_cookies >= {("example.com", "", "host"),
                                        ("sub.example.com", "/x", "subhost")}


async def test_our_file_has_aiohttps_records(tmp_path: Path) -> None:
    # Record for record what aiohttp writes (its deadlines come from its own clock).
    ours, theirs = CookieJar(), aiohttp.CookieJar()
    for jar, name in ((ours, "ours.json"), (theirs, "aiohttp.json")):
        fill(jar)
        jar.save(tmp_path / name)
    mine = json.loads((tmp_path / "ours.json").read_text())
    reference = json.loads((tmp_path / "aiohttp.json").read_text())
    for data in (mine, reference):
        data["example.com|"]["sec"]["expires_timestamp"] = "about an hour from now"
    assert mine == reference


def test_a_name_at_path_and_path_slash_keeps_both(tmp_path: Path) -> None:
    # aiohttp keys a group by the path without its trailing "/": "/a" and "/a/" would share
    # one and one name in both would overwrite the other.
    saved = CookieJar()
    saved.update_cookies_from_headers(["n=plain; Path=/a", "n=slash; Path=/a/"],
                                      URL("https://example.com/"))
    saved.save(tmp_path / "cookies.json")
    loaded = CookieJar()
    loaded.load(tmp_path / "cookies.json")
    assert sorted((m["path"], m.value) for m in loaded) == [("/a", "plain"), ("/a/", "slash")]
    assert sent(loaded, "https://example.com/a/b") == sent(saved, "https://example.com/a/b")


def test_expiry_is_an_absolute_deadline(tmp_path: Path, clock: FakeClock) -> None:
    saved = CookieJar()
    saved.update_cookies_from_headers(["a=1; Max-Age=100"], URL("https://example.com/"))
    saved.save(tmp_path / "cookies.json")
    clock.now += 60  # a Max-Age read again at load would last until +160
    loaded = CookieJar()
    loaded.load(tmp_path / "cookies.json")
    assert sent(loaded, "https://example.com/") == {"a": ("1", "1")}
    clock.now += 39
    assert sent(loaded, "https://example.com/") == {"a": ("1", "1")}
    clock.now += 2
    assert sent(loaded, "https://example.com/") == {}


def test_expired_cookies_are_not_loaded(tmp_path: Path, clock: FakeClock) -> None:
    path = write(tmp_path / "cookies.json", {"example.com|": {
        "gone": record("gone", domain="example.com", host_only=True,
                       expires_timestamp=clock.now - 1),
        "now": record("now", domain="example.com", host_only=True,
                      expires_timestamp=clock.now),
        "kept": record("kept", domain="example.com", host_only=True,
                       expires_timestamp=clock.now + 1),
    }})
    jar = CookieJar()
    jar.load(path)
    assert len(jar) == 1
    assert sent(jar, "https://example.com/") == {"kept": ("v", "v")}


def test_save_skips_cookies_that_expired_since(tmp_path: Path, clock: FakeClock) -> None:
    jar = CookieJar()
    jar.update_cookies_from_headers(["a=1; Max-Age=10", "b=2"], URL("https://example.com/"))
    clock.now += 11
    jar.save(tmp_path / "cookies.json")
    assert set(json.loads((tmp_path / "cookies.json").read_text())["example.com|"]) == {"b"}


# --- The file itself ------------------------------------------------------------------------


def test_the_file_is_created_readable_by_its_owner_only(tmp_path: Path) -> None:
    jar = CookieJar()
    fill(jar)
    old_umask = os.umask(0)  # so the mode comes from save, not from a umask
    try:
        jar.save(tmp_path / "cookies.json")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "cookies.json").stat().st_mode) == 0o600


def test_load_replaces_what_the_jar_held(tmp_path: Path) -> None:
    path = write(tmp_path / "cookies.json",
                 {"example.com|": {"new": record("new", domain="example.com", host_only=True)}})
    jar = CookieJar()
    jar.update_cookies_from_headers(["old=1"], URL("https://example.com/"))
    jar.update_cookies({"shared": "1"})
    jar.load(path)
    assert sent(jar, "https://example.com/") == {"new": ("v", "v")}
    assert len(jar) == 1


def test_an_empty_file_object_empties_the_jar(tmp_path: Path) -> None:
    jar = CookieJar()
    fill(jar)
    jar.load(write(tmp_path / "cookies.json", {}))
    assert len(jar) == 0
    assert sent(jar, "https://example.com/") == {}


# --- Loaded cookies pass the jar's rules again ---------------------------------------------


def test_loaded_cookies_are_checked_as_if_set_by_https_domain(tmp_path: Path) -> None:
    path = write(tmp_path / "cookies.json", {
        "example.com|": {
            # Secure: an https origin may set it, so it loads (and goes to https only).
            "sec": record("sec", domain="example.com", secure=True, host_only=True),
            # Prefixes still bind: __Host- with a Domain, __Secure- without Secure.
            "__Host-dom": record("__Host-dom", domain="example.com", secure=True),
            "__Secure-plain": record("__Secure-plain", domain="example.com"),
            # A record naming a domain its group's host may not set.
            "foreign": record("foreign", domain="other.com"),
            # A header-splitting value.
            "split": record("split", "a\r\nX-Evil: 1"),
        },
        "127.0.0.1|": {"ip": record("ip", domain="127.0.0.1", host_only=True)},
    })
    jar = CookieJar()
    jar.load(path)
    assert {m.key for m in jar} == {"sec"}
    assert sent(jar, "https://example.com/") == {"sec": ("v", "v")}
    assert sent(jar, "http://example.com/") == {}
    unsafe = CookieJar(unsafe=True)
    unsafe.load(path)
    assert sent(unsafe, "http://127.0.0.1/") == {"ip": ("v", "v")}


def test_a_loaded_secure_cookie_still_guards_its_name(tmp_path: Path) -> None:
    # Strict secure cookies (RFC 6265bis step 16) hold for what was loaded.
    path = write(tmp_path / "cookies.json", {"example.com|": {
        "sid": record("sid", "secret", domain="example.com", secure=True, host_only=True)}})
    jar = CookieJar()
    jar.load(path)
    jar.update_cookies_from_headers(["sid=forged"], URL("http://example.com/"))
    assert sent(jar, "https://example.com/") == {"sid": ("secret", "secret")}


# --- Malformed files leave the jar as it was -----------------------------------------------

GOOD = record("good", domain="example.com", host_only=True)
MALFORMED: dict[str, Any] = {
    "a list": [],
    "group key without |": {"example.com": {"good": GOOD}},
    "group not an object": {"example.com|": ["good"]},
    "record not an object": {"example.com|": {"bad": "v"}},
    "no coded_value": {"example.com|": {"bad": {"key": "bad", "value": "v"}}},
    "value not a string": {"example.com|": {"bad": record("bad", value=1)}},
    "key not the name": {"example.com|": {"bad": record("other")}},
    "expiry a string": {"example.com|": {"bad": record("bad", expires_timestamp="soon")}},
    "expiry a boolean": {"example.com|": {"bad": record("bad", expires_timestamp=True)}},
    "expiry NaN": {"example.com|": {"bad": record("bad", expires_timestamp=float("nan"))}},
    "expiry infinite": {"example.com|": {"bad": record("bad", expires_timestamp=float("inf"))}},
    "expiry too big": {"example.com|": {"bad": record("bad", expires_timestamp=10**400)}},
    "host_only not a boolean": {"example.com|": {"bad": record("bad", host_only="yes")}},
    "attribute not a string": {"example.com|": {"bad": record("bad", path=["/"])}},
    "domain not a host": {"exa mple.com|": {"bad": record("bad")}},
}


@pytest.fixture
def holding() -> CookieJar:
    jar = CookieJar()
    jar.update_cookies_from_headers(["old=1"], URL("https://example.com/"))
    return jar


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_file_raises_and_changes_nothing(tmp_path: Path, holding: CookieJar,
                                                     data: Any) -> None:
    if isinstance(data, dict):
        # A good group first: loading must not stop halfway with it in the jar.
        data = {"example.org|": {"good": GOOD | {"domain": "example.org"}}, **data}
    path = tmp_path / "cookies.json"
    # json.dumps writes NaN and Infinity, which json.loads (and so a loader) reads back.
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="cookie"):
        holding.load(path)
    assert sent(holding, "https://example.com/") == {"old": ("1", "1")}
    assert sent(holding, "https://example.org/") == {}
    assert len(holding) == 1


@pytest.mark.parametrize("content", [b"not json at all", b"{\"example.com|\": ", b"\xff\xfe{}",
                                     b"[" * 100_000, b"1" * 5000])
def test_a_file_that_is_not_json_raises(tmp_path: Path, holding: CookieJar,
                                        content: bytes) -> None:
    (tmp_path / "cookies.json").write_bytes(content)
    with pytest.raises(ValueError, match="not supported"):
        holding.load(tmp_path / "cookies.json")
    assert sent(holding, "https://example.com/") == {"old": ("1", "1")}


def test_a_pickle_file_is_refused_not_unpickled(tmp_path: Path, holding: CookieJar,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # aiohttp falls back to unpickling (restricted); we never unpickle a file at all.
    (tmp_path / "cookies.pickle").write_bytes(pickle.dumps({("example.com", ""): {}}))

    def no_unpickling(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was unpickled")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "Unpickler", no_unpickling)
    monkeypatch.setattr(pickle, "_Unpickler", no_unpickling)
    with pytest.raises(ValueError, match="not supported"):
        holding.load(tmp_path / "cookies.pickle")
    assert sent(holding, "https://example.com/") == {"old": ("1", "1")}


def test_a_missing_file_raises_oserror(tmp_path: Path, holding: CookieJar) -> None:
    with pytest.raises(FileNotFoundError):
        holding.load(tmp_path / "missing.json")
    assert len(holding) == 1


# --- Through a session ----------------------------------------------------------------------


async def test_cookies_set_by_a_server_come_back_after_save_and_load(httpbin,
                                                                     tmp_path: Path) -> None:
    # httpbin listens on 127.0.0.1: an IP host, whose cookies only an unsafe jar keeps.
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as session:
        async with session.get(httpbin.url + "/cookies/set?token=abc&theme=dark") as resp:
            assert resp.status == 200  # followed the redirect to /cookies
        session.cookie_jar.save(tmp_path / "cookies.json")
    jar = CookieJar(unsafe=True)
    jar.load(tmp_path / "cookies.json")
    async with (ClientSession(cookie_jar=jar) as session,
                session.get(httpbin.url + "/cookies") as resp):
        assert (await resp.json())["cookies"] == {"token": "abc", "theme": "dark"}
