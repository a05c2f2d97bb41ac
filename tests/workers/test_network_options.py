"""`crawl` through a proxy and against HTTPS sites: --proxy (and the proxy environment),
--ca-file and --insecure, with a real tinyproxy and a demo site served over real TLS."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.demo_site import ServedSite, SiteSpec, site_in_thread
from storage import Outcome
from tests.support.handler_server import QuietHandler, handler_server
from tests.support.tinyproxy import TinyProxy
from tests.support.tls_certs import TestPKI, make_pki
from tests.workers.support import by_url, crawl, crawl_env, expected_crawl, records

SPEC = SiteSpec(pages=30, hosts=1)


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return make_pki()


@pytest.fixture
def https_site(pki: TestPKI) -> Iterator[ServedSite]:
    with site_in_thread(SPEC, tls=pki.server_context()) as served:
        yield served


@pytest.fixture
def http_site() -> Iterator[ServedSite]:
    with site_in_thread(SPEC) as served:
        yield served


def run_crawl(
    served: ServedSite, workdir: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, Path]:
    seeds = workdir / "seeds.txt"
    seeds.write_text("\n".join(served.seeds) + "\n")
    out = workdir / "out"
    done = crawl(
        "run", seeds, "--out", out, "--workers", "1", "--no-progress", *args, cwd=workdir, env=env
    )
    return done.returncode, done.stderr, out


def assert_whole_site_stored(served: ServedSite, out: Path) -> None:
    """Every URL of the site recorded once, with the status the site gives it (or skipped, for
    what robots.txt disallows)."""
    found = by_url(records(out))
    expected = expected_crawl(served.site).outcomes
    assert set(found) == set(expected)
    got = {
        url: "skipped" if record.outcome is Outcome.SKIPPED else record.status
        for url, (record,) in found.items()
    }
    assert got == expected
    assert sum(status == 200 for status in got.values()) > SPEC.pages / 2


# --- TLS ---------------------------------------------------------------------------------------


def test_a_certificate_from_an_unknown_ca_fails_at_once_and_says_why(
    https_site: ServedSite, workdir: Path
) -> None:
    code, stderr, out = run_crawl(https_site, workdir)
    assert code == 0, stderr
    found = records(out)
    # robots.txt could not be read for the same reason, and did not hold the seed back: it
    # was fetched, once (a certificate does not get better on a retry), and failed.
    assert [record.url for record in found] == https_site.seeds
    (record,) = found
    assert record.outcome is Outcome.FAILED
    assert record.error is not None and "CERTIFICATE_VERIFY_FAILED" in record.error
    assert "1 failed" in stderr
    # The log says what to do about it, once for the host.
    advice = "trust its CA with --ca-file, or skip verification with --insecure"
    assert stderr.count(advice) == 1
    report = json.loads(crawl("status", out, "--json", cwd=workdir).stdout)
    assert report["top_reasons"] == [["failed", "ClientConnectorCertificateError", 1]]


def test_ca_file_trusts_the_site_s_ca(
    https_site: ServedSite, workdir: Path, pki: TestPKI
) -> None:
    ca_file = pki.write_ca_file(workdir)
    code, stderr, out = run_crawl(https_site, workdir, "--ca-file", str(ca_file))
    assert code == 0, stderr
    assert_whole_site_stored(https_site, out)
    assert all(url.startswith("https://") for url in by_url(records(out)))


def test_ca_file_from_the_environment(
    https_site: ServedSite, workdir: Path, pki: TestPKI
) -> None:
    env = crawl_env(CRAWL_CA_FILE=str(pki.write_ca_file(workdir)))
    code, stderr, out = run_crawl(https_site, workdir, env=env)
    assert code == 0, stderr
    assert_whole_site_stored(https_site, out)


def test_insecure_crawls_a_site_whatever_its_certificate(
    https_site: ServedSite, workdir: Path
) -> None:
    code, stderr, out = run_crawl(https_site, workdir, "--insecure")
    assert code == 0, stderr
    assert_whole_site_stored(https_site, out)


def test_a_ca_file_that_holds_no_certificate_is_a_usage_error(workdir: Path) -> None:
    bad = workdir / "not-a-ca.pem"
    bad.write_text("hello\n")
    seeds = workdir / "seeds.txt"
    seeds.write_text("https://127.0.0.1:1/\n")
    done = crawl("run", seeds, "--ca-file", bad, "--out", workdir / "out", cwd=workdir)
    assert done.returncode == 2
    assert "bad setting ca_file=" in done.stderr
    assert "no CA certificates could be loaded" in done.stderr
    missing = crawl("run", seeds, "--ca-file", workdir / "missing.pem", cwd=workdir)
    assert missing.returncode == 2
    assert "is not a file" in missing.stderr


# --- proxies -----------------------------------------------------------------------------------


def proxied_paths(proxy: TinyProxy, served: ServedSite) -> set[str]:
    """The site's URLs tinyproxy was asked for (absolute-form GETs)."""
    origin = served.site.hosts[0].origin
    found = set()
    for line in proxy.log().splitlines():
        marker = f"GET {origin}"
        if marker in line:
            found.add(origin + line.split(marker, 1)[1].split()[0])
    return found


def fetched_urls(served: ServedSite, out: Path) -> set[str]:
    """What the crawl asked the site for: robots.txt and every URL it did not skip."""
    fetched = {record.url for record in records(out) if record.outcome is not Outcome.SKIPPED}
    return fetched | {served.site.hosts[0].origin + "/robots.txt"}


def test_proxy_flag_sends_every_fetch_through_the_proxy(
    http_site: ServedSite, workdir: Path, tinyproxy: TinyProxy
) -> None:
    code, stderr, out = run_crawl(http_site, workdir, "--proxy", tinyproxy.url)
    assert code == 0, stderr
    assert_whole_site_stored(http_site, out)
    assert proxied_paths(tinyproxy, http_site) == fetched_urls(http_site, out)


def test_the_proxy_environment_is_honoured_as_curl_does(
    http_site: ServedSite, workdir: Path, tinyproxy: TinyProxy
) -> None:
    code, stderr, out = run_crawl(http_site, workdir, env=crawl_env(http_proxy=tinyproxy.url))
    assert code == 0, stderr
    assert_whole_site_stored(http_site, out)
    assert proxied_paths(tinyproxy, http_site) == fetched_urls(http_site, out)


@pytest.mark.parametrize(
    ("extra_env", "args"),
    [
        ({"NO_PROXY": "127.0.0.1"}, ()),
        ({}, ("--proxy", "none")),
        ({"CRAWL_PROXY": "none"}, ()),
    ],
    ids=["no_proxy", "flag-none", "env-none"],
)
def test_no_proxy_and_proxy_none_go_direct(
    http_site: ServedSite,
    workdir: Path,
    tinyproxy: TinyProxy,
    extra_env: dict[str, str],
    args: tuple[str, ...],
) -> None:
    env = crawl_env(HTTP_PROXY=tinyproxy.url, **extra_env)
    code, stderr, out = run_crawl(http_site, workdir, *args, env=env)
    assert code == 0, stderr
    assert_whole_site_stored(http_site, out)
    assert proxied_paths(tinyproxy, http_site) == set()


def test_an_https_site_through_the_proxy_uses_connect(
    https_site: ServedSite, workdir: Path, tinyproxy: TinyProxy, pki: TestPKI
) -> None:
    ca_file = pki.write_ca_file(workdir)
    code, stderr, out = run_crawl(
        https_site, workdir, "--proxy", tinyproxy.url, "--ca-file", str(ca_file)
    )
    assert code == 0, stderr
    assert_whole_site_stored(https_site, out)
    port = https_site.site.hosts[0].port
    assert f"CONNECT 127.0.0.1:{port}" in tinyproxy.log()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ftp://proxy.test:21", "expected 'env', 'none' or an http:// or https:// proxy URL"),
        ("http://proxy.test:99999", "the proxy URL has a bad port"),
        (
            "http://proxy.test:3128/path",
            "a proxy URL is scheme://[user:password@]host[:port], with no path",
        ),
        ("http://", "the proxy URL has no host"),
    ],
)
def test_a_bad_proxy_is_a_usage_error_naming_the_setting(
    workdir: Path, value: str, message: str
) -> None:
    seeds = workdir / "seeds.txt"
    seeds.write_text("http://127.0.0.1:1/\n")
    done = crawl("run", seeds, "--proxy", value, "--out", workdir / "out", cwd=workdir)
    assert done.returncode == 2
    assert f"bad setting proxy={value!r} from --proxy: {message}" in done.stderr


# --- credentials from netrc --------------------------------------------------------------------


class _GuardedPage(QuietHandler):
    def do_GET(self) -> None:
        wanted = "Basic " + base64.b64encode(b"reader:books").decode()
        status = 200 if self.headers.get("Authorization") == wanted else 401
        self.answer(status, b"<html>shelf</html>")


@pytest.mark.parametrize(("proxy", "status"), [("env", 200), ("none", 401)])
def test_netrc_credentials_are_sent_under_proxy_env_as_wget_does(
    workdir: Path, proxy: str, status: int
) -> None:
    netrc = workdir / "netrc"
    netrc.write_text("machine 127.0.0.1 login reader password books\n")
    netrc.chmod(0o600)
    with handler_server(_GuardedPage) as origin:
        seeds = workdir / "seeds.txt"
        seeds.write_text(f"{origin}/shelf\n")
        done = crawl(
            "run", seeds, "--out", workdir / "out", "--workers", "1", "--no-robots",
            "--no-progress", "--proxy", proxy, cwd=workdir, env=crawl_env(NETRC=str(netrc)),
        )
        assert done.returncode == 0, done.stderr
    (record,) = records(workdir / "out")
    assert record.status == status
