"""Settings: precedence of flags > CRAWL_* environment > crawl.toml > defaults, and clear errors."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import pytest

from crawler.config import (
    SETTING_NAMES,
    FsyncPolicy,
    LogFormat,
    Settings,
    SettingsError,
    env_name,
    load_settings,
    setting_help,
    settings_from_mapping,
)


def write_toml(folder: Path, text: str, name: str = "crawl.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_documented_ones(tmp_path: Path) -> None:
    settings = load_settings({}, env={}, cwd=tmp_path)
    assert settings.concurrency == 64
    assert settings.per_host == 8
    assert settings.delay == 0.0
    assert settings.timeout == 60.0
    assert settings.retries == 3
    assert settings.max_attempts == 4
    assert settings.robots is True
    assert settings.warc is False
    assert settings.redis is None
    assert settings.max_depth is None
    assert settings.max_size is None
    assert settings.progress is None
    assert settings.log_format is LogFormat.TEXT
    assert settings.fsync is FsyncPolicy.ON_CLOSE
    assert settings.lease_seconds == 60.0
    assert settings.renew_seconds == 20.0
    assert settings.workers >= 1
    assert settings.user_agent.startswith("crawl/")


def test_toml_file_in_the_working_directory_is_read(tmp_path: Path) -> None:
    write_toml(tmp_path, 'concurrency = 16\nper-host = 2\nallow_domains = ["Example.COM"]\n')
    settings = load_settings({}, env={}, cwd=tmp_path)
    assert (settings.concurrency, settings.per_host) == (16, 2)
    assert settings.allow_domains == ("example.com",)


def test_environment_beats_the_file(tmp_path: Path) -> None:
    write_toml(tmp_path, "concurrency = 16\ndelay = 1.5\n")
    settings = load_settings({}, env={"CRAWL_CONCURRENCY": "32"}, cwd=tmp_path)
    assert settings.concurrency == 32
    assert settings.delay == 1.5


def test_flags_beat_the_environment_and_the_file(tmp_path: Path) -> None:
    write_toml(tmp_path, "concurrency = 16\ntimeout = 5\n")
    env = {"CRAWL_CONCURRENCY": "32", "CRAWL_TIMEOUT": "7"}
    settings = load_settings({"concurrency": 128, "timeout": None}, env=env, cwd=tmp_path)
    assert settings.concurrency == 128
    assert settings.timeout == 7.0


def test_flags_not_given_do_not_override(tmp_path: Path) -> None:
    env = {"CRAWL_INCLUDE": r"^https://a\.test/", "CRAWL_ROBOTS": "no"}
    settings = load_settings({"include": (), "robots": None}, env=env, cwd=tmp_path)
    assert settings.include == (r"^https://a\.test/",)
    assert settings.robots is False


def test_config_flag_names_the_file(tmp_path: Path) -> None:
    write_toml(tmp_path, "per_host = 3\n")
    other = write_toml(tmp_path, "per_host = 5\n", name="other.toml")
    settings = load_settings({"config": str(other)}, env={}, cwd=tmp_path)
    assert settings.per_host == 5


def test_config_environment_variable_names_the_file(tmp_path: Path) -> None:
    other = write_toml(tmp_path, "job = 'nightly'\n", name="job.toml")
    settings = load_settings({}, env={"CRAWL_CONFIG": str(other)}, cwd=tmp_path)
    assert settings.job == "nightly"


def test_a_named_config_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="config file not found"):
        load_settings({"config": str(tmp_path / "nope.toml")}, env={}, cwd=tmp_path)


def test_invalid_toml_is_a_one_line_error_naming_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "concurrency = = 3\n")
    with pytest.raises(SettingsError) as caught:
        load_settings({}, env={}, cwd=tmp_path)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_key_in_the_file_suggests_the_right_one(tmp_path: Path) -> None:
    write_toml(tmp_path, "concurency = 3\n")
    with pytest.raises(
        SettingsError, match=r"unknown setting 'concurency'.*did you mean concurrency"
    ):
        load_settings({}, env={}, cwd=tmp_path)


def test_unrelated_crawl_environment_variables_are_ignored(tmp_path: Path) -> None:
    settings = load_settings({}, env={"CRAWL_SOMETHING_ELSE": "x"}, cwd=tmp_path)
    assert settings == load_settings({}, env={}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("cli", "named"),
    [
        ({"concurrency": "many"}, "concurrency"),
        ({"concurrency": 0}, "concurrency"),
        ({"per_host": -1}, "per_host"),
        ({"delay": "-0.5"}, "delay"),
        ({"delay": "nan"}, "delay"),
        ({"timeout": 0}, "timeout"),
        ({"max_depth": "deep"}, "max_depth"),
        ({"max_size": "lots"}, "max_size"),
        ({"metrics_port": 70000}, "metrics_port"),
        ({"log_format": "yaml"}, "log_format"),
        ({"fsync": "sometimes"}, "fsync"),
        ({"redis": "http://localhost:6379"}, "redis"),
        ({"redis": "redis://"}, "redis"),
        ({"job": "has space"}, "job"),
        ({"job": "../escape"}, "job"),
        ({"include": ("ok", "(unclosed")}, "include"),
        ({"allow_domain": ("exa mple.com",)}, "allow_domains"),
        ({"user_agent": "bot\r\nX-Injected: 1"}, "user_agent"),
        ({"user_agent": "bot\x00"}, "user_agent"),
        ({"header": ("X-Ok: 1", "Bad Name: 2")}, "headers"),
        ({"header": ("X-Split: a\nb",)}, "headers"),
        ({"progress": "maybe"}, "progress"),
        ({"workers": True}, "workers"),
    ],
)
def test_bad_flag_values_name_the_setting_and_the_flag(
    tmp_path: Path, cli: dict[str, object], named: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(cli, env={}, cwd=tmp_path)
    message = str(caught.value)
    flag = "--" + next(iter(cli)).replace("_", "-")
    assert f"bad setting {named}=" in message
    assert flag in message
    assert "\n" not in message and "\r" not in message


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="per_host='x' from CRAWL_PER_HOST"):
        load_settings({}, env={"CRAWL_PER_HOST": "x"}, cwd=tmp_path)


def test_bad_file_value_names_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'retries = "three"\n')
    with pytest.raises(SettingsError, match=f"retries='three' from {path}"):
        load_settings({}, env={}, cwd=tmp_path)


def test_a_bad_value_overridden_by_a_higher_layer_is_still_reported(tmp_path: Path) -> None:
    # A broken file is broken even when a flag overrides the key: the user should fix it.
    write_toml(tmp_path, "concurrency = -3\n")
    with pytest.raises(SettingsError, match="concurrency"):
        load_settings({"concurrency": 10}, env={}, cwd=tmp_path)


def test_unknown_cli_option_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="unknown setting 'per_hots'"):
        load_settings({"per_hots": 3}, env={}, cwd=tmp_path)


def test_sizes_accept_units(tmp_path: Path) -> None:
    cases = {"5000": 5000, "10MB": 10_000_000, "2GiB": 2 * 1024**3, "1.5k": 1500, "none": None}
    for text, expected in cases.items():
        assert load_settings({"max_size": text}, env={}, cwd=tmp_path).max_size == expected


def test_booleans_accept_the_usual_words(tmp_path: Path) -> None:
    for word, expected in {"1": True, "yes": True, "ON": True, "0": False, "false": False}.items():
        settings = load_settings({}, env={"CRAWL_WARC": word}, cwd=tmp_path)
        assert settings.warc is expected
    assert load_settings({}, env={"CRAWL_PROGRESS": "auto"}, cwd=tmp_path).progress is None


def test_lists_from_environment_are_comma_separated_and_regexes_newline_separated(
    tmp_path: Path,
) -> None:
    env = {"CRAWL_ALLOW_DOMAINS": "a.test, *.B.test,", "CRAWL_EXCLUDE": "x{1,3}\n\\.pdf$"}
    settings = load_settings({}, env=env, cwd=tmp_path)
    assert settings.allow_domains == ("a.test", "b.test")
    assert settings.exclude == ("x{1,3}", r"\.pdf$")


def test_international_domains_are_idna_encoded(tmp_path: Path) -> None:
    settings = load_settings({"allow_domain": ("bücher.test",)}, env={}, cwd=tmp_path)
    assert settings.allow_domains == ("xn--bcher-kva.test",)


def test_an_allowed_domain_is_the_host_its_links_have(tmp_path: Path) -> None:
    """IDNA 2008 (UTS #46, non-transitional) as for URLs: "straße" keeps its ß (IDNA 2003,
    Python's "idna" codec, made it "strasse", and every link of the domain out of scope)."""
    from crawler.scope import Scope, ScopeRules
    from crawler.urls import canonical_parts

    settings = load_settings({"allow_domain": ("straße.test", "faß.de")}, env={}, cwd=tmp_path)
    scope = Scope(ScopeRules(allowed_domains=settings.allow_domains))
    for url in ("http://www.straße.test/page", "http://faß.de/"):
        parts = canonical_parts(url)
        assert scope.host_allowed(parts.host), (parts.host, settings.allow_domains)


def test_headers_from_a_toml_table_and_from_flags(tmp_path: Path) -> None:
    write_toml(tmp_path, '[headers]\nAccept-Language = "en"\nX-Team = "crawl"\n')
    settings = load_settings({}, env={}, cwd=tmp_path)
    assert settings.headers == (("Accept-Language", "en"), ("X-Team", "crawl"))
    settings = load_settings({"header": ("X-A: 1", "X-B:2")}, env={}, cwd=tmp_path)
    assert settings.headers == (("X-A", "1"), ("X-B", "2"))


def test_renew_interval_follows_the_lease_unless_set(tmp_path: Path) -> None:
    assert load_settings({"lease_seconds": 30}, env={}, cwd=tmp_path).renew_seconds == 10.0
    with pytest.raises(SettingsError, match=r"renew_seconds=40.*lease_seconds=30"):
        load_settings({"lease_seconds": 30, "renew_seconds": 40}, env={}, cwd=tmp_path)


def test_workers_zero_means_enqueue_only_and_is_allowed(tmp_path: Path) -> None:
    assert load_settings({"workers": "0"}, env={}, cwd=tmp_path).workers == 0


def test_out_is_a_path_with_home_expanded(tmp_path: Path) -> None:
    settings = load_settings({"out": "~/crawl-data"}, env={}, cwd=tmp_path)
    assert settings.out == Path.home() / "crawl-data"


def test_direct_construction_and_replace_are_checked_too() -> None:
    with pytest.raises(SettingsError, match="concurrency"):
        Settings(concurrency=0)
    settings = Settings(out="data")  # type: ignore[arg-type]
    assert settings.out == Path("data")
    with pytest.raises(SettingsError, match="per_host"):
        dataclasses.replace(settings, per_host="x")


def test_settings_are_immutable_and_picklable() -> None:
    settings = Settings(concurrency=10, include=("a",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.concurrency = 5  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(settings)) == settings


def test_to_dict_is_json_ready_and_round_trips() -> None:
    settings = Settings(
        out=Path("o"), headers=(("X-A", "1"),), fsync=FsyncPolicy.ALWAYS, max_size=100
    )
    as_json = json.loads(json.dumps(settings.to_dict()))
    assert as_json["fsync"] == "always"
    assert settings_from_mapping(as_json) == settings


def test_every_setting_has_help_and_an_environment_name() -> None:
    for name in SETTING_NAMES:
        assert setting_help(name)
        assert env_name(name) == "CRAWL_" + name.upper()


def test_help_names_the_default_and_the_environment_variable() -> None:
    expected = "concurrent fetches per host [default: 8; env CRAWL_PER_HOST]"
    assert setting_help("per_host") == expected
    assert setting_help("delay").endswith("[default: 0; env CRAWL_DELAY]")
    assert setting_help("warc").endswith("[default: off; env CRAWL_WARC]")
    # A default of "none" is explained by the text itself, not repeated.
    assert setting_help("max_size").endswith("[env CRAWL_MAX_SIZE]")


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("env", "env"),
        ("ENV", "env"),
        ("none", "none"),
        ("direct", "none"),
        ("", "none"),
        ("proxy.test:3128", "http://proxy.test:3128"),
        ("http://user:pass@proxy.test:3128", "http://user:pass@proxy.test:3128"),
        ("https://proxy.test", "https://proxy.test"),
        ("http://[::1]:3128/", "http://[::1]:3128/"),
    ],
)
def test_proxy_is_env_none_or_a_proxy_url(tmp_path: Path, given: str, kept: str) -> None:
    assert load_settings({"proxy": given}, env={}, cwd=tmp_path).proxy == kept


def test_the_proxy_defaults_to_the_environment_s(tmp_path: Path) -> None:
    assert load_settings({}, env={}, cwd=tmp_path).proxy == "env"


@pytest.mark.parametrize(
    "given", ["socks5://proxy.test:1080", "http://proxy.test:x", "http://a b", "http://p\r\n:1"]
)
def test_a_bad_proxy_names_the_setting(tmp_path: Path, given: str) -> None:
    with pytest.raises(SettingsError, match=r"^bad setting proxy="):
        load_settings({"proxy": given}, env={}, cwd=tmp_path)


def test_ca_file_must_hold_certificates(tmp_path: Path) -> None:
    import trustme

    good = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(good))
    assert load_settings({"ca_file": str(good)}, env={}, cwd=tmp_path).ca_file == good
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(SettingsError, match="no CA certificates could be loaded"):
        load_settings({"ca_file": str(bad)}, env={}, cwd=tmp_path)
    with pytest.raises(SettingsError, match="is not a file"):
        load_settings({}, env={"CRAWL_CA_FILE": str(tmp_path)}, cwd=tmp_path)


def test_verify_tls_is_on_unless_turned_off(tmp_path: Path) -> None:
    assert load_settings({}, env={}, cwd=tmp_path).verify_tls is True
    assert load_settings({}, env={"CRAWL_VERIFY_TLS": "false"}, cwd=tmp_path).verify_tls is False


@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("CRAWL_ALLOW_DOMAIN", "allow_domains is CRAWL_ALLOW_DOMAINS"),
        ("CRAWL_HEADER", "headers is CRAWL_HEADERS"),
        ("CRAWL_ACCEPT_TYPE", "accept_types is CRAWL_ACCEPT_TYPES"),
        ("CRAWL_NO_ROBOTS", "robots is CRAWL_ROBOTS=false"),
        ("CRAWL_INSECURE", "verify_tls is CRAWL_VERIFY_TLS=false"),
    ],
)
def test_a_variable_spelt_as_its_flag_is_refused_not_ignored(
    tmp_path: Path, variable: str, meant: str
) -> None:
    """CRAWL_ALLOW_DOMAIN (from --allow-domain) read as nothing would crawl with the default."""
    with pytest.raises(SettingsError) as caught:
        load_settings({}, env={variable: "x"}, cwd=tmp_path)
    assert str(caught.value) == f"{variable} is not read: the variable of setting {meant}"


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("insecure = true\n", "(write verify_tls = false)"),  # difflib says "include"
        ("no-robots = true\n", "(write robots = false)"),
        ("seeds = ['http://a.test/']\n", "seeds are the SEEDS file of `crawl run`"),
    ],
)
def test_a_file_key_spelt_as_a_flag_gets_the_setting_it_means(
    tmp_path: Path, text: str, hint: str
) -> None:
    write_toml(tmp_path, text)
    with pytest.raises(SettingsError, match="unknown setting") as caught:
        load_settings({}, env={}, cwd=tmp_path)
    assert hint in str(caught.value)


def test_help_of_a_list_setting_says_how_its_variable_separates_items() -> None:
    assert setting_help("allow_domains").endswith("[env CRAWL_ALLOW_DOMAINS, comma-separated]")
    assert setting_help("accept_types").endswith("[env CRAWL_ACCEPT_TYPES, comma-separated]")
    assert setting_help("include").endswith("[env CRAWL_INCLUDE, one a line]")
    assert setting_help("exclude").endswith("[env CRAWL_EXCLUDE, one a line]")
    assert setting_help("headers").endswith("[env CRAWL_HEADERS, one a line]")
    # What the help says is what is read: commas inside one regex stay in it.
    settings = load_settings({}, env={"CRAWL_INCLUDE": "a{1,2}\nb"}, cwd=Path("/nonexistent"))
    assert settings.include == ("a{1,2}", "b")


def test_a_glob_given_as_a_regex_is_told_the_regex(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"include": ("*.pdf",)}, env={}, cwd=tmp_path)
    assert "'*.pdf' is not a regular expression" in str(caught.value)
    assert "a regex, not a glob: *.pdf is \\.pdf$" in str(caught.value)
