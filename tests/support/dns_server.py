"""A tiny DNS server on loopback UDP (built on `dnslib`) for resolver tests.

It answers A and AAAA queries for made-up names from a table, NXDOMAIN for anything else, and
counts the queries it receives per name, so a test can see the resolver's cache and the sharing of
concurrent look-ups from the server's side.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence

from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class _TableResolver(BaseResolver):
    def __init__(self, table: Mapping[str, Sequence[str]], delay: float) -> None:
        self.table = {
            name.rstrip(".").lower(): list(addresses) for name, addresses in table.items()
        }
        self.delay = delay
        self.queries: Counter[str] = Counter()
        self._lock = threading.Lock()

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        name = str(request.q.qname).rstrip(".").lower()
        with self._lock:
            self.queries[name] += 1
        if self.delay:
            # Keeps the answer in flight long enough for concurrent look-ups to overlap.
            time.sleep(self.delay)
        reply = request.reply()
        addresses = self.table.get(name)
        if addresses is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        qtype = QTYPE[request.q.qtype]
        # TTL 0: c-ares keeps answers for their TTL; with 0 every look-up reaches this server,
        # so the counts show only what the client's own cache saved.
        for address in addresses:
            is_v6 = ":" in address
            if qtype in ("A", "ANY") and not is_v6:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=0))
            if qtype in ("AAAA", "ANY") and is_v6:
                reply.add_answer(RR(request.q.qname, QTYPE.AAAA, rdata=AAAA(address), ttl=0))
        return reply


class TinyDNSServer:
    """`with TinyDNSServer({"shop.test": ["127.0.0.1"]}) as dns:` then use `dns.nameserver`."""

    def __init__(self, table: Mapping[str, Sequence[str]], *, delay: float = 0.0) -> None:
        self._resolver = _TableResolver(table, delay)
        self._server: DNSServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("DNS server is not running")
        return int(self._server.server.server_address[1])

    @property
    def nameserver(self) -> str:
        """`127.0.0.1:<port>`, the form `AsyncResolver(nameservers=[...])` accepts."""
        return f"127.0.0.1:{self.port}"

    def queries(self, name: str) -> int:
        """How many queries (of any type) arrived for `name`."""
        return self._resolver.queries[name.rstrip(".").lower()]

    def start(self) -> None:
        # Port 0: the kernel picks a free UDP port, so parallel test runs never collide.
        self._server = DNSServer(
            self._resolver, address="127.0.0.1", port=0, logger=DNSLogger(logf=lambda *_: None)
        )
        # Our own thread instead of start_thread(): a short poll interval makes stop() quick.
        self._thread = threading.Thread(
            target=self._server.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server.server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> TinyDNSServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
