"""CookieJar against aiohttp's CookieJar and RFC 6265: the same Set-Cookie fields through both.

Where the two disagree the test says which rule we follow (RFC 6265 section) and why.
aiohttp is a test peer only; its jar needs a running loop, hence the async tests.
"""

from __future__ import annotations

import calendar
import time
from email.utils import formatdate
from http.cookies import Morsel, SimpleCookie

import aiohttp
import pytest
from yarl import URL

from crawler.http import CookieJar, DummyCookieJar
from crawler.http.cookie_parse import parse_cookie_date, parse_set_cookie_headers
from crawler.http.cookies import parse_set_cookie


def sent(jar: CookieJar | aiohttp.CookieJar, url: str) -> dict[str, str]:
    """What a request to `url` carries: name -> the text after "=" in the Cookie header."""
    return {name: m.coded_value for name, m in jar.filter_cookies(URL(url)).items()}


def both(fields: list[str], url: str, **options: object) -> tuple[CookieJar, aiohttp.CookieJar]:
    ours, theirs = CookieJar(**options), aiohttp.CookieJar(**options)  # type: ignore[arg-type]
    ours.update_cookies_from_headers(fields, URL(url))
    theirs.update_cookies_from_headers(fields, URL(url))
    return ours, theirs


def assert_same(fields: list[str], url: str, requests: list[str], **options: object) -> None:
    ours, theirs = both(fields, url, **options)
    for request in requests:
        assert sent(ours, request) == sent(theirs, request), request


# --- Domain ------------------------------------------------------------------------------


async def test_an_ip_host_has_no_parent_domain_even_in_an_unsafe_jar() -> None:
    # RFC 6265 5.1.3: domain-match by suffix only when the string is a host name. We stored
    # "Domain=0.0.1" from 127.0.0.1 and sent it to 10.0.0.1.
    fields = ["a=1; Domain=0.0.1", "b=1; Domain=127.0.0.1"]
    assert_same(fields, "http://127.0.0.1/",
                ["http://127.0.0.1/", "http://10.0.0.1/", "http://0.0.1/"], unsafe=True)
    ours, _ = both(fields, "http://127.0.0.1/", unsafe=True)
    assert sent(ours, "http://10.0.0.1/") == {}
    assert sent(ours, "http://127.0.0.1/") == {"b": "1"}


async def test_only_one_leading_dot_is_dropped_from_domain() -> None:
    # 5.2.3 removes one "."; ".example.com" then domain-matches no host (we stripped them all).
    assert_same(["a=1; Domain=..example.com"], "http://www.example.com/",
                ["http://www.example.com/", "http://x.example.com/"])
    ours, _ = both(["a=1; Domain=..example.com"], "http://www.example.com/")
    assert len(ours) == 0


async def test_a_leading_dot_domain_is_the_same_domain() -> None:
    assert_same(["a=1; Domain=.example.com"], "http://www.example.com/",
                ["http://www.example.com/", "http://x.example.com/", "http://example.com/"])


def test_a_top_level_domain_is_refused_unless_it_is_the_host() -> None:
    # RFC 6265 5.3 step 5 (public suffixes). aiohttp keeps "Domain=com" and sends it to every
    # .com site; without a suffix list we refuse a Domain with no dot, as curl does.
    jar = CookieJar()
    jar.update_cookies_from_headers(["a=1; Domain=com", "b=1; Domain=.com"],
                                    URL("http://example.com/"))
    assert len(jar) == 0
    assert sent(jar, "http://other.com/") == {}
    # The same suffix naming the host itself is a host-only cookie (5.3 step 5, second case).
    jar.update_cookies_from_headers(["c=1; Domain=localhost"], URL("http://localhost/"))
    assert sent(jar, "http://localhost/") == {"c": "1"}
    assert sent(jar, "http://a.localhost/") == {}


def test_domain_attribute_is_compared_lowercased() -> None:
    # RFC 6265 5.2.3 lowercases the attribute (aiohttp does not, and drops this cookie).
    jar = CookieJar()
    jar.update_cookies_from_headers(["a=1; Domain=EXAMPLE.Com"], URL("http://WWW.example.com/"))
    assert sent(jar, "http://x.example.com/") == {"a": "1"}


def test_an_idna_domain_attribute_matches_the_punycode_host() -> None:
    # RFC 6265 5.1.2: names are compared as A-labels; yarl gives raw_host in that form.
    morsel: Morsel[str] = Morsel()
    morsel.set("a", "1", "1")
    morsel["domain"] = "Bücher.de"
    jar = CookieJar()
    jar.update_cookies({"a": morsel}, URL("http://www.bücher.de/"))
    assert sent(jar, "http://shop.bücher.de/") == {"a": "1"}
    assert sent(jar, "http://xn--bcher-kva.de/") == {"a": "1"}
    assert sent(jar, "http://other.de/") == {}


async def test_trailing_dot_hosts_keep_their_own_cookies() -> None:
    assert_same(["a=1"], "http://example.com./", ["http://example.com./", "http://example.com/"])


# --- Path -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting_url", "requests"),
    [
        ("http://example.com/foo/bar", ["http://example.com/foo", "http://example.com/foobar",
                                        "http://example.com/foo/x", "http://example.com/"]),
        ("http://example.com/foo/", ["http://example.com/foo", "http://example.com/foo/x",
                                     "http://example.com/fo"]),
        ("http://example.com/foo", ["http://example.com/", "http://example.com/x"]),
        ("http://example.com", ["http://example.com/", "http://example.com/x/y"]),
    ],
)
async def test_default_path_and_path_match(setting_url: str, requests: list[str]) -> None:
    assert_same(["a=1", "b=1; Path=/foo", "c=1; Path=relative"], setting_url, requests)


# --- Expiry -----------------------------------------------------------------------------------


async def test_a_huge_max_age_is_forever_not_an_overflow_error() -> None:
    # We raised OverflowError from now + int("9" * 400) (and so failed the whole request).
    fields = ["a=1; Max-Age=" + "9" * 400, "b=1; Max-Age=99999999999999999999"]
    assert_same(fields, "http://example.com/", ["http://example.com/"])
    ours, _ = both(fields, "http://example.com/")
    assert sent(ours, "http://example.com/") == {"a": "1", "b": "1"}


def test_max_age_that_is_not_digits_is_ignored() -> None:
    # RFC 6265 5.2.2: "+0" and "1_0" are not delta-seconds, so the cookie is a session cookie
    # (int() read them as 0 and 10; aiohttp uses int() too). A bad Max-Age does not hide a
    # good Expires either: aiohttp makes that a session cookie.
    past = formatdate(time.time() - 3600, usegmt=True)
    jar = CookieJar()
    jar.update_cookies_from_headers(
        ["a=1; Max-Age=+0", "b=1; Max-Age=1_0", "c=1; Max-Age=--5",
         f"d=1; Max-Age=x; Expires={past}"],
        URL("http://example.com/"),
    )
    assert sent(jar, "http://example.com/") == {"a": "1", "b": "1", "c": "1"}


async def test_max_age_zero_or_negative_deletes_and_wins_over_expires() -> None:
    future = formatdate(time.time() + 3600, usegmt=True)
    for fields in (["a=1", "a=x; Max-Age=0"], ["a=1", "a=x; Max-Age=-1"],
                   ["a=1", f"a=x; Expires={future}; Max-Age=0"]):
        ours, theirs = both(fields, "http://example.com/")
        assert sent(ours, "http://example.com/") == sent(theirs, "http://example.com/") == {}
        assert len(ours) == 0


@pytest.mark.parametrize(
    "text",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "Wed, 09-Jun-2100 10:18:14 GMT",
        "Wed, 09 Jun 2100 10:18:14 GMT trailing words",
        "Wed Jun 09 2100 10:18:14 GMT+0000 (Coordinated Universal Time)",
        "Thu, 01 Jan 1970 00:00:01 GMT",
        "Tue, 01 Jan 69 00:00:00 GMT",  # 0-69 are 20xx (5.1.1 step 4); email.utils: 1969
        "Thu, 01 Jan 70 00:00:00 GMT",
        "1 jan 2038 3:14:7",
        "Fri, 01 Jan 2100 00:00:00 +0500",  # no zones: everything is UTC
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "Mon, 01 Jan 1600 00:00:00 GMT",  # before 1601
        "Mon, 32 Jan 2100 00:00:00 GMT",
        "Mon, 01 Jan 2100 24:00:00 GMT",
        "2100-01-01T00:00:00Z",
        "",
    ],
)
def test_cookie_dates_read_as_aiohttp_reads_them(text: str) -> None:
    expected = aiohttp.CookieJar._parse_date(text)
    assert parse_cookie_date(text) == (None if expected is None else float(expected))


def test_year_69_is_2069_and_dates_have_no_zone() -> None:
    assert parse_cookie_date("Tue, 01 Jan 69 00:00:00 GMT") == calendar.timegm(
        (2069, 1, 1, 0, 0, 0, 0, 0, 0))
    assert parse_cookie_date("Fri, 01 Jan 2100 00:00:00 +0500") == calendar.timegm(
        (2100, 1, 1, 0, 0, 0, 0, 0, 0))
    # aiohttp reads the epoch as 0 and then treats 0 as "no date": we delete the cookie.
    assert parse_cookie_date("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0


@pytest.mark.parametrize(
    "text", ["Sat, 31 Feb 2100 00:00:00 GMT", "Mon, 01 Jan 2100 10:18:145 GMT"]
)
def test_dates_rfc_6265_refuses_and_aiohttp_reads(text: str) -> None:
    # 5.1.1 step 6: 31 Feb is no date (aiohttp's timegm makes it 3 March); the grammar's
    # time-field is 1*2DIGIT followed by a non-digit (aiohttp reads "145" as 14).
    assert aiohttp.CookieJar._parse_date(text) is not None
    assert parse_cookie_date(text) is None


def test_expires_in_odd_formats_set_and_delete() -> None:
    jar = CookieJar()
    jar.update_cookies_from_headers(
        ["a=1", "b=1", "c=1; Expires=Tue, 01 Jan 69 00:00:00 GMT"], URL("http://example.com/")
    )
    jar.update_cookies_from_headers(
        ["a=; Expires=Thu, 01 Jan 1970 00:00:00 GMT", "b=; expires=Thu,01-Jan-1970 00:00:01 GMT"],
        URL("http://example.com/"),
    )
    assert sent(jar, "http://example.com/") == {"c": "1"}
    assert len(jar) == 1


# --- Set-Cookie fields --------------------------------------------------------------------


async def test_one_cookie_per_set_cookie_field() -> None:
    # SimpleCookie.load read "b=2" as a second cookie, and dropped the whole field for
    # "HttpOnly, c=3" or a space in the value; RFC 6265 5.2 reads one pair, then attributes.
    fields = ["a=1;b=2", "c=1; HttpOnly, c=3", "d=x y", "e=1; Path=/; unknown=attr",
              "cart[item]=1"]
    ours, theirs = both(fields, "http://example.com/")
    assert set(sent(ours, "http://example.com/")) == set(sent(theirs, "http://example.com/"))
    assert sent(ours, "http://example.com/") == {"a": "1", "c": "1", "d": "x y", "e": "1",
                                                "cart[item]": "1"}


def test_set_cookie_fields_that_make_no_cookie() -> None:
    fields = ["=nameless", "novalue", "", "bad\x00=1", "path=1", " ; Path=/"]
    assert parse_set_cookie_headers(fields) == []


def test_attributes_are_case_insensitive_and_the_last_one_wins() -> None:
    [(name, morsel)] = parse_set_cookie_headers(
        ["sid=1; PATH=/a; path=/b; SECURE; HttpOnly; SameSite=Lax; Domain="]
    )
    assert (name, morsel.value, morsel["path"]) == ("sid", "1", "/b")
    assert morsel["secure"] and morsel["httponly"] and morsel["samesite"] == "Lax"
    assert morsel["domain"] == ""


async def test_several_fields_may_set_one_name_for_two_paths() -> None:
    fields = ["a=root; Path=/", "a=deep; Path=/x"]
    assert_same(fields, "http://example.com/", ["http://example.com/", "http://example.com/x/y"])
    ours, _ = both(fields, "http://example.com/")
    assert len(ours) == 2
    assert sent(ours, "http://example.com/") == {"a": "root"}


def test_response_cookies_mapping_keeps_the_last_of_a_name() -> None:
    cookies = parse_set_cookie(["a=1; Path=/", "a=2; Path=/x", "b=x y"])
    assert isinstance(cookies, SimpleCookie)
    assert cookies["a"].value == "2" and cookies["a"]["path"] == "/x"
    assert cookies["b"].value == "x y"


# --- Sending ---------------------------------------------------------------------------------


async def test_quote_cookie_false_sends_bare_values() -> None:
    # quote_cookie was stored and never used: `a="x y"` went out quoted either way.
    fields = ['a="x y"', "b=plain"]
    assert_same(fields, "http://example.com/", ["http://example.com/"], quote_cookie=False)
    ours, _ = both(fields, "http://example.com/", quote_cookie=False)
    assert sent(ours, "http://example.com/") == {"a": "x y", "b": "plain"}
    quoting, _ = both(fields, "http://example.com/")
    assert sent(quoting, "http://example.com/") == {"a": '"x y"', "b": "plain"}


async def test_caller_cookies_are_quoted_as_aiohttp_quotes_them() -> None:
    for options in ({}, {"quote_cookie": False}):
        ours, theirs = CookieJar(**options), aiohttp.CookieJar(**options)  # type: ignore[arg-type]
        for jar in (ours, theirs):
            jar.update_cookies({"a": "x y", "b": "b,c", "c": "plain"})
        assert sent(ours, "http://e.com/") == sent(theirs, "http://e.com/")


async def test_a_host_cookie_wins_over_a_shared_one_of_the_same_name() -> None:
    # ClientSession(cookies={"sid": ...}) then the server sets sid: the server's must go out.
    ours, theirs = CookieJar(), aiohttp.CookieJar()
    for jar in (ours, theirs):
        jar.update_cookies({"sid": "initial", "other": "1"})
        jar.update_cookies_from_headers(["sid=new; Path=/"], URL("http://example.com/"))
    assert sent(ours, "http://example.com/") == sent(theirs, "http://example.com/")
    assert sent(ours, "http://example.com/")["sid"] == "new"
    assert sent(ours, "http://elsewhere.com/")["sid"] == "initial"


@pytest.mark.parametrize("origin", ["http://localhost:8080", URL("http://localhost:8080"),
                                    ["http://localhost:8080"]])
async def test_treat_as_secure_origin_takes_one_origin_or_several(origin: object) -> None:
    # A str was iterated character by character (ValueError), a URL was not iterable.
    ours = CookieJar(treat_as_secure_origin=origin)  # type: ignore[arg-type]
    theirs = aiohttp.CookieJar(treat_as_secure_origin=origin)  # type: ignore[arg-type]
    for jar in (ours, theirs):
        jar.update_cookies_from_headers(["s=1; Secure"], URL("http://localhost:8080/"))
    assert sent(ours, "http://localhost:8080/") == sent(theirs, "http://localhost:8080/")
    assert sent(ours, "http://localhost:8080/") == {"s": "1"}
    assert sent(ours, "http://localhost:8081/") == {}


async def test_secure_cookies_and_localhost() -> None:
    # Neither jar treats http://localhost as secure on its own.
    assert_same(["s=1; Secure", "p=1"], "https://localhost/",
                ["http://localhost/", "https://localhost/", "wss://localhost/"])


def test_filter_cookies_takes_a_string_and_a_relative_url() -> None:
    jar = CookieJar(treat_as_secure_origin=["http://localhost:8080"])
    jar.update_cookies({"shared": "1"})
    assert sent(jar, "/relative") == {"shared": "1"}
    assert set(jar.filter_cookies("http://a.com/")) == {"shared"}  # type: ignore[arg-type]


# --- The jar as a collection ---------------------------------------------------------------


async def test_len_iteration_clear_and_clear_domain_match_aiohttp() -> None:
    fields = ["a=1", "b=1; Domain=example.com", "c=1; Path=/x"]
    ours, theirs = both(fields, "http://www.example.com/")
    for jar in (ours, theirs):
        jar.update_cookies_from_headers(["d=1"], URL("http://other.org/"))
        jar.update_cookies({"shared": "1"})
    assert len(ours) == len(theirs) == 5
    assert sorted(m.key for m in ours) == sorted(m.key for m in theirs)
    for jar in (ours, theirs):
        jar.clear_domain("example.com")
    assert sorted(m.key for m in ours) == sorted(m.key for m in theirs) == ["d", "shared"]
    for jar in (ours, theirs):
        jar.clear(lambda morsel: morsel.key == "d")
    assert len(ours) == len(theirs) == 1


async def test_an_expired_cookie_leaves_no_empty_domain_behind() -> None:
    jar = CookieJar()
    jar.update_cookies_from_headers(["a=1"], URL("http://example.com/"))
    jar.update_cookies_from_headers(["a=1; Max-Age=0"], URL("http://example.com/"))
    assert len(jar) == 0 and list(jar) == []
    assert jar._by_domain == {}


def test_dummy_jar_keeps_nothing_from_headers() -> None:
    jar = DummyCookieJar()
    jar.update_cookies_from_headers(["a=1"], URL("http://example.com/"))
    assert len(jar) == 0 and list(jar) == []
    assert jar.filter_cookies(URL("http://example.com/")) == SimpleCookie()


# --- Limits ------------------------------------------------------------------------------------


async def test_a_domain_keeps_at_most_180_cookies_dropping_the_oldest_as_aiohttp() -> None:
    # We kept every cookie a server set: a crawler's jar grew without bound.
    ours, theirs = CookieJar(), aiohttp.CookieJar()
    for jar in (ours, theirs):
        for batch in range(5):
            jar.update_cookies_from_headers([f"c{batch}_{i}=1" for i in range(50)],
                                            URL("http://example.com/"))
    assert len(ours) == len(theirs) == 157
    assert sorted(m.key for m in ours) == sorted(m.key for m in theirs)
    assert "c0_0" not in {m.key for m in ours} and "c4_49" in {m.key for m in ours}


def test_the_jar_keeps_at_most_3300_cookies_in_all() -> None:
    jar = CookieJar()
    for host in range(80):
        jar.update_cookies_from_headers([f"c{i}=1" for i in range(50)],
                                        URL(f"http://h{host}.example/"))
    assert 3000 <= len(jar) <= 3300
    assert len(list(jar)) == len(jar)
    assert sent(jar, "http://h0.example/") == {}  # the first set went first
    assert len(sent(jar, "http://h79.example/")) == 50


async def test_one_response_sets_at_most_50_cookies_of_at_most_4096_bytes() -> None:
    fields = [f"c{i}=1" for i in range(60)]
    assert_same(fields, "http://example.com/", ["http://example.com/"])
    big = ["a=" + "x" * 4095, "b=" + "x" * 4096]  # name and value: 4096 and 4097 bytes
    ours, theirs = both(big, "http://example.com/")
    assert sorted(m.key for m in ours) == sorted(m.key for m in theirs) == ["a"]


async def test_a_domain_cookie_replaces_the_host_only_one_of_the_same_name_and_path() -> None:
    fields = ["a=host", "a=domain; Domain=example.com"]
    assert_same(fields, "http://example.com/", ["http://example.com/", "http://sub.example.com/"])
    ours, _ = both(fields, "http://example.com/")
    assert len(ours) == 1
    assert sent(ours, "http://sub.example.com/") == {"a": "domain"}
