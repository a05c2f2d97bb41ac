"""One typed settings object for `crawl run`, `crawl worker` and `crawl mirror`.

Values come from four layers, highest first: command-line flags, environment variables
`CRAWL_<NAME>` (e.g. `CRAWL_PER_HOST=4`), a TOML file, and the defaults below. The TOML file is the
one named by `--config` (or `CRAWL_CONFIG`), else `crawl.toml` in the working directory when there
is one. Its keys are the setting names (`per_host` or `per-host`), with `headers` as a table.

A bad value anywhere raises `SettingsError`, a `ValueError` whose message is one line naming the
setting, the offending value and where it came from, ready for the CLI to print.
"""

from crawler.config.loading import (
    CONFIG_FILE_NAME,
    load_settings,
    settings_from_mapping,
)
from crawler.config.settings import (
    ENV_PREFIX,
    SETTING_NAMES,
    FsyncPolicy,
    LogFormat,
    Settings,
    SettingsError,
    default_user_agent,
    env_name,
    setting_help,
)

__all__ = [
    "CONFIG_FILE_NAME",
    "ENV_PREFIX",
    "SETTING_NAMES",
    "FsyncPolicy",
    "LogFormat",
    "Settings",
    "SettingsError",
    "default_user_agent",
    "env_name",
    "load_settings",
    "setting_help",
    "settings_from_mapping",
]
