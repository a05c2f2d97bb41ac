"""Proxies and credentials from the environment (used with trust_env=True), and CONNECT bytes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from yarl import URL

from crawler.http import proxy_env
from crawler.http._proxy_wire import (
    connect_authority,
    connect_request,
    parse_connect_response,
    proxy_authorization,
)
from crawler.http.auth import BasicAuth
from crawler.http.proxy_env import netrc_auth, proxy_from_env

_PROXY_VARIABLES = [
    f"{name}_proxy" for name in ("http", "https", "all", "no", "ftp", "ws", "wss")
] + [f"{name.upper()}_PROXY" for name in ("http", "https", "all", "no", "ftp", "ws", "wss")]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No proxy variable from the machine running the tests, and no real ~/.netrc."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    # Each test sees its own edits at once (the recheck delay has a test of its own).
    monkeypatch.setattr(proxy_env, "NETRC_RECHECK_S", 0.0)


def write_netrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "netrc"
    path.write_text(text)
    path.chmod(0o600)
    monkeypatch.setenv("NETRC", str(path))
    return path


# --- choosing the proxy ------------------------------------------------------------------------


def test_no_variables_means_no_proxy() -> None:
    assert proxy_from_env(URL("http://example.com/")) == (None, None)


def test_http_proxy_serves_http_urls_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.local:3128")
    assert proxy_from_env(URL("http://example.com/")) == (URL("http://proxy.local:3128"), None)
    assert proxy_from_env(URL("https://example.com/")) == (None, None)


def test_https_proxy_serves_https_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://secure-proxy.local:8080")
    proxy, _ = proxy_from_env(URL("https://example.com/"))
    assert proxy == URL("http://secure-proxy.local:8080")


def test_lower_case_names_work_and_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://lower.local:1")
    assert proxy_from_env(URL("http://example.com/"))[0] == URL("http://lower.local:1")
    monkeypatch.setenv("HTTP_PROXY", "http://upper.local:2")
    assert proxy_from_env(URL("http://example.com/"))[0] == URL("http://lower.local:1")


def test_all_proxy_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "http://everything.local:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://secure.local:3128")
    assert proxy_from_env(URL("http://a.test/"))[0] == URL("http://everything.local:3128")
    assert proxy_from_env(URL("https://a.test/"))[0] == URL("http://secure.local:3128")


def test_websocket_urls_follow_their_http_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://plain.local:1")
    monkeypatch.setenv("HTTPS_PROXY", "http://tls.local:2")
    assert proxy_from_env(URL("ws://a.test/"))[0] == URL("http://plain.local:1")
    assert proxy_from_env(URL("wss://a.test/"))[0] == URL("http://tls.local:2")


def test_proxy_without_scheme_is_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "proxy.local:3128")
    assert proxy_from_env(URL("http://a.test/"))[0] == URL("http://proxy.local:3128")


def test_unsupported_proxy_scheme_is_ignored(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://proxy.local:1080")
    with caplog.at_level(logging.WARNING, logger="crawler.http"):
        assert proxy_from_env(URL("http://a.test/")) == (None, None)
    assert "unsupported" in caplog.text


@pytest.mark.parametrize(
    ("no_proxy", "url", "bypassed"),
    [
        ("a.test", "http://a.test/", True),
        ("a.test", "http://www.a.test/", True),
        (".a.test", "http://www.a.test/", True),
        ("a.test", "http://b.test/", False),
        ("*", "http://anything.test/", True),
        ("b.test, a.test", "http://a.test/x", True),
        ("a.test:8080", "http://a.test:8080/", True),
        ("127.0.0.1", "http://127.0.0.1:8000/", True),
        ("notmine.test", "http://mine.test/", False),
        ("a.test:8080", "http://a.test:9090/", False),
        ("::1", "http://[::1]:8080/", True),
        ("[::1]:8080", "http://[::1]:8080/", True),
        ("10.0.0.0/8", "http://10.1.2.3:8000/", True),
        ("10.0.0.0/8", "http://11.1.2.3/", False),
        ("10.0.0.0/8", "http://ten.test/", False),  # networks cover addresses, not names
        ("2001:db8::/32", "http://[2001:db8::7]/", True),
    ],
)
def test_no_proxy_lists_hosts_reached_directly(
    monkeypatch: pytest.MonkeyPatch, no_proxy: str, url: str, bypassed: bool
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.local:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    proxy, _ = proxy_from_env(URL(url))
    assert (proxy is None) is bypassed


def test_lower_case_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.local:3128")
    monkeypatch.setenv("no_proxy", "a.test")
    assert proxy_from_env(URL("http://a.test/")) == (None, None)


# --- credentials -------------------------------------------------------------------------------


def test_credentials_in_the_proxy_variable_are_moved_to_auth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://user:pa%20ss@proxy.local:3128")
    proxy, auth = proxy_from_env(URL("http://a.test/"))
    assert proxy == URL("http://proxy.local:3128")
    assert proxy is not None and proxy.user is None
    assert auth == BasicAuth("user", "pa ss")


def test_netrc_gives_credentials_for_the_proxy_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_netrc(tmp_path, monkeypatch, "machine proxy.local login alice password wonder\n")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.local:3128")
    assert proxy_from_env(URL("http://a.test/")) == (
        URL("http://proxy.local:3128"),
        BasicAuth("alice", "wonder"),
    )


def test_url_credentials_win_over_netrc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_netrc(tmp_path, monkeypatch, "machine proxy.local login alice password wonder\n")
    monkeypatch.setenv("HTTP_PROXY", "http://bob:builder@proxy.local:3128")
    assert proxy_from_env(URL("http://a.test/"))[1] == BasicAuth("bob", "builder")


def test_netrc_auth_for_a_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_netrc(
        tmp_path,
        monkeypatch,
        "machine a.test login alice password one\ndefault login anon password two\n",
    )
    assert netrc_auth("a.test") == BasicAuth("alice", "one")
    assert netrc_auth("other.test") == BasicAuth("anon", "two")


def test_netrc_without_an_entry_gives_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_netrc(tmp_path, monkeypatch, "machine a.test login alice password one\n")
    assert netrc_auth("b.test") is None


def test_missing_netrc_gives_nothing() -> None:
    assert netrc_auth("a.test") is None


def test_netrc_in_home_is_read_when_netrc_is_unset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NETRC")
    monkeypatch.setenv("HOME", str(tmp_path))
    home_netrc = tmp_path / ".netrc"
    home_netrc.write_text("machine a.test login carol password three\n")
    home_netrc.chmod(0o600)
    assert netrc_auth("a.test") == BasicAuth("carol", "three")


def test_malformed_netrc_is_logged_and_ignored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_netrc(tmp_path, monkeypatch, "nonsense a.test login alice\n")
    with caplog.at_level(logging.WARNING, logger="crawler.http"):
        assert netrc_auth("a.test") is None
    assert "netrc" in caplog.text


# --- caching: asked once per request, so cached, but never stale ------------------------------


def test_a_changed_variable_is_seen_at_the_next_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://first.local:1")
    assert proxy_from_env(URL("http://a.test/"))[0] == URL("http://first.local:1")
    monkeypatch.setenv("HTTP_PROXY", "http://second.local:2")
    assert proxy_from_env(URL("http://a.test/"))[0] == URL("http://second.local:2")
    monkeypatch.setenv("NO_PROXY", "a.test")
    assert proxy_from_env(URL("http://a.test/")) == (None, None)
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.delenv("HTTP_PROXY")
    assert proxy_from_env(URL("http://a.test/")) == (None, None)


def test_the_cgi_rule_follows_request_method(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under CGI, HTTP_PROXY may come from a client's "Proxy:" header (httpoxy): urllib ignores
    # it then, and the cache must not hand back the answer given before REQUEST_METHOD was set.
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.local:3128")
    assert proxy_from_env(URL("http://a.test/"))[0] == URL("http://proxy.local:3128")
    monkeypatch.setenv("REQUEST_METHOD", "GET")
    assert proxy_from_env(URL("http://a.test/")) == (None, None)


def test_a_rewritten_netrc_is_read_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write_netrc(tmp_path, monkeypatch, "machine a.test login alice password one\n")
    assert netrc_auth("a.test") == BasicAuth("alice", "one")
    path.write_text("machine a.test login bob password two\n")
    assert netrc_auth("a.test") == BasicAuth("bob", "two")
    path.unlink()
    assert netrc_auth("a.test") is None


def test_a_netrc_file_is_looked_at_again_only_after_the_recheck_delay(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    now = [100.0]
    monkeypatch.setattr(proxy_env, "NETRC_RECHECK_S", 1.0)
    monkeypatch.setattr(proxy_env.time, "monotonic", lambda: now[0])
    assert netrc_auth("a.test") is None  # no file yet: that is remembered too
    path = write_netrc(tmp_path, monkeypatch, "machine a.test login alice password one\n")
    assert netrc_auth("a.test") == BasicAuth("alice", "one")  # another path: looked at now
    path.write_text("machine a.test login bob password two\n")
    now[0] += 0.5
    assert netrc_auth("a.test") == BasicAuth("alice", "one")  # not looked at within the delay
    now[0] += 0.6
    assert netrc_auth("a.test") == BasicAuth("bob", "two")


def test_a_malformed_netrc_is_reported_once_not_at_every_request(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_netrc(tmp_path, monkeypatch, "nonsense a.test login alice\n")
    with caplog.at_level(logging.WARNING, logger="crawler.http"):
        for _ in range(5):
            assert netrc_auth("a.test") is None
    assert sum("netrc" in record.getMessage() for record in caplog.records) == 1


# --- CONNECT wire format -----------------------------------------------------------------------


def test_connect_request_bytes() -> None:
    request = connect_request(
        "example.com", 443, {"User-Agent": "crawl"}, authorization="Basic dTpw"
    )
    assert request == (
        b"CONNECT example.com:443 HTTP/1.1\r\n"
        b"Host: example.com:443\r\n"
        b"User-Agent: crawl\r\n"
        b"Proxy-Authorization: Basic dTpw\r\n\r\n"
    )


def test_callers_proxy_authorization_header_is_not_doubled() -> None:
    request = connect_request(
        "a.test", 443, {"proxy-authorization": "Basic mine"}, authorization="Basic other"
    )
    assert request.count(b"Basic") == 1
    assert b"Basic mine" in request


def test_ipv6_targets_are_bracketed() -> None:
    assert connect_authority("::1", 8443) == "[::1]:8443"
    assert connect_request("::1", 8443, {}).startswith(b"CONNECT [::1]:8443 HTTP/1.1\r\n")


@pytest.mark.parametrize(
    "headers", [{"X-A": "b\r\nX-Injected: 1"}, {"X-A": "b\nc"}, {"X-A": "b\x00"}, {"Bad Name": "x"}]
)
def test_injection_in_proxy_headers_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        connect_request("a.test", 443, headers)


def test_injection_in_the_target_is_refused() -> None:
    with pytest.raises(ValueError):
        connect_request("a.test\r\nX: y", 443, {})


def test_proxy_authorization_from_auth_or_url() -> None:
    auth = BasicAuth("u", "p")
    assert proxy_authorization(URL("http://proxy:1"), auth) == auth.encode()
    assert proxy_authorization(URL("http://u:p@proxy:1"), None) == auth.encode()
    assert proxy_authorization(URL("http://proxy:1"), None) is None


def test_parse_connect_response() -> None:
    answer = parse_connect_response(
        b'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="x"\r\n\r\n'
    )
    assert answer.status == 407
    assert answer.reason == "Proxy Authentication Required"
    assert answer.headers == (("Proxy-Authenticate", 'Basic realm="x"'),)


def test_parse_connect_response_without_reason() -> None:
    assert parse_connect_response(b"HTTP/1.0 200\r\n\r\n").status == 200


@pytest.mark.parametrize(
    "head",
    [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 2000 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n"],
)
def test_malformed_connect_response_is_refused(head: bytes) -> None:
    with pytest.raises(ValueError, match="malformed"):
        parse_connect_response(head)


def test_without_proxy_variables_urllib_request_is_not_imported() -> None:
    # It costs a process 10 ms with what it brings (email, http.client ...), at its first
    # request: a crawl with no proxy pays nothing for honouring the environment.
    import subprocess
    import sys

    code = (
        "import sys; from yarl import URL; from crawler.http.proxy_env import proxy_from_env;"
        "assert proxy_from_env(URL('http://a.test/')) == (None, None);"
        "print('urllib.request' in sys.modules)"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k not in _PROXY_VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == "False"
