"""TLS settings: Fingerprint, the guide's old spellings, and the contexts handed to asyncio."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crawler.http.errors import FingerprintMismatch, ServerFingerprintMismatch
from crawler.http.tls import Fingerprint, resolve_ssl, ssl_context_for
from tests.support.client_protocol import CollectingProtocol
from tests.support.origin_server import OriginServer
from tests.support.tls_certs import TestPKI, make_pki


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return make_pki()


@pytest.fixture
async def tls_origin(pki: TestPKI) -> AsyncIterator[OriginServer]:
    async with OriginServer(ssl_context=pki.server_context()) as origin:
        yield origin


# --- Fingerprint -----------------------------------------------------------------------------


def test_fingerprint_takes_a_sha256_digest() -> None:
    digest = hashlib.sha256(b"certificate").digest()
    assert Fingerprint(digest).fingerprint == digest


@pytest.mark.parametrize("algorithm", ["md5", "sha1"])
def test_weak_digests_are_refused_naming_sha256(algorithm: str) -> None:
    digest = hashlib.new(algorithm, b"certificate").digest()
    with pytest.raises(ValueError, match="SHA-256"):
        Fingerprint(digest)


def test_digest_of_another_length_is_refused() -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        Fingerprint(b"\x00" * 48)


def test_fingerprint_must_be_bytes() -> None:
    with pytest.raises(TypeError):
        Fingerprint("ab" * 32)  # type: ignore[arg-type]


def test_equal_pins_are_equal_and_hash_alike() -> None:
    digest = hashlib.sha256(b"a").digest()
    assert Fingerprint(digest) == Fingerprint(digest)
    assert hash(Fingerprint(digest)) == hash(Fingerprint(digest))
    assert Fingerprint(digest) != Fingerprint(hashlib.sha256(b"b").digest())
    assert digest.hex() in repr(Fingerprint(digest))


def test_guide_name_fingerprint_mismatch_is_the_same_class() -> None:
    assert FingerprintMismatch is ServerFingerprintMismatch


async def _tls_transport(origin: OriginServer) -> tuple[asyncio.Transport, CollectingProtocol]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(
        CollectingProtocol,
        "127.0.0.1",
        origin.port,
        ssl=ssl_context_for(False),
        server_hostname="localhost",
    )
    return transport, protocol


async def test_check_accepts_the_pinned_certificate(pki: TestPKI, tls_origin: OriginServer) -> None:
    transport, _ = await _tls_transport(tls_origin)
    try:
        Fingerprint(pki.sha256).check(transport, "localhost", tls_origin.port)
    finally:
        transport.close()


async def test_check_reports_expected_and_got_on_mismatch(
    pki: TestPKI, tls_origin: OriginServer
) -> None:
    pinned = hashlib.sha256(b"some other certificate").digest()
    transport, _ = await _tls_transport(tls_origin)
    try:
        with pytest.raises(ServerFingerprintMismatch) as caught:
            Fingerprint(pinned).check(transport, "localhost", tls_origin.port)
    finally:
        transport.close()
    error = caught.value
    assert error.expected == pinned
    assert error.got == pki.sha256
    assert (error.host, error.port) == ("localhost", tls_origin.port)


# --- resolve_ssl: one setting from the modern and the old spellings --------------------------


def test_default_setting_verifies() -> None:
    assert resolve_ssl() is True
    assert resolve_ssl(None) is True


def test_verify_ssl_false_means_no_verification() -> None:
    assert resolve_ssl(verify_ssl=False) is False


def test_verify_ssl_true_says_nothing_new() -> None:
    context = ssl.create_default_context()
    assert resolve_ssl(context, verify_ssl=True) is context


def test_ssl_context_spelling() -> None:
    context = ssl.create_default_context()
    assert resolve_ssl(ssl_context=context) is context


def test_fingerprint_spelling_becomes_a_fingerprint() -> None:
    digest = hashlib.sha256(b"x").digest()
    assert resolve_ssl(fingerprint=digest) == Fingerprint(digest)


def test_fingerprint_spelling_refuses_md5() -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        resolve_ssl(fingerprint=hashlib.md5(b"x").digest())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"verify_ssl": False, "ssl_context": ssl.create_default_context()},
        {"verify_ssl": False, "fingerprint": b"\x01" * 32},
        {"ssl_context": ssl.create_default_context(), "fingerprint": b"\x01" * 32},
        {"ssl": False, "ssl_context": ssl.create_default_context()},
        {"ssl": ssl.create_default_context(), "verify_ssl": False},
        {"ssl": Fingerprint(b"\x01" * 32), "fingerprint": b"\x02" * 32},
    ],
)
def test_combined_spellings_raise_value_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="mutually exclusive"):
        resolve_ssl(**kwargs)  # type: ignore[arg-type]


def test_unknown_setting_type_raises_type_error() -> None:
    with pytest.raises(TypeError):
        resolve_ssl("yes")  # type: ignore[arg-type]


# --- contexts ---------------------------------------------------------------------------------


def test_verified_context_checks_chain_and_host_name() -> None:
    context = ssl_context_for(True)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert ssl_context_for(None) is context  # built once, shared


def test_unverified_context_for_false_and_pins() -> None:
    context = ssl_context_for(False)
    assert context.verify_mode == ssl.CERT_NONE
    assert context.check_hostname is False
    assert ssl_context_for(Fingerprint(b"\x01" * 32)) is context


def test_a_callers_context_is_used_as_is() -> None:
    context = ssl.create_default_context()
    assert ssl_context_for(context) is context


def test_changed_ssl_cert_file_gives_a_new_context(
    pki: TestPKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = ssl_context_for(True)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.write_ca_file(tmp_path)))
    after = ssl_context_for(True)
    assert after is not before
    organizations = [
        value
        for cert in after.get_ca_certs()
        for rdn in cert["subject"]
        for key, value in rdn
        if key == "organizationName"
    ]
    assert any("trustme" in name for name in organizations)
