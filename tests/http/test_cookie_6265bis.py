"""CookieJar and RFC 6265bis: strict secure cookies, cookie name prefixes, LRU eviction.

The rules are those of the draft's "Storage Model" (section 5.7 in draft 22): steps 13 (a
Secure cookie needs a secure origin), 16 (a non-secure origin cannot overlay a Secure cookie),
20-22 (`__Secure-` and `__Host-`, compared case-insensitively), and the order in which excess
cookies are removed (expired, then a domain's excess, non-Secure first, then any; least
recently accessed first). aiohttp's jar enforces none of the first three; where it differs the
test says so.
"""

from __future__ import annotations

import ssl

import aiohttp
import pytest
from pytest_httpbin import certs as httpbin_certs
from yarl import URL

from crawler.http import ClientSession, CookieJar, TCPConnector
from crawler.http.cookie_parse import make_morsel
from tests.support.cookie_clock import FakeClock, install_fake_clock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return install_fake_clock(monkeypatch)


def set_cookies(jar: CookieJar, url: str, *fields: str) -> None:
    jar.update_cookies_from_headers(list(fields), URL(url))


def sent(jar: CookieJar, url: str) -> dict[str, str]:
    return {name: morsel.value for name, morsel in jar.filter_cookies(URL(url)).items()}


def names(jar: CookieJar) -> set[str]:
    return {morsel.key for morsel in jar}




# --- Strict secure cookies (steps 13 and 16) ---------------------------------------------------


async def test_a_secure_cookie_set_over_http_is_ignored() -> None:
    # Step 13: an http response (which a network attacker can forge) sets no Secure cookie;
    # we stored it and sent it to the https site afterwards. aiohttp stores it too.
    ours, theirs = CookieJar(), aiohttp.CookieJar()
    for jar in (ours, theirs):
        jar.update_cookies_from_headers(["s=1; Secure", "plain=1"], URL("http://example.com/"))
    assert names(ours) == {"plain"}
    assert sent(ours, "https://example.com/") == {"plain": "1"}
    assert "s" in {morsel.key for morsel in theirs}


def test_secure_origins_are_https_wss_and_treat_as_secure_origin() -> None:
    jar = CookieJar(treat_as_secure_origin=["http://localhost:8080"])
    set_cookies(jar, "https://a.example/", "https=1; Secure")
    set_cookies(jar, "wss://b.example/", "wss=1; Secure")
    set_cookies(jar, "http://localhost:8080/", "listed=1; Secure")
    # Another port is another origin.
    set_cookies(jar, "http://localhost:8081/", "other_port=1; Secure")
    set_cookies(jar, "ws://c.example/", "ws=1; Secure")
    assert names(jar) == {"https", "wss", "listed"}
    assert sent(jar, "http://localhost:8080/") == {"listed": "1"}
    # http://localhost is not secure by itself: aiohttp's rule, which sending already follows
    # (browsers treat it as secure; treat_as_secure_origin is the way to ask for that).
    plain = CookieJar(unsafe=True)  # unsafe: so that 127.0.0.1 may keep cookies at all
    set_cookies(plain, "http://localhost/", "local=1; Secure")
    set_cookies(plain, "http://127.0.0.1/", "loopback=1; Secure")
    assert len(plain) == 0


def test_http_cannot_overwrite_or_delete_a_secure_cookie() -> None:
    jar = CookieJar()
    set_cookies(jar, "https://example.com/", "sid=secret; Secure; Path=/")
    set_cookies(jar, "http://example.com/", "sid=fixed; Path=/")
    set_cookies(jar, "http://example.com/", "sid=; Path=/; Max-Age=0")
    set_cookies(jar, "http://example.com/", "sid=; Path=/; Expires=Thu, 01 Jan 1970 00:00:01 GMT")
    assert sent(jar, "https://example.com/") == {"sid": "secret"}
    assert sent(jar, "http://example.com/") == {}
    assert len(jar) == 1
    # A secure origin may replace it with a non-Secure cookie, and delete it.
    set_cookies(jar, "https://example.com/", "sid=plain; Path=/")
    assert sent(jar, "http://example.com/") == {"sid": "plain"}
    set_cookies(jar, "https://example.com/", "sid=; Path=/; Max-Age=0")
    assert len(jar) == 0


# (URL of the http response, its field, whether the jar takes it) against a Secure cookie
# a=secure for www.example.com, Path=/login.
OVERLAYS = [
    # The same name on a path that path-matches the Secure cookie's: it would be sent first
    # (or, at the same domain and path, replace it).
    ("http://www.example.com/", "a=x; Path=/login", False),
    ("http://www.example.com/", "a=x; Path=/login/en", False),
    # Domains that domain-match each other, either way round.
    ("http://example.com/", "a=x; Path=/login", False),
    ("http://deep.www.example.com/", "a=x; Path=/login; Domain=www.example.com", False),
    ("http://deep.www.example.com/", "a=x; Path=/login", False),
    # The draft's own examples of what stays allowed: "/" and "/foo" overlay nothing.
    ("http://www.example.com/", "a=x; Path=/", True),
    ("http://www.example.com/", "a=x; Path=/foo", True),
    # Another name, or a domain that matches neither way.
    ("http://www.example.com/", "b=x; Path=/login", True),
    ("http://other.example.com/", "a=x; Path=/login", True),
]


def test_a_non_secure_origin_cannot_overlay_a_secure_cookie() -> None:
    # Step 16: same name, domains that domain-match either way, and a new path that
    # path-matches the old one's. One jar per case, and every case compared at once.
    outcomes = []
    for setting_url, field, _ in OVERLAYS:
        jar = CookieJar()
        set_cookies(jar, "https://www.example.com/", "a=secure; Secure; Path=/login")
        set_cookies(jar, setting_url, field)
        outcomes.append((setting_url, field, len(jar) == 2))
        # Taken or not, an https request for /login still gets the Secure cookie first.
        assert sent(jar, "https://www.example.com/login")["a"] == "secure", (setting_url, field)
    assert outcomes == OVERLAYS


def test_a_domain_cookie_from_http_cannot_overlay_a_subdomains_secure_cookie() -> None:
    jar = CookieJar()
    set_cookies(jar, "https://secure.example.com/", "sid=secret; Secure; Path=/")
    set_cookies(jar, "http://www.example.com/", "sid=fixed; Domain=example.com; Path=/")
    assert sent(jar, "https://secure.example.com/") == {"sid": "secret"}
    assert names(jar) == {"sid"} and len(jar) == 1
    # Once the Secure cookie is gone (cleared here), the name is free again.
    jar.clear_domain("secure.example.com")
    set_cookies(jar, "http://www.example.com/", "sid=fixed; Domain=example.com; Path=/")
    assert sent(jar, "http://secure.example.com/") == {"sid": "fixed"}


# --- Cookie name prefixes (steps 20-22) --------------------------------------------------------


# (URL of the response, its field, whether the jar takes it): every cookie its own name.
PREFIXED = [
    ("https://a.example/", "__Secure-a=1; Secure", True),
    ("https://www.b.example/", "__Secure-b=1; Secure; Domain=b.example; Path=/x", True),
    ("https://c.example/", "__Secure-c=1", False),
    ("http://d.example/", "__Secure-d=1; Secure", False),
    ("https://e.example/", "__SECURE-e=1", False),
    ("https://f.example/", "__secure-f=1", False),
    ("https://g.example/", "__Host-g=1; Secure; Path=/", True),
    ("https://h.example/dir/page", "__Host-h=1; Secure; Path=/; HttpOnly", True),
    ("https://i.example/", "__Host-i=1; Path=/", False),
    ("http://j.example/", "__Host-j=1; Secure; Path=/", False),
    ("https://k.example/", "__Host-k=1; Secure; Path=/; Domain=k.example", False),
    ("https://www.l.example/", "__Host-l=1; Secure; Path=/; Domain=l.example", False),
    ("https://m.example/", "__Host-m=1; Secure; Path=/x", False),
    # No Path attribute: the default path is "/" here, but the draft asks for the attribute.
    ("https://n.example/", "__Host-n=1; Secure", False),
    ("https://o.example/", "__HOST-o=1; Secure; Path=/x", False),
    ("https://p.example/", "__host-p=1; Secure; Domain=p.example; Path=/", False),
    ("https://q.example/", "__Host-q=1; Secure; Path=/; Domain=", True),  # Domain ignored
    ("https://r.example/", "_Host-r=1", True),  # not the prefix
]


def test_cookie_name_prefixes() -> None:
    jar = CookieJar()
    for url, field, _ in PREFIXED:
        set_cookies(jar, url, field)
    assert names(jar) == {field.split("=")[0] for _, field, stored in PREFIXED if stored}


def test_a_refused_prefixed_cookie_does_not_delete_the_stored_one() -> None:
    jar = CookieJar(treat_as_secure_origin="http://localhost:8080")
    set_cookies(jar, "https://example.com/", "__Host-sid=1; Secure; Path=/")
    set_cookies(jar, "https://example.com/", "__Host-sid=; Path=/; Max-Age=0")  # no Secure
    set_cookies(jar, "https://example.com/", "__Host-sid=; Secure; Max-Age=0")  # no Path
    assert sent(jar, "https://example.com/") == {"__Host-sid": "1"}
    # treat_as_secure_origin makes an http origin secure for the prefixes as well.
    set_cookies(jar, "http://localhost:8080/", "__Host-dev=1; Secure; Path=/")
    set_cookies(jar, "http://localhost:8081/", "__Host-dev=1; Secure; Path=/")
    assert sent(jar, "http://localhost:8080/") == {"__Host-dev": "1"}
    assert len(jar) == 2
    # The caller's own cookies (no URL: ClientSession(cookies=...)) come from no origin, and
    # the origin rules leave them alone, as aiohttp does.
    jar.update_cookies({"__Host-given": "1", "__Secure-given": "1"})
    assert {"__Host-given", "__Secure-given"} <= set(sent(jar, "http://elsewhere.org/"))


def test_a_nameless_cookie_whose_value_looks_prefixed_is_ignored() -> None:
    # Step 22: "=__Host-x" would reach the server as a cookie named __Host-x. Set-Cookie
    # parsing drops nameless cookies; a morsel given with a URL gets here.
    jar = CookieJar()
    for value in ("__Host-sid=forged", "__secure-sid=forged"):
        jar.update_cookies([("", make_morsel("", value, value))], URL("https://example.com/"))
    assert len(jar) == 0
    jar.update_cookies([("", make_morsel("", "plain", "plain"))], URL("https://example.com/"))
    assert len(jar) == 1


# --- Eviction: least recently accessed first -----------------------------------------------


def fill(jar: CookieJar, url: str, fields: list[str]) -> None:
    # One response reads at most 50 Set-Cookie fields; send them in responses of 50.
    for start in range(0, len(fields), 50):
        set_cookies(jar, url, *fields[start:start + 50])


def test_a_full_domain_evicts_the_least_recently_sent_not_the_oldest_set() -> None:
    jar = CookieJar()
    set_cookies(jar, "http://example.com/", "used=1; Path=/used")
    fill(jar, "http://example.com/", [f"c{i}=1; Path=/other" for i in range(179)])
    # Sending "used" makes it the most recently accessed (RFC 6265 5.4 step 3).
    assert sent(jar, "http://example.com/used") == {"used": "1"}
    set_cookies(jar, "http://example.com/", "new=1; Path=/other")  # 181: down to 150
    kept = names(jar)
    assert len(jar) == len(kept) == 150
    assert {"used", "new", "c178"} <= kept
    assert not {f"c{i}" for i in range(31)} & kept  # the 31 least recently used went


def test_a_full_domain_drops_expired_cookies_first(clock: FakeClock) -> None:
    jar = CookieJar()
    fill(jar, "http://example.com/", [f"keep{i}=1" for i in range(150)])
    fill(jar, "http://example.com/", [f"short{i}=1; Max-Age=10" for i in range(30)])
    clock.now += 20
    set_cookies(jar, "http://example.com/", "new=1")  # 181, of which 30 have expired
    kept = names(jar)
    assert not any(name.startswith("short") for name in kept)
    # Only one live cookie (the least recently used) had to go for the domain's quota.
    assert kept == {f"keep{i}" for i in range(1, 150)} | {"new"}


def test_a_full_domain_drops_non_secure_cookies_before_secure_ones() -> None:
    jar = CookieJar()
    fill(jar, "https://example.com/", [f"s{i}=1; Secure" for i in range(30)])  # the oldest
    fill(jar, "https://example.com/", [f"p{i}=1" for i in range(150)])
    set_cookies(jar, "https://example.com/", "new=1")
    kept = names(jar)
    assert {f"s{i}" for i in range(30)} <= kept
    assert not {f"p{i}" for i in range(31)} & kept
    assert len(jar) == 150


def test_a_full_jar_evicts_the_least_recently_sent_not_the_oldest_set() -> None:
    jar = CookieJar()
    for host in range(66):  # 3300 cookies: at the limit
        fill(jar, f"http://h{host}.example/", [f"c{i}=1" for i in range(50)])
    assert len(sent(jar, "http://h0.example/")) == 50  # h0 is in use
    fill(jar, "http://h66.example/", [f"c{i}=1" for i in range(50)])  # 3301: down to 3000
    assert len(jar) == 3049
    assert len(sent(jar, "http://h0.example/")) == 50
    assert all(not sent(jar, f"http://h{host}.example/") for host in range(1, 7))
    assert len(sent(jar, "http://h65.example/")) == 50


def test_a_full_jar_takes_a_domains_excess_before_other_domains_cookies() -> None:
    # Priorities 2 and 3: cookies of a domain holding more than its quota (150) go before
    # the least recently used cookies of other domains, however recently they were sent.
    jar = CookieJar()
    fill(jar, "http://big.example/", [f"b{i}=1" for i in range(170)])
    for host in range(62):  # 3270 cookies
        fill(jar, f"http://h{host}.example/", [f"c{i}=1" for i in range(50)])
    assert len(sent(jar, "http://big.example/")) == 170  # all of big's are now the newest
    fill(jar, "http://h62.example/", [f"c{i}=1" for i in range(31)])  # 3301: down to 3000
    assert len(jar) == 3000
    assert len(sent(jar, "http://big.example/")) == 150
    assert not sent(jar, "http://h0.example/")
    assert len(sent(jar, "http://h61.example/")) == 50


# --- Through a real session and server -------------------------------------------------------


def response_headers(base: str, set_cookie: str) -> str:
    return str(URL(base + "/response-headers").with_query({"Set-Cookie": set_cookie}))


def trusting_httpbin() -> TCPConnector:
    return TCPConnector(ssl_context=ssl.create_default_context(cafile=httpbin_certs.where()))


async def test_a_secure_cookie_set_over_http_is_not_sent_to_https_later(
    httpbin, httpbin_secure
) -> None:
    # httpbin and httpbin_secure are one host (127.0.0.1) on two ports, and cookies do not
    # look at ports: what http sets, https would get. An IP host needs an unsafe jar.
    async with ClientSession(cookie_jar=CookieJar(unsafe=True),
                             connector=trusting_httpbin()) as session:
        for field in ("sneaky=1; Secure; Path=/", "plain=1; Path=/"):
            async with session.get(response_headers(httpbin.url, field)) as resp:
                assert resp.status == 200
                assert resp.cookies[field.split("=")[0]]  # the response did set it
        async with session.get(httpbin_secure.url + "/cookies") as resp:
            assert (await resp.json())["cookies"] == {"plain": "1"}
        async with session.get(httpbin.url + "/cookies") as resp:
            assert (await resp.json())["cookies"] == {"plain": "1"}
        assert {morsel.key for morsel in session.cookie_jar} == {"plain"}


async def test_http_cannot_replace_a_secure_cookie_set_over_https(
    httpbin, httpbin_secure
) -> None:
    async with ClientSession(cookie_jar=CookieJar(unsafe=True),
                             connector=trusting_httpbin()) as session:
        async with session.get(response_headers(httpbin_secure.url,
                                                "sid=secret; Secure; Path=/")) as resp:
            assert resp.status == 200
        async with session.get(response_headers(httpbin.url, "sid=fixed; Path=/")) as resp:
            assert resp.status == 200
        async with session.get(httpbin_secure.url + "/cookies") as resp:
            assert (await resp.json())["cookies"] == {"sid": "secret"}
        async with session.get(httpbin.url + "/cookies") as resp:
            assert (await resp.json())["cookies"] == {}
