"""Proxy and credential settings from the environment, used only with `trust_env=True`.

`proxy_from_env` picks the proxy for a URL the way curl and requests do: `HTTP_PROXY` for
http://, `HTTPS_PROXY` for https://, else `ALL_PROXY` (lower-case names too, lower-case first),
unless `NO_PROXY` names the host. Credentials come from the proxy URL, else from the netrc file
(`NETRC` or `~/.netrc`) entry for the proxy's host.

Both are asked once per request, so both are cached: `urllib.request` scans the whole
environment on every call (twice with NO_PROXY), about 45 µs, and netrc files were parsed
anew each time. The proxy choice is cached per host under the values of the variables it
depends on, so a changed variable is seen at the next request; a netrc file is looked at
again after `NETRC_RECHECK_S` and parsed again when its size, inode or modification time
changed.
"""

from __future__ import annotations

import functools
import logging
import netrc
import os
import stat
import time

from yarl import URL

from crawler.http.auth import BasicAuth

__all__ = ["netrc_auth", "proxy_from_env"]

logger = logging.getLogger("crawler.http")

# The env proxy that serves each request scheme (WebSockets go the way of their HTTP twin).
_ENV_SCHEME = {"http": "http", "ws": "http", "https": "https", "wss": "https"}
_SUPPORTED_PROXY_SCHEMES = {"http", "https"}
# Every variable the choice depends on, spelled as curl and requests read them; REQUEST_METHOD
# because urllib ignores HTTP_PROXY under CGI (httpoxy).
_PROXY_VARIABLES = (
    *(f"{name}_proxy" for name in ("http", "https", "all")),
    *(f"{name}_PROXY" for name in ("HTTP", "HTTPS", "ALL")),
    "no_proxy",
    "NO_PROXY",
    "REQUEST_METHOD",
)
_PROXY_NAMES = 6  # the first six name a proxy; without any, there is none
_CACHED_HOSTS = 4096


def _environment_reader(names: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """A function giving the current values of `names` (None where unset), cheaply.

    `os.environ.get` encodes the name and raises and catches KeyError for an unset one: 0.6 µs
    a name, 6 µs for all of ours, at every request. On POSIX `os.environ` keeps its live
    contents (what `os.environ[...] = ...` and `putenv` see) in a dict of bytes, which costs
    0.3 µs for all of them; elsewhere the public way is used.
    """
    data = getattr(os.environ, "_data", None)
    if os.name == "posix" and isinstance(data, dict):
        keys = tuple(os.fsencode(name) for name in names)
        return lambda: tuple(map(data.get, keys))
    return lambda: tuple(map(os.environ.get, names))


_proxy_environment = _environment_reader(_PROXY_VARIABLES)
_netrc_environment = _environment_reader(("NETRC", "HOME"))


def proxy_from_env(url: URL) -> tuple[URL | None, BasicAuth | None]:
    """The proxy for `url` from the environment and its credentials, or (None, None).

    The proxy URL comes back without user:password; those are in the BasicAuth.
    """
    scheme = _ENV_SCHEME.get(url.scheme)
    if scheme is None or not url.host:
        return None, None
    environment = _proxy_environment()
    if not any(environment[:_PROXY_NAMES]):
        # No proxy is set (the usual case): nothing to choose, and urllib.request, 10 ms to
        # import with what it brings, stays out of the process.
        return None, None
    proxy, auth = _chosen_proxy(environment, scheme, url.host, url.explicit_port)
    if proxy is not None and auth is None:
        auth = netrc_auth(proxy.host or "")
    return proxy, auth


@functools.lru_cache(maxsize=_CACHED_HOSTS)
def _chosen_proxy(
    environment: tuple[str | None, ...], scheme: str, host: str, port: int | None
) -> tuple[URL | None, BasicAuth | None]:
    """The proxy (without credentials) and the credentials its URL carries; `environment` is
    only the cache key: urllib reads the variables itself."""
    # Imported here: urllib.request costs every process ~6 ms, and only trust_env needs it.
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    raw = proxies.get(scheme) or proxies.get("all")
    if not raw:
        return None, None
    if _bypassed(host, port):
        return None, None
    proxy = URL(raw if "://" in raw else f"http://{raw}")
    if proxy.scheme not in _SUPPORTED_PROXY_SCHEMES or not proxy.host:
        logger.warning("ignoring %s proxy %s from the environment: unsupported", scheme, proxy)
        return None, None
    return proxy.with_user(None), BasicAuth.from_url(proxy)


def _bypassed(host: str, port: int | None) -> bool:
    """Whether NO_PROXY (any case) says to reach this host directly.

    Entries are matched as urllib (and aiohttp) match them: a host name, a domain suffix with
    or without its leading dot, an address, `*`; and also as curl and requests do: `host:port`
    for that port only, and a network in CIDR notation (`10.0.0.0/8`, `fd00::/8`) for an
    address in it.
    """
    import urllib.request

    bypass = urllib.request.proxy_bypass_environment
    # The bare host first: urllib cannot split the port off "[::1]:8080", so "::1" would
    # never match an IPv6 URL with a port if only host:port were asked.
    if bypass(host):
        return True
    if port is not None:
        # Matches "host:port" entries (a bare "host" entry was already tried above).
        host_port = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if bypass(host_port):
            return True
    return _in_no_proxy_network(host, urllib.request.getproxies_environment().get("no", ""))


def _in_no_proxy_network(host: str, no_proxy: str) -> bool:
    """Whether `host` is an IP address inside one of the CIDR networks listed in `no_proxy`."""
    import ipaddress

    if "/" not in no_proxy:
        return False
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False  # a name: networks only cover addresses written in the URL
    for entry in no_proxy.split(","):
        entry = entry.strip().strip("[]")
        if "/" not in entry:
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue  # not a network: urllib has already matched it as a name, or not
        if address.version == network.version and address in network:
            return True
    return False


def _netrc_path() -> str | None:
    return _netrc_path_for(*_netrc_environment())


@functools.lru_cache(maxsize=16)
def _netrc_path_for(configured: str | bytes | None, home: str | bytes | None) -> str | None:
    if configured:
        return os.fsdecode(configured)
    if home:
        return os.path.join(os.fsdecode(home), ".netrc")
    path = os.path.expanduser("~/.netrc")  # from the password database
    return None if path.startswith("~") else path  # no home directory to speak of


# How long what was found at a netrc path is trusted before the file is looked at again: a
# stat (2 µs, most of what asking costs) per request is not worth it for a file that changes
# once in a blue moon; an edit is still seen within this much time.
NETRC_RECHECK_S = 1.0
# path -> (when it was looked at (monotonic), (size, inode, mtime) of the file parsed or None
# when there was none, what parsing gave: None when there was nothing or it was unreadable)
_netrc_seen: dict[str, tuple[float, tuple[int, int, int] | None, netrc.netrc | None]] = {}


def _netrc_entries(path: str) -> netrc.netrc | None:
    now = time.monotonic()
    seen = _netrc_seen.get(path)
    if seen is not None and now - seen[0] < NETRC_RECHECK_S:
        return seen[2]
    try:
        status = os.stat(path)
    except OSError:
        _netrc_seen[path] = (now, None, None)
        return None
    if not stat.S_ISREG(status.st_mode):
        _netrc_seen[path] = (now, None, None)
        return None
    signature = (status.st_size, status.st_ino, status.st_mtime_ns)
    if seen is not None and seen[1] == signature:
        _netrc_seen[path] = (now, signature, seen[2])
        return seen[2]
    try:
        entries: netrc.netrc | None = netrc.netrc(path)
    except (netrc.NetrcParseError, OSError) as exc:
        # Logged once per version of the file, not once per request.
        logger.warning("could not read netrc file %s: %s", path, exc)
        entries = None
    _netrc_seen[path] = (now, signature, entries)
    return entries


def netrc_auth(host: str) -> BasicAuth | None:
    """Credentials for `host` (or the `default` entry) from the netrc file, or None.

    A missing file means no credentials; an unreadable or malformed one is logged and ignored,
    so a broken ~/.netrc never stops a crawl.
    """
    path = _netrc_path()
    entries = None if path is None else _netrc_entries(path)
    if entries is None:
        return None
    found = entries.authenticators(host)
    if found is None:
        return None
    login, account, password = found
    # netrc allows an entry with only `account`; it is what some tools use as the user name.
    user = login or account or ""
    try:
        return BasicAuth(user, password or "")
    except ValueError as exc:
        logger.warning("ignoring netrc entry for %s in %s: %s", host, path, exc)
        return None
