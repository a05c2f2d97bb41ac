"""Cookies in a crawl: none by default, --cookies keeps what the site sets, --load-cookies sends
a cookies.txt's; the records say which were sent."""

from __future__ import annotations

from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from yarl import URL

from crawler.http import CookieJar
from tests.support.handler_server import QuietHandler, handler_server
from tests.workers.support import by_url, crawl, records

HOME = b'<html><body><a href="/members.html">m</a> <a href="/account.html">a</a></body></html>'


class _CookieSite(QuietHandler):
    """/ sets "visit"; /members.html wants it back; /account.html wants the "login" cookie a
    browser session would have (from a cookies.txt); /robots.txt is a 404."""

    def do_GET(self) -> None:
        sent = SimpleCookie(self.headers.get("Cookie", ""))
        if self.path == "/":
            self.answer(200, HOME, Set_Cookie="visit=1; Path=/")
        elif self.path == "/members.html":
            ok = "visit" in sent
            self.answer(200 if ok else 403, b"<html>members</html>")
        elif self.path == "/account.html":
            ok = "login" in sent and sent["login"].value == "s3cret"
            self.answer(200 if ok else 403, b"<html>account</html>")
        else:
            self.answer(404, b"")


@pytest.fixture
def origin() -> Iterator[str]:
    with handler_server(_CookieSite) as origin:
        yield origin


Fetched = dict[str, tuple[int | None, list[str]]]  # path -> (status, Cookie headers sent)


def statuses(origin: str, workdir: Path, *args: str | Path) -> Fetched:
    seeds = workdir / "seeds.txt"
    seeds.write_text(origin + "/\n")
    done = crawl("run", seeds, "--out", workdir / "out", "--workers", "1", "--no-progress",
                 *args, cwd=workdir)
    assert done.returncode == 0, done.stderr
    found = by_url(records(workdir / "out"))
    return {
        url[len(origin):]: (fetches[-1].status, fetches[-1].cookies_sent)
        for url, fetches in found.items()
    }


def test_by_default_no_cookie_is_kept_or_sent(origin: str, workdir: Path) -> None:
    got = statuses(origin, workdir)
    assert got["/members.html"] == (403, [])
    assert got["/account.html"] == (403, [])


def test_cookies_keeps_what_the_site_sets(origin: str, workdir: Path) -> None:
    got = statuses(origin, workdir, "--cookies")
    assert got["/members.html"] == (200, ["visit=1"])
    assert got["/account.html"][0] == 403


def test_load_cookies_sends_a_cookies_txt_s_cookies(origin: str, workdir: Path) -> None:
    jar = workdir / "cookies.txt"
    jar.write_text(
        "# Netscape HTTP Cookie File\n"
        "127.0.0.1\tFALSE\t/\tFALSE\t0\tlogin\ts3cret\n"
        "127.0.0.1\tFALSE\t/\tFALSE\t1000\told\texpired-long-ago\n"
        "#HttpOnly_.other.test\tTRUE\t/\tFALSE\t0\telsewhere\tnot-for-this-site\n"
    )
    got = statuses(origin, workdir, "--load-cookies", jar)
    assert got["/account.html"] == (200, ["login=s3cret; visit=1"])
    assert got["/"] == (200, ["login=s3cret"])
    assert got["/members.html"][0] == 200  # the site's own cookie is kept too


def test_load_cookies_sends_the_cookies_of_a_saved_cookie_jar(origin: str, workdir: Path) -> None:
    # A session scripted with our client (a log-in) saves its jar; the crawl goes on from it.
    saved = CookieJar(unsafe=True)
    saved.update_cookies({"login": "s3cret"}, URL(origin + "/login"))
    saved.update_cookies({"elsewhere": "x"}, URL("http://other.test/"))
    saved.save(workdir / "session.json")
    got = statuses(origin, workdir, "--load-cookies", workdir / "session.json")
    assert got["/account.html"] == (200, ["login=s3cret; visit=1"])
    assert got["/"] == (200, ["login=s3cret"])


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("login=s3cret\n", "does not look like a Netscape format cookies file"),
        ('{"login": "s3cret"}\n', "the key is not '<domain>|<path>'"),
        ("  {not json\n", "not a JSON cookie file"),
    ],
)
def test_a_file_that_is_no_cookie_file_is_a_usage_error(
    workdir: Path, text: str, says: str
) -> None:
    bad = workdir / "cookies.file"
    bad.write_text(text)
    seeds = workdir / "seeds.txt"
    seeds.write_text("http://127.0.0.1:1/\n")
    done = crawl("run", seeds, "--load-cookies", bad, "--out", workdir / "out", cwd=workdir)
    assert done.returncode == 2
    assert "bad setting load_cookies=" in done.stderr
    assert says in done.stderr
