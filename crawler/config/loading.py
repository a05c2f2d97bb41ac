"""Where settings come from: flags > `CRAWL_*` environment > TOML file > defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crawler.config.settings import (
    SETTING_NAMES,
    Settings,
    SettingsError,
    env_name,
    is_setting,
    parse_setting,
)

CONFIG_FILE_NAME = "crawl.toml"
_CONFIG_ENV = "CRAWL_CONFIG"
# What click names some options' parameters (`--allow-domain` -> allow_domain).
_CLI_ALIASES = {"allow_domain": "allow_domains", "header": "headers"}


# Keys spelt as a flag whose setting is not its name, where the closest setting name would
# mislead ("insecure" is closest to "include"), and the seeds, which are no setting.
_KEY_HINTS = {
    "insecure": "write verify_tls = false",
    "no_robots": "write robots = false",
    "nofollow": "write honor_nofollow = true",
    "follow_all": "write honor_nofollow = false",
    "seeds": "seeds are the SEEDS file of `crawl run`, or the URLs of `crawl mirror`",
    "recrawl": "--recrawl is a flag of `crawl run` and `crawl mirror` only",
}


def _unknown(name: str, source: str) -> SettingsError:
    import difflib  # only for a misspelt setting

    known = _KEY_HINTS.get(name.replace("-", "_"))
    close = difflib.get_close_matches(name.replace("-", "_"), SETTING_NAMES, n=1)
    hint = f" ({known})" if known else f" (did you mean {close[0]}?)" if close else ""
    return SettingsError(f"unknown setting {name!r} in {source}{hint}")


def _from_file(path: Path) -> dict[str, Any]:
    import tomllib  # only with a crawl.toml: a worker gets its settings as JSON

    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        raise SettingsError(f"config file not found: {path}") from None
    except OSError as error:
        raise SettingsError(f"cannot read config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"config file {path} is not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"config file {path} is not valid TOML: not UTF-8 text") from None
    values = {}
    for key, value in document.items():
        name = key.replace("-", "_")
        if not is_setting(name):
            raise _unknown(key, str(path))
        values[name] = parse_setting(name, value, f"{path}")
    return values


# Variables a user derives from a flag whose setting is named otherwise (variable -> setting,
# and what to write instead). Read as nothing, they would leave the setting at its default
# without a word: CRAWL_ACCEPT_TYPE=application/pdf, and every body of the crawl is stored.
_FLAG_SPELT_VARIABLES = {
    "CRAWL_ALLOW_DOMAIN": ("allow_domains", "CRAWL_ALLOW_DOMAINS"),
    "CRAWL_HEADER": ("headers", "CRAWL_HEADERS"),
    "CRAWL_ACCEPT_TYPE": ("accept_types", "CRAWL_ACCEPT_TYPES"),
    "CRAWL_NO_ROBOTS": ("robots", "CRAWL_ROBOTS=false"),
    "CRAWL_INSECURE": ("verify_tls", "CRAWL_VERIFY_TLS=false"),
    "CRAWL_NOFOLLOW": ("honor_nofollow", "CRAWL_HONOR_NOFOLLOW=true"),
}


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    for variable, (setting, meant) in _FLAG_SPELT_VARIABLES.items():
        if variable in env:
            raise SettingsError(
                f"{variable} is not read: the variable of setting {setting} is {meant}"
            )
    values = {}
    for name in SETTING_NAMES:
        variable = env_name(name)
        if variable in env:
            values[name] = parse_setting(name, env[variable], variable)
    return values


def _from_cli(cli: Mapping[str, Any]) -> dict[str, Any]:
    values = {}
    for key, value in cli.items():
        name = _CLI_ALIASES.get(key, key)
        if name == "config":
            continue
        if not is_setting(name):
            raise _unknown(key, "command-line options")
        # click passes None for an option not given, and () for a repeatable one not given.
        if value is None or (isinstance(value, tuple | list) and not value):
            continue
        flag = _FLAGS.get(key, "--" + key.replace("_", "-"))
        values[name] = parse_setting(name, value, flag)
    return values


# Options whose flag is not their key spelled with dashes (click's key -> the flag typed).
_FLAGS = {"accept_types": "--accept-type", "verify_tls": "--insecure"}


def _config_path(cli: Mapping[str, Any], env: Mapping[str, str], cwd: Path) -> Path | None:
    named = cli.get("config") or env.get(_CONFIG_ENV)
    if named:
        return Path(named).expanduser()
    implicit = cwd / CONFIG_FILE_NAME
    return implicit if implicit.is_file() else None


def load_settings(
    cli: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> Settings:
    """Settings from flags > `CRAWL_*` environment > TOML file > defaults.

    `cli` maps option names (click's parameter names: `per_host`, `allow_domain`, `config`) to
    values; None and empty tuples mean "not given". `env` defaults to `os.environ`, `cwd` (where
    an implicit `crawl.toml` is looked for) to the working directory. Raises `SettingsError`.
    """
    cli = cli or {}
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else Path(cwd)
    values: dict[str, Any] = {}
    path = _config_path(cli, env, cwd)
    if path is not None:
        values.update(_from_file(path))
    values.update(_from_env(env))
    values.update(_from_cli(cli))
    return Settings(**values)


def settings_from_mapping(values: Mapping[str, Any], *, source: str = "settings") -> Settings:
    """Settings from a mapping of setting names to raw values, such as `Settings.to_dict()` output
    stored with a job; missing names take their defaults. Raises `SettingsError`."""
    parsed: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if not is_setting(name):
            raise _unknown(key, source)
        parsed[name] = parse_setting(name, value, source)
    return Settings(**parsed)
