"""Proxy and credential settings from the environment, used only with `trust_env=True`.

`proxy_from_env` picks the proxy for a URL the way curl and requests do: `HTTP_PROXY` for
http://, `HTTPS_PROXY` for https://, else `ALL_PROXY` (lower-case names too, lower-case first),
unless `NO_PROXY` names the host. Credentials come from the proxy URL, else from the netrc file
(`NETRC` or `~/.netrc`) entry for the proxy's host.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path

from yarl import URL

from crawler.http.auth import BasicAuth

__all__ = ["netrc_auth", "proxy_from_env"]

logger = logging.getLogger("crawler.http")

# The env proxy that serves each request scheme (WebSockets go the way of their HTTP twin).
_ENV_SCHEME = {"http": "http", "ws": "http", "https": "https", "wss": "https"}
_SUPPORTED_PROXY_SCHEMES = {"http", "https"}


def proxy_from_env(url: URL) -> tuple[URL | None, BasicAuth | None]:
    """The proxy for `url` from the environment and its credentials, or (None, None).

    The proxy URL comes back without user:password; those are in the BasicAuth.
    """
    scheme = _ENV_SCHEME.get(url.scheme)
    if scheme is None or not url.host:
        return None, None
    # Imported here: urllib.request costs every process ~6 ms, and only trust_env needs it.
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    raw = proxies.get(scheme) or proxies.get("all")
    if not raw:
        return None, None
    if _bypassed(url):
        return None, None
    proxy = URL(raw if "://" in raw else f"http://{raw}")
    if proxy.scheme not in _SUPPORTED_PROXY_SCHEMES or not proxy.host:
        logger.warning("ignoring %s proxy %s from the environment: unsupported", scheme, proxy)
        return None, None
    auth = BasicAuth.from_url(proxy)
    if auth is None:
        auth = netrc_auth(proxy.host)
    return proxy.with_user(None), auth


def _bypassed(url: URL) -> bool:
    """Whether NO_PROXY (any case) says to reach this host directly."""
    import urllib.request

    host = url.host or ""
    if url.explicit_port:
        # proxy_bypass_environment matches both "host" and "host:port" entries from this.
        host_port = f"[{host}]:{url.port}" if ":" in host else f"{host}:{url.port}"
        return bool(urllib.request.proxy_bypass_environment(host_port))
    return bool(urllib.request.proxy_bypass_environment(host))


def _netrc_path() -> Path | None:
    configured = os.environ.get("NETRC")
    if configured:
        return Path(configured)
    try:
        return Path.home() / ".netrc"
    except RuntimeError:  # no home directory to speak of
        return None


def netrc_auth(host: str) -> BasicAuth | None:
    """Credentials for `host` (or the `default` entry) from the netrc file, or None.

    A missing file means no credentials; an unreadable or malformed one is logged and ignored,
    so a broken ~/.netrc never stops a crawl.
    """
    path = _netrc_path()
    if path is None or not path.is_file():
        return None
    try:
        entries = netrc.netrc(str(path))
    except (netrc.NetrcParseError, OSError) as exc:
        logger.warning("could not read netrc file %s: %s", path, exc)
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
