"""BasicAuth: encoding, parsing, URL credentials and the errors a caller can make."""

from __future__ import annotations

import base64

import pytest
from yarl import URL

from crawler.http.auth import BasicAuth


def test_encode_is_basic_base64_of_login_colon_password() -> None:
    assert BasicAuth("user", "pass").encode() == "Basic dXNlcjpwYXNz"


def test_password_defaults_to_empty_and_encoding_to_latin1() -> None:
    auth = BasicAuth("user")
    assert auth.password == ""
    assert auth.encoding == "latin1"
    assert auth.encode() == "Basic " + base64.b64encode(b"user:").decode()


def test_encoding_is_used_for_non_ascii_credentials() -> None:
    auth = BasicAuth("usér", "pässword", encoding="utf-8")
    expected = base64.b64encode("usér:pässword".encode()).decode()
    assert auth.encode() == "Basic " + expected


def test_latin1_cannot_encode_characters_outside_it() -> None:
    with pytest.raises(UnicodeEncodeError):
        BasicAuth("пользователь", "x").encode()


def test_is_a_tuple_compared_by_value() -> None:
    assert BasicAuth("a", "b") == ("a", "b", "latin1")
    assert BasicAuth("a", "b") == BasicAuth("a", "b")
    assert hash(BasicAuth("a", "b")) == hash(BasicAuth("a", "b"))
    login, password, encoding = BasicAuth("a", "b")
    assert (login, password, encoding) == ("a", "b", "latin1")


def test_none_login_is_rejected() -> None:
    with pytest.raises(ValueError, match="login"):
        BasicAuth(None)  # type: ignore[arg-type]


def test_none_password_is_rejected() -> None:
    with pytest.raises(ValueError, match="password"):
        BasicAuth("user", None)  # type: ignore[arg-type]


def test_colon_in_login_is_rejected() -> None:
    with pytest.raises(ValueError, match=":"):
        BasicAuth("us:er", "pass")


def test_colon_in_password_is_allowed_and_round_trips() -> None:
    auth = BasicAuth("user", "pa:ss:word")
    assert BasicAuth.decode(auth.encode()) == auth


def test_decode_round_trips_encode() -> None:
    auth = BasicAuth("user", "secret")
    assert BasicAuth.decode(auth.encode()) == auth


def test_decode_accepts_lowercase_scheme_and_extra_spaces() -> None:
    assert BasicAuth.decode("basic   dXNlcjpwYXNz  ") == BasicAuth("user", "pass")


def test_decode_uses_the_given_encoding() -> None:
    header = "Basic " + base64.b64encode("usér:pä".encode()).decode()
    assert BasicAuth.decode(header, encoding="utf-8") == BasicAuth("usér", "pä", "utf-8")


def test_decode_rejects_other_schemes() -> None:
    with pytest.raises(ValueError, match="Unknown authorization method Bearer"):
        BasicAuth.decode("Bearer abc")


def test_decode_rejects_a_header_without_credentials() -> None:
    with pytest.raises(ValueError, match="Could not parse"):
        BasicAuth.decode("Basic")


def test_decode_rejects_invalid_base64() -> None:
    with pytest.raises(ValueError, match="base64"):
        BasicAuth.decode("Basic not*base64")


def test_decode_rejects_credentials_without_colon() -> None:
    with pytest.raises(ValueError, match="Invalid credentials"):
        BasicAuth.decode("Basic " + base64.b64encode(b"nocolon").decode())


def test_decode_rejects_bytes_invalid_in_the_encoding() -> None:
    with pytest.raises(ValueError, match="utf-8"):
        BasicAuth.decode("Basic " + base64.b64encode(b"\xff:\xfe").decode(), encoding="utf-8")


def test_from_url_takes_user_and_password() -> None:
    assert BasicAuth.from_url(URL("http://user:pass@example.com/")) == BasicAuth("user", "pass")


def test_from_url_percent_decodes_credentials() -> None:
    auth = BasicAuth.from_url(URL("http://us%40er:p%3As%20s@example.com/"))
    assert auth == BasicAuth("us@er", "p:s s")


def test_from_url_with_only_a_user_gives_empty_password() -> None:
    assert BasicAuth.from_url(URL("http://user@example.com/")) == BasicAuth("user", "")


def test_from_url_without_credentials_is_none() -> None:
    assert BasicAuth.from_url(URL("http://example.com/")) is None


def test_from_url_passes_the_encoding() -> None:
    auth = BasicAuth.from_url(URL("http://u:p@example.com/"), encoding="utf-8")
    assert auth is not None and auth.encoding == "utf-8"


def test_from_url_requires_a_yarl_url() -> None:
    with pytest.raises(TypeError, match=r"yarl\.URL"):
        BasicAuth.from_url("http://user:pass@example.com/")  # type: ignore[arg-type]


def test_header_value_never_contains_cr_or_lf() -> None:
    value = BasicAuth("a\r\nInjected x", "b\r\n").encode()
    assert "\r" not in value and "\n" not in value
    assert BasicAuth.decode(value) == BasicAuth("a\r\nInjected x", "b\r\n")
