"""CookieJar rules (RFC 6265) and DummyCookieJar, without any network."""

from __future__ import annotations

import time
from email.utils import formatdate
from http.cookies import SimpleCookie

from yarl import URL

from crawler.http import CookieJar, DummyCookieJar


def set_cookie(jar: CookieJar, header: str, url: str) -> None:
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(header)
    jar.update_cookies(cookie, URL(url))


def names(jar: CookieJar, url: str) -> dict[str, str]:
    return {name: m.value for name, m in jar.filter_cookies(URL(url)).items()}


def test_host_only_cookie_goes_back_to_that_host_only() -> None:
    jar = CookieJar()
    set_cookie(jar, "a=1", "http://example.com/")
    assert names(jar, "http://example.com/x") == {"a": "1"}
    assert names(jar, "http://sub.example.com/") == {}
    assert names(jar, "http://other.com/") == {}


def test_domain_cookie_goes_to_subdomains() -> None:
    jar = CookieJar()
    set_cookie(jar, "a=1; Domain=example.com", "http://www.example.com/")
    assert names(jar, "http://example.com/") == {"a": "1"}
    assert names(jar, "http://deep.sub.example.com/") == {"a": "1"}
    assert names(jar, "http://notexample.com/") == {}


def test_a_host_cannot_set_a_cookie_for_a_foreign_domain() -> None:
    jar = CookieJar()
    set_cookie(jar, "a=1; Domain=other.com", "http://example.com/")
    set_cookie(jar, "b=1; Domain=sub.example.com", "http://example.com/")
    assert len(jar) == 0


def test_path_rules() -> None:
    jar = CookieJar()
    set_cookie(jar, "a=1; Path=/docs", "http://example.com/")
    assert names(jar, "http://example.com/docs") == {"a": "1"}
    assert names(jar, "http://example.com/docs/page") == {"a": "1"}
    assert names(jar, "http://example.com/docsother") == {}
    assert names(jar, "http://example.com/") == {}


def test_default_path_is_the_directory_of_the_request() -> None:
    jar = CookieJar()
    set_cookie(jar, "a=1", "http://example.com/dir/page.html")
    assert names(jar, "http://example.com/dir/other") == {"a": "1"}
    assert names(jar, "http://example.com/elsewhere") == {}


def test_secure_cookies_only_over_https() -> None:
    jar = CookieJar()
    set_cookie(jar, "s=1; Secure", "https://example.com/")
    assert names(jar, "https://example.com/") == {"s": "1"}
    assert names(jar, "http://example.com/") == {}


def test_treat_as_secure_origin() -> None:
    jar = CookieJar(treat_as_secure_origin=["http://localhost:8080"])
    set_cookie(jar, "s=1; Secure", "http://localhost:8080/")
    assert names(jar, "http://localhost:8080/") == {"s": "1"}


def test_max_age_expires_the_cookie() -> None:
    jar = CookieJar()
    set_cookie(jar, "gone=1; Max-Age=0", "http://example.com/")
    set_cookie(jar, "kept=1; Max-Age=3600", "http://example.com/")
    assert names(jar, "http://example.com/") == {"kept": "1"}


def test_max_age_wins_over_expires() -> None:
    jar = CookieJar()
    past = formatdate(time.time() - 3600, usegmt=True)
    set_cookie(jar, f"a=1; Max-Age=3600; Expires={past}", "http://example.com/")
    assert names(jar, "http://example.com/") == {"a": "1"}


def test_expires_in_the_past_deletes_a_stored_cookie() -> None:
    jar = CookieJar()
    set_cookie(jar, "a=1", "http://example.com/")
    past = formatdate(time.time() - 3600, usegmt=True)
    set_cookie(jar, f"a=deleted; Expires={past}", "http://example.com/")
    assert names(jar, "http://example.com/") == {}
    assert len(jar) == 0


def test_expires_in_the_future_is_kept() -> None:
    jar = CookieJar()
    future = formatdate(time.time() + 3600, usegmt=True)
    set_cookie(jar, f"a=1; Expires={future}", "http://example.com/")
    assert names(jar, "http://example.com/") == {"a": "1"}


def test_ip_hosts_need_unsafe() -> None:
    safe = CookieJar()
    set_cookie(safe, "a=1", "http://127.0.0.1/")
    assert len(safe) == 0
    unsafe = CookieJar(unsafe=True)
    set_cookie(unsafe, "a=1", "http://127.0.0.1/")
    assert names(unsafe, "http://127.0.0.1/") == {"a": "1"}
    assert names(unsafe, "http://127.0.0.2/") == {}


def test_cookies_given_without_url_are_shared_with_every_host() -> None:
    jar = CookieJar()
    jar.update_cookies({"shared": "yes"})
    assert names(jar, "http://a.com/") == {"shared": "yes"}
    assert names(jar, "http://b.org/deep/path") == {"shared": "yes"}


def test_longer_path_comes_first_and_wins_a_name_clash() -> None:
    jar = CookieJar()
    set_cookie(jar, "a=root; Path=/", "http://example.com/")
    set_cookie(jar, "a=deep; Path=/x", "http://example.com/")
    assert names(jar, "http://example.com/x/y") == {"a": "deep"}
    assert names(jar, "http://example.com/") == {"a": "root"}


def test_a_newer_cookie_replaces_the_same_name_domain_and_path() -> None:
    jar = CookieJar()
    set_cookie(jar, "a=1", "http://example.com/")
    set_cookie(jar, "a=2", "http://example.com/")
    assert names(jar, "http://example.com/") == {"a": "2"}
    assert len(jar) == 1


def test_clear_and_clear_domain() -> None:
    jar = CookieJar()
    set_cookie(jar, "a=1", "http://a.example.com/")
    set_cookie(jar, "b=1", "http://b.org/")
    jar.clear_domain("example.com")
    assert len(jar) == 1
    jar.clear(lambda morsel: morsel.key == "b")
    assert len(jar) == 0
    set_cookie(jar, "c=1", "http://c.org/")
    jar.clear()
    assert list(jar) == []


def test_iteration_yields_morsels_with_domain_and_path() -> None:
    jar = CookieJar()
    set_cookie(jar, "a=1; Path=/p", "http://example.com/")
    (morsel,) = list(jar)
    assert (morsel.key, morsel.value, morsel["domain"], morsel["path"]) == (
        "a", "1", "example.com", "/p"
    )


def test_dummy_jar_keeps_nothing() -> None:
    jar = DummyCookieJar()
    jar.update_cookies({"a": "1"})
    assert len(jar) == 0
    assert not jar.filter_cookies(URL("http://example.com/"))


def test_quoted_values_round_trip() -> None:
    jar = CookieJar()
    jar.update_cookies({"q": "a value; with=specials"})
    (morsel,) = jar.filter_cookies(URL("http://x.com/")).values()
    assert morsel.value == "a value; with=specials"
    assert morsel.coded_value.startswith('"')
