"""A deterministic linked site of N pages over H hosts (ports on one loopback address).

The same `SiteSpec` and ports always give byte-identical content. Page i lives on host i % H;
pages 0..H-1 are the hosts' home pages (`/`), the rest sit at `/sec<j>/page<i>.html`. Every page
links to its children in a 4-ary tree (so all pages are reachable from page 0), to a few
pseudo-random pages (same host and other hosts, in every URL form a crawler must resolve:
absolute, host-relative, relative, `../`, protocol-relative, with fragments, duplicated).
The link graph is kept as `crawler.extract` resolves it, so `Site.reachable()` says which URLs a
correct crawl fetches (the hostile links of `faults` are kept as resolved, before any
canonicalization a frontier applies).

Besides the N pages each host has: `/robots.txt` disallowing `/private/`, pages under
`/private/`, a 301 at `/moved`, a two-hop chain `/chain/1` -> `/chain/2` -> another host, a link
to a 404 (`/missing.html`), a binary file `/files/data.bin` and `/static/style.css`. Host 0 also
serves the large files of `spec.big_files` at `/files/big-<k>.bin`. With `spec.faults`, host 0
adds a 429-then-200 page, a 503-twice-then-200 page, a redirect loop and a page with hostile
links that try to climb out of a mirror directory.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from crawler.demo_site.resources import Body, Flaky, GeneratedBody, Redirect, Resource
from crawler.extract import resolve_link

HTML = "text/html; charset=utf-8"
ROBOTS_TXT = b"User-agent: *\nDisallow: /private/\n"
STYLE_CSS = b"body { font-family: sans-serif; max-width: 40em; margin: auto; }\n"
_FANOUT = 4
_SECTIONS = 10
_WORDS = (
    "crawl",
    "frontier",
    "lease",
    "worker",
    "politeness",
    "robots",
    "sitemap",
    "anchor",
    "fetch",
    "parse",
    "extract",
    "link",
    "host",
    "queue",
    "retry",
    "backoff",
    "header",
    "body",
    "stream",
    "chunk",
    "mirror",
    "archive",
    "record",
    "index",
    "depth",
    "scope",
)
HOSTILE_HREFS = (
    "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/files/..%2f..%2f..%2fetc%2fpasswd",
    "/a/..\\..\\..\\windows\\win.ini",
    "/%00/nul.html",
    "/" + "x" * 300 + "/long.html",
    "/CON/aux.html",
)


class SiteError(ValueError):
    """A site specification that cannot be generated (one line)."""


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """What to generate. Equal specs (and ports) give byte-identical sites."""

    pages: int = 100
    hosts: int = 1
    seed: int = 1
    links_per_page: int = 8
    page_bytes: int = 4096
    binary_bytes: int = 64 * 1024
    big_files: tuple[int, ...] = ()
    faults: bool = False

    def __post_init__(self) -> None:
        if self.hosts < 1:
            raise SiteError("a site needs at least one host")
        if self.pages < self.hosts:
            raise SiteError(f"{self.pages} pages cannot cover {self.hosts} hosts (one home each)")
        if self.links_per_page < 0 or self.page_bytes < 0 or self.binary_bytes < 1:
            raise SiteError("links_per_page and page_bytes must be >= 0, binary_bytes >= 1")
        if any(size < 1 for size in self.big_files):
            raise SiteError("big file sizes must be at least 1 byte")


@dataclass(slots=True)
class HostSite:
    """One host of the site: its port and what it serves at each path."""

    index: int
    address: str
    port: int
    routes: dict[str, Resource] = field(default_factory=dict)
    scheme: str = "http"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.address}:{self.port}"


@dataclass(slots=True)
class Site:
    """A generated site: hosts with their routes, and the link graph for expected results."""

    spec: SiteSpec
    hosts: list[HostSite]
    links: dict[str, tuple[str, ...]]

    @property
    def seeds(self) -> list[str]:
        """Each host's home page."""
        return [host.origin + "/" for host in self.hosts]

    def page_urls(self) -> list[str]:
        """The URLs of the N generated pages, in page order."""
        return [_page_url(self.hosts, self.spec.hosts, i) for i in range(self.spec.pages)]

    def resource(self, url: str) -> Resource | None:
        parts = urlsplit(url)
        for host in self.hosts:
            if host.port == parts.port and host.address == parts.hostname:
                return host.routes.get(parts.path or "/")
        return None

    def status_of(self, url: str) -> int:
        """The status a crawler ends with at `url` (a flaky page recovers to 200)."""
        resource = self.resource(url)
        if resource is None:
            return 404
        if isinstance(resource, Redirect):
            return resource.status
        return 200

    def disallowed(self, url: str) -> bool:
        """Whether the site's robots.txt disallows `url` (a URL of one of its hosts)."""
        origins = {host.origin for host in self.hosts}
        return _origin(url) in origins and urlsplit(url).path.startswith("/private/")

    def reachable(self, *, robots: bool = True, max_redirects: int = 10) -> list[str]:
        """Every URL a correct crawl from `seeds` fetches (robots.txt itself excluded).

        Follows links and redirects (a loop ends after `max_redirects` hops, as in a crawler),
        includes 404 targets and files, and leaves out `/private/` when `robots` is obeyed.
        Links outside the site's hosts are not followed.
        """
        origins = {host.origin for host in self.hosts}
        seen: dict[str, None] = {}
        queue = deque((url, 0) for url in self.seeds)
        while queue:
            url, hops = queue.popleft()
            if url in seen or _origin(url) not in origins:
                continue
            if robots and self.disallowed(url):
                continue
            seen[url] = None
            resource = self.resource(url)
            if isinstance(resource, Redirect):
                if hops < max_redirects:
                    target = resolve_link(resource.location, url)
                    if target is not None:
                        queue.append((target, hops + 1))
                continue
            queue.extend((link, 0) for link in self.links.get(url, ()))
        return list(seen)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _page_path(hosts: int, i: int) -> str:
    if i < hosts:
        return "/"
    return f"/sec{(i // hosts) % _SECTIONS}/page{i}.html"


def _page_url(host_sites: list[HostSite], hosts: int, i: int) -> str:
    return host_sites[i % hosts].origin + _page_path(hosts, i)


def _href(rng: random.Random, source: int, target: int, sites: list[HostSite], hosts: int) -> str:
    """A link from page `source` to page `target`, in one of the forms real pages use."""
    path = _page_path(hosts, target)
    target_host = sites[target % hosts]
    if source % hosts != target % hosts:
        form = rng.choice(("absolute", "absolute", "protocol-relative"))
        prefix = target_host.origin if form == "absolute" else f"//{target_host.origin[7:]}"
        href = prefix + path
    else:
        source_dir = _page_path(hosts, source).rsplit("/", 1)[0] + "/"
        target_dir, _, name = path.rpartition("/")
        target_dir += "/"
        form = rng.choice(("host-relative", "absolute", "relative", "dot-relative"))
        if form == "absolute":
            href = target_host.origin + path
        elif form == "host-relative" or path == "/":
            href = path
        elif source_dir == target_dir:
            href = name if form == "relative" else "./" + name
        elif source_dir == "/":
            href = path[1:]
        else:
            href = "../" + path[1:]
    if rng.random() < 0.15:
        href += f"#part{rng.randrange(5)}"
    return href


def _html(title: str, hrefs: list[str], rng: random.Random, size: int) -> bytes:
    items = "".join(f'<li><a href="{href}">link {n}</a></li>\n' for n, href in enumerate(hrefs))
    head = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>\n'
        f'<link rel="stylesheet" href="/static/style.css"></head>\n<body><h1>{title}</h1>\n'
    )
    tail = f"<ul>\n{items}</ul>\n</body></html>\n"
    words: list[str] = []
    room = size - len(head) - len(tail) - 8
    while room > 0:
        word = rng.choice(_WORDS)
        words.append(word)
        room -= len(word) + 1
    text = f"<p>{' '.join(words)}</p>\n" if words else ""
    return (head + text + tail).encode()


class _Builder:
    """Fills the hosts' routes and records every page's links as the crawler will resolve them."""

    def __init__(self, spec: SiteSpec, sites: list[HostSite]) -> None:
        self.spec = spec
        self.sites = sites
        self.links: dict[str, tuple[str, ...]] = {}

    def add_page(
        self, host: HostSite, path: str, title: str, hrefs: list[str], rng: random.Random
    ) -> None:
        url = host.origin + path
        host.routes[path] = Body(_html(title, hrefs, rng, self.spec.page_bytes), HTML)
        resolved = (resolve_link(href, url) for href in ["/static/style.css", *hrefs])
        self.links[url] = tuple(dict.fromkeys(link for link in resolved if link and link != url))

    def add_pages(self) -> None:
        spec = self.spec
        for i in range(spec.pages):
            rng = random.Random(f"{spec.seed}:page:{i}")
            first_child = i * _FANOUT + 1
            targets = list(range(first_child, min(first_child + _FANOUT, spec.pages)))
            targets += [rng.randrange(spec.pages) for _ in range(spec.links_per_page)]
            rng.shuffle(targets)
            hrefs = [_href(rng, i, target, self.sites, spec.hosts) for target in targets]
            if i < spec.hosts:
                hrefs += self.home_extras(i)
            if targets:
                hrefs.append(hrefs[0])  # pages repeat links; a crawler must not fetch twice
            self.add_page(
                self.sites[i % spec.hosts], _page_path(spec.hosts, i), f"Page {i}", hrefs, rng
            )

    def home_extras(self, index: int) -> list[str]:
        extras = ["/private/secret.html", "/moved", "/chain/1", "/missing.html", "/files/data.bin"]
        if index == 0:
            extras += [f"/files/big-{k}.bin" for k in range(len(self.spec.big_files))]
            if self.spec.faults:
                extras += ["/flaky/429", "/flaky/503", "/loop/a", "/escape.html"]
        return extras

    def add_host_extras(self, host: HostSite) -> None:
        spec = self.spec
        rng = random.Random(f"{spec.seed}:host:{host.index}")
        host.routes["/robots.txt"] = Body(ROBOTS_TXT, "text/plain; charset=utf-8")
        host.routes["/static/style.css"] = Body(STYLE_CSS, "text/css; charset=utf-8")
        binary = GeneratedBody(spec.binary_bytes, spec.seed * 1000 + host.index)
        host.routes["/files/data.bin"] = Body(binary.read(), "application/octet-stream")
        self.add_page(host, "/private/secret.html", "Private", ["deeper.html", "/"], rng)
        self.add_page(host, "/private/deeper.html", "Private, deeper", ["/"], rng)
        home_of_next = self.sites[(host.index + 1) % spec.hosts].origin + "/"
        moved_to = host.index + spec.hosts  # the host's first page after its home, if any
        moved_path = _page_path(spec.hosts, moved_to) if moved_to < spec.pages else "/"
        host.routes["/moved"] = Redirect(moved_path, 301)
        host.routes["/chain/1"] = Redirect("/chain/2", 302)
        host.routes["/chain/2"] = Redirect(home_of_next, 307)

    def add_big_files(self) -> None:
        for k, size in enumerate(self.spec.big_files):
            seed = self.spec.seed * 1000 + 500 + k
            self.sites[0].routes[f"/files/big-{k}.bin"] = GeneratedBody(size, seed)

    def add_faults(self) -> None:
        host = self.sites[0]
        rng = random.Random(f"{self.spec.seed}:faults")
        recovered = Body(_html("Recovered", ["/"], rng, 512), HTML)
        host.routes["/flaky/429"] = Flaky(failures=1, status=429, then=recovered, retry_after=1)
        host.routes["/flaky/503"] = Flaky(failures=2, status=503, then=recovered)
        host.routes["/loop/a"] = Redirect("/loop/b", 302)
        host.routes["/loop/b"] = Redirect("/loop/a", 302)
        self.add_page(host, "/escape.html", "Hostile links", list(HOSTILE_HREFS), rng)


def build_site(
    spec: SiteSpec, ports: list[int], address: str = "127.0.0.1", *, scheme: str = "http"
) -> Site:
    """Generate the site for hosts listening on `ports` (one per host) at `address`; with
    scheme "https" its absolute links and seeds say https://."""
    if len(ports) != spec.hosts:
        raise SiteError(f"{spec.hosts} hosts need {spec.hosts} ports, got {len(ports)}")
    hosts = [HostSite(index, address, port, scheme=scheme) for index, port in enumerate(ports)]
    builder = _Builder(spec, hosts)
    builder.add_pages()
    for host in builder.sites:
        builder.add_host_extras(host)
    builder.add_big_files()
    if spec.faults:
        builder.add_faults()
    return Site(spec, builder.sites, builder.links)
