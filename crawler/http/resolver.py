"""Turning a host name into addresses to connect to.

Two resolvers with one interface: `ThreadedResolver` (the default) runs the system's `getaddrinfo`
in the loop's thread pool, so it honours /etc/hosts, nsswitch and search domains exactly like
other programs; `AsyncResolver` asks DNS servers directly through `aiodns` (c-ares), which scales
to many concurrent look-ups without threads and lets a caller choose the nameservers.

Both return a list of `ResolveResult` in the order the system (or c-ares) gave, and raise
`OSError` when a name cannot be resolved; the dialer turns that into `ClientConnectorDNSError`.
Caching and sharing of concurrent look-ups live in `dns_cache.HostResolver`, not here.
"""

from __future__ import annotations

import asyncio
import socket
from abc import ABC, abstractmethod
from typing import Any, TypedDict

__all__ = [
    "AbstractResolver",
    "AsyncResolver",
    "DefaultResolver",
    "ResolveResult",
    "ThreadedResolver",
]

# Ask only for address families this machine can use (no AAAA answers on an IPv4-only host).
_ADDRCONFIG = getattr(socket, "AI_ADDRCONFIG", 0)
# Results hold numeric addresses: connecting must not trigger a second look-up.
_NUMERIC_FLAGS = int(socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)


class ResolveResult(TypedDict):
    """One address for a host name, in the shape `loop.create_connection` needs."""

    hostname: str  # the name that was asked for
    host: str  # numeric address; IPv6 link-local ones carry their scope ("fe80::1%eth0")
    port: int
    family: int
    proto: int
    flags: int


class AbstractResolver(ABC):
    """What the connector needs from a resolver."""

    @abstractmethod
    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[ResolveResult]:
        """Addresses for `host`, best first; raises `OSError` when there are none."""

    @abstractmethod
    async def close(self) -> None:
        """Release what the resolver holds (threads, sockets). Safe to call twice."""


def _scoped_host(address: str, scope_id: int) -> str:
    """An IPv6 address with its zone, which link-local addresses need to be reachable."""
    if not scope_id:
        return address
    try:
        zone = socket.if_indextoname(scope_id)
    except OSError:
        zone = str(scope_id)
    return f"{address}%{zone}"


class ThreadedResolver(AbstractResolver):
    """`getaddrinfo` in the event loop's default executor."""

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, family=family, flags=_ADDRCONFIG
        )
        results: list[ResolveResult] = []
        for info_family, _type, proto, _canon, sockaddr in infos:
            if info_family == socket.AF_INET6:
                if len(sockaddr) < 4:
                    continue  # IPv6 disabled in this Python build
                address = _scoped_host(str(sockaddr[0]).split("%")[0], int(sockaddr[3]))
            else:
                address = str(sockaddr[0])
            results.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=int(sockaddr[1]),
                    family=int(info_family),
                    proto=proto,
                    flags=_NUMERIC_FLAGS,
                )
            )
        if not results:
            raise socket.gaierror(socket.EAI_NONAME, f"no usable address for {host!r}")
        return results

    async def close(self) -> None:
        """Nothing to release: the executor belongs to the loop."""


class AsyncResolver(AbstractResolver):
    """DNS look-ups through `aiodns` (c-ares), optionally against chosen nameservers.

    `nameservers` are IP addresses, optionally with a port ("127.0.0.1:5353"); extra keyword
    arguments (`timeout`, `tries`, `rotate`, ...) go to `aiodns.DNSResolver`. The c-ares channel
    is created on first use, so the resolver may be built outside a running loop.
    """

    def __init__(self, nameservers: list[str] | None = None, **kwargs: Any) -> None:
        import aiodns  # noqa: F401  (fail at construction, not at first look-up, when missing)

        self._nameservers = list(nameservers) if nameservers else None
        self._kwargs = kwargs
        self._dns: Any = None
        self._closed = False

    @property
    def nameservers(self) -> list[str] | None:
        return self._nameservers

    def _channel(self) -> Any:
        if self._closed:
            raise RuntimeError("AsyncResolver is closed")
        if self._dns is None:
            import aiodns

            self._dns = aiodns.DNSResolver(
                nameservers=self._nameservers, loop=asyncio.get_running_loop(), **self._kwargs
            )
        return self._dns

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[ResolveResult]:
        import aiodns

        dns = self._channel()
        try:
            answer = await dns.getaddrinfo(
                host, family=family, port=port, type=socket.SOCK_STREAM, flags=_ADDRCONFIG
            )
        except aiodns.error.DNSError as exc:
            message = exc.args[1] if len(exc.args) > 1 else "DNS lookup failed"
            raise OSError(None, f"{message} ({host!r})") from exc
        results: list[ResolveResult] = []
        for node in answer.nodes:
            raw_address, node_port = node.addr[0], node.addr[1]
            address = raw_address.decode("ascii") if isinstance(raw_address, bytes) else raw_address
            if node.family == socket.AF_INET6 and len(node.addr) > 3:
                address = _scoped_host(address, int(node.addr[3]))
            results.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=int(node_port),
                    family=int(node.family),
                    proto=0,
                    flags=_NUMERIC_FLAGS,
                )
            )
        if not results:
            raise OSError(None, f"DNS lookup failed ({host!r}): no addresses")
        return results

    async def close(self) -> None:
        self._closed = True
        dns, self._dns = self._dns, None
        if dns is not None:
            await dns.close()


DefaultResolver = ThreadedResolver
