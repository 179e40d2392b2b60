"""Generic checkers of config values. Each returns the value when it is allowed and otherwise raises
:class:`~collapse.errors.ConfigError` naming the key, the value and what is allowed.

Components (sources, families, curation rules) check the keys they own with these, in their own modules."""
from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from collapse.errors import ConfigError


def get(cfg: Any, key: str) -> Any:
    """The value at dotted ``key`` (None when absent)."""
    return OmegaConf.select(cfg, key)


def integer(cfg: Any, key: str, lo: int | None = 1, allowed: str | None = None) -> int:
    """An int (not a bool) >= ``lo``."""
    v = get(cfg, key)
    if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo):
        raise ConfigError(key, v, allowed or (f"must be an integer >= {lo}" if lo is not None else "must be an integer"))
    return v


def number(cfg: Any, key: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           hi_open: bool = False, allowed: str | None = None) -> float:
    """A finite number in the interval [lo, hi] (open ends with ``lo_open`` / ``hi_open``)."""
    v = get(cfg, key)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")
    if ok and lo is not None:
        ok = v > lo if lo_open else v >= lo
    if ok and hi is not None:
        ok = v < hi if hi_open else v <= hi
    if not ok:
        if allowed is None:
            left = "(" if lo_open else "["
            right = ")" if hi_open else "]"
            allowed = f"must be a number in {left}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{right}"
        raise ConfigError(key, v, allowed)
    return float(v)


def choice(cfg: Any, key: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``."""
    v = get(cfg, key)
    if v not in choices:
        raise ConfigError(key, v, "must be one of " + ", ".join(choices))
    return v


def boolean(cfg: Any, key: str) -> bool:
    v = get(cfg, key)
    if not isinstance(v, bool):
        raise ConfigError(key, v, "must be true or false")
    return v


def path(cfg: Any, key: str, optional: bool = False) -> None:
    """A non-empty string (a file path), or None when ``optional``."""
    v = get(cfg, key)
    if (v is None and optional) or (isinstance(v, str) and v):
        return
    raise ConfigError(key, v, "must be a file path" + (" or null" if optional else ""))
