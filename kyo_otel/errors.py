"""The one exception kyo_otel raises for bad configuration."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is not one kyo_otel accepts.

    Raised by ``configure()`` before anything is installed, so a bad value never leaves the
    process half configured. The message names the setting, where the value came from, the
    value itself and what is allowed.
    """

    def __init__(self, setting: str, value: object, allowed: str, source: str = "argument") -> None:
        self.setting = setting
        self.value = value
        self.allowed = allowed
        self.source = source
        super().__init__(f"invalid {setting} {value!r} (from {source}): expected {allowed}")
