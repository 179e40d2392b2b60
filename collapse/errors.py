"""The one error a user sees for a bad config value (the CLI prints it as one line and exits 2)."""
from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A bad config value: ``key=value: what is allowed``."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r}: {allowed}")
