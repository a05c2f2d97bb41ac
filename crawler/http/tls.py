"""TLS settings: which certificates to trust, and pinning a server's certificate.

A request's TLS setting is one value (`SSLSetting`):

* `True` or `None`: verify against the system trust store (`ssl.create_default_context()`, which
  honours `SSL_CERT_FILE` / `SSL_CERT_DIR`), with SNI and a host name check;
* `False`: encrypt but verify nothing (for hosts with broken or self-made certificates);
* an `ssl.SSLContext`: the caller's own trust and options;
* a `Fingerprint`: verify nothing but the SHA-256 digest of the server's DER certificate.

`resolve_ssl` folds the seed guide's older spellings (`verify_ssl=`, `ssl_context=`,
`fingerprint=`) into that one value; `ssl_context_for` gives the context to hand to asyncio.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import os
import ssl

from crawler.http.errors import ServerFingerprintMismatch

__all__ = ["Fingerprint", "SSLSetting", "resolve_ssl", "ssl_context_for", "trusting_context"]

_SHA256_SIZE = hashlib.sha256().digest_size
_WEAK_DIGESTS = {
    hashlib.md5().digest_size: "MD5",
    hashlib.sha1().digest_size: "SHA-1",
}
# We speak HTTP/1.1 only: say so in ALPN, so servers never pick h2 for us.
_ALPN = ["http/1.1"]


class Fingerprint:
    """A pin on the SHA-256 digest of the server's DER-encoded certificate.

    Pinning replaces chain verification: a server whose certificate has this digest is trusted
    whoever issued it, and any other certificate is refused with `ServerFingerprintMismatch`.
    """

    __slots__ = ("_fingerprint",)

    def __init__(self, fingerprint: bytes) -> None:
        if not isinstance(fingerprint, bytes | bytearray | memoryview):
            raise TypeError(f"fingerprint must be bytes, not {type(fingerprint).__name__}")
        digest = bytes(fingerprint)
        weak = _WEAK_DIGESTS.get(len(digest))
        if weak is not None:
            raise ValueError(
                f"{weak} fingerprints are insecure and not supported: "
                "use the SHA-256 digest of the DER certificate"
            )
        if len(digest) != _SHA256_SIZE:
            raise ValueError(
                f"fingerprint has {len(digest)} bytes: expected the 32-byte SHA-256 digest "
                "of the DER certificate"
            )
        self._fingerprint = digest

    @property
    def fingerprint(self) -> bytes:
        return self._fingerprint

    def check(self, transport: asyncio.BaseTransport, host: str, port: int) -> None:
        """Raise `ServerFingerprintMismatch` unless the peer's certificate has our digest.

        The caller closes the transport on failure; a transport without TLS is not checked.
        """
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        certificate = ssl_object.getpeercert(binary_form=True) or b""
        got = hashlib.sha256(certificate).digest()
        if not hmac.compare_digest(got, self._fingerprint):
            raise ServerFingerprintMismatch(self._fingerprint, got, host, port)

    # Equal pins make equal pool keys, so connections pinned the same way are shared.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Fingerprint):
            return NotImplemented
        return self._fingerprint == other._fingerprint

    def __hash__(self) -> int:
        return hash((Fingerprint, self._fingerprint))

    def __repr__(self) -> str:
        return f"<Fingerprint sha256={self._fingerprint.hex()}>"


SSLSetting = bool | ssl.SSLContext | Fingerprint | None

_EXCLUSIVE = "verify_ssl, ssl_context, fingerprint and ssl parameters are mutually exclusive"


def resolve_ssl(
    ssl: SSLSetting = True,
    *,
    verify_ssl: bool | None = None,
    ssl_context: ssl.SSLContext | None = None,
    fingerprint: bytes | None = None,
) -> SSLSetting:
    """One TLS setting from the modern `ssl=` and the guide's older spellings.

    Only one way of saying it may be used: combining them raises `ValueError`. `verify_ssl=True`
    says nothing beyond the default and combines with anything.
    """
    import ssl as ssl_module

    setting: SSLSetting = True if ssl is None else ssl
    if verify_ssl is not None and not verify_ssl:
        if setting is not True:
            raise ValueError(_EXCLUSIVE)
        setting = False
    if ssl_context is not None:
        if setting is not True:
            raise ValueError(_EXCLUSIVE)
        setting = ssl_context
    if fingerprint is not None:
        if setting is not True:
            raise ValueError(_EXCLUSIVE)
        setting = Fingerprint(fingerprint)
    if not isinstance(setting, bool | ssl_module.SSLContext | Fingerprint):
        raise TypeError(
            "ssl should be True, False, an SSLContext or a Fingerprint, "
            f"got {type(setting).__name__}: {setting!r}"
        )
    return setting


def ssl_context_for(setting: SSLSetting) -> ssl.SSLContext:
    """The context to open TLS with for this setting (shared, never modified afterwards)."""
    if isinstance(setting, ssl.SSLContext):
        return setting
    if setting is None or setting is True:
        # Keyed by the environment so a changed SSL_CERT_FILE takes effect on the next context.
        return _verified_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    if setting is False or isinstance(setting, Fingerprint):
        return _unverified_context()
    raise TypeError(f"not a TLS setting: {setting!r}")


@functools.lru_cache(maxsize=8)
def _verified_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    # create_default_context reads SSL_CERT_FILE / SSL_CERT_DIR itself; the arguments only key
    # the cache.
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.set_alpn_protocols(_ALPN)
    return context


def trusting_context(ca_file: str) -> ssl.SSLContext:
    """A verifying context (as `ssl=True` gives) that also trusts the CAs in `ca_file`."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.load_verify_locations(cafile=ca_file)
    context.set_alpn_protocols(_ALPN)
    return context


@functools.lru_cache(maxsize=1)
def _unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(_ALPN)
    return context
