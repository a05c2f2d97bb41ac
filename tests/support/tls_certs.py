"""Certificates for TLS tests, made by `trustme`: a private CA and server certificates it signs."""

from __future__ import annotations

import datetime
import hashlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import trustme

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(slots=True)
class TestPKI:
    """A CA and one server certificate for `names`, with the contexts both sides need."""

    __test__ = False  # not a pytest test class despite the name

    ca: trustme.CA
    server_cert: trustme.LeafCert

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA (and nothing else)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(context)
        return context

    @property
    def der(self) -> bytes:
        """The server certificate, DER-encoded (what a fingerprint pins)."""
        pem = self.server_cert.cert_chain_pems[0].bytes().decode("ascii")
        return ssl.PEM_cert_to_DER_cert(pem)

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.der).digest()

    def write_ca_file(self, folder: Path) -> Path:
        """The CA as a PEM file, e.g. for SSL_CERT_FILE."""
        path = folder / "test-ca.pem"
        self.ca.cert_pem.write_to_path(str(path))
        return path


def make_pki(names: Sequence[str] = DEFAULT_NAMES, *, expired: bool = False) -> TestPKI:
    """With `expired=True` the server certificate's validity ended yesterday (the CA's did not)."""
    ca = trustme.CA()
    if not expired:
        return TestPKI(ca=ca, server_cert=ca.issue_cert(*names))
    now = datetime.datetime.now(datetime.UTC)
    cert = ca.issue_cert(
        *names,
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
    )
    return TestPKI(ca=ca, server_cert=cert)
