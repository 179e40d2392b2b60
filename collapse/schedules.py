"""Schedules over generations for ``loop.real_fraction`` and ``sampling.scale`` (README "Contamination schedules").

A key holds either a number (the same value every generation) or a schedule, one value per generation
g = 0 .. G-1 (G = ``generations``):

- a list of G numbers, entry g for generation g;
- ``{schedule: constant, value: v}``:                      v;
- ``{schedule: linear, start: a, end: b}``:                a + (b - a) g / (G - 1);
- ``{schedule: exponential, start: a, rate: k}``:          a exp(-k g);
- ``{schedule: logistic, start: a, end: b, midpoint: m, width: s}``:
                                                           a + (b - a) / (1 + exp(-(g - m) / s)).

Generation 0 is fit on real data only, so entry 0 of a ``loop.real_fraction`` schedule is not used; entry g of a
``sampling.scale`` schedule is the scale of every draw made in generation g (the synthetic part drawn from model
g - 1, and generation g's metric draws). A schedule runs in the same compiled program as a constant: its values are
runtime inputs indexed by the traced generation.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from collapse.errors import ConfigError

KINDS = {
    "constant": ("value",),
    "linear": ("start", "end"),
    "exponential": ("start", "rate"),
    "logistic": ("start", "end", "midpoint", "width"),
}


def is_schedule(value: Any) -> bool:
    """Whether a config value is a schedule (a list or a mapping) rather than one number."""
    return isinstance(value, (list, tuple, dict, ListConfig, DictConfig))


def _number(key: str, value: Any, what: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok:
        raise ConfigError(key, value, f"{what} must be a finite number")
    return float(value)


def values(key: str, value: Any, generations: int) -> np.ndarray:
    """The (G,) float64 values of the schedule ``value`` at config key ``key`` (see the module docstring);
    anything else raises :class:`ConfigError` naming the key."""
    if isinstance(value, (ListConfig, DictConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    G = int(generations)
    g = np.arange(G, dtype=np.float64)
    if isinstance(value, (list, tuple)):
        if len(value) != G:
            raise ConfigError(key, value, f"a list schedule needs one value per generation: {G} values "
                              f"(generations={G}), got {len(value)}")
        return np.array([_number(key, v, "every entry") for v in value])
    if not isinstance(value, dict):
        raise ConfigError(key, value, "must be a number or a schedule (a list, or {schedule: ...})")
    kind = value.get("schedule")
    if kind not in KINDS:
        raise ConfigError(f"{key}.schedule", kind, "must be one of " + ", ".join(KINDS))
    need = KINDS[kind]
    extra = sorted(set(value) - set(need) - {"schedule"})
    missing = [k for k in need if k not in value]
    if missing or extra:
        raise ConfigError(key, value, f"schedule={kind} takes exactly the keys " + ", ".join(need)
                          + (f" (missing {', '.join(missing)})" if missing else "")
                          + (f" (unknown {', '.join(extra)})" if extra else ""))
    p = {k: _number(f"{key}.{k}", value[k], k) for k in need}
    if kind == "constant":
        return np.full(G, p["value"])
    if kind == "linear":
        return p["start"] + (p["end"] - p["start"]) * (g / (G - 1) if G > 1 else g)
    if kind == "exponential":
        return p["start"] * np.exp(-p["rate"] * g)
    if p["width"] <= 0:
        raise ConfigError(f"{key}.width", value["width"], "must be a number > 0")
    return p["start"] + (p["end"] - p["start"]) / (1.0 + np.exp(-(g - p["midpoint"]) / p["width"]))


def checked(key: str, value: Any, generations: int, lo: float, hi: float | None, lo_open: bool = False,
            first: int = 0) -> np.ndarray:
    """:func:`values`, refused unless every entry from ``first`` on lies in [lo, hi] ((lo, hi] with
    ``lo_open``)."""
    v = values(key, value, generations)
    used = v[first:]
    low = used <= lo if lo_open else used < lo
    bad = np.flatnonzero(low | ((used > hi) if hi is not None else False))
    if bad.size:
        i = int(bad[0]) + first
        span = f"lie in {'(' if lo_open else '['}{lo:g}, {hi:g}]" if hi is not None else f"be > {lo:g}"
        raise ConfigError(key, value, f"its values must {span}; generation {i} gets {v[i]:.6g}")
    return v
