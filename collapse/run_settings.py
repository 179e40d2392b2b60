"""Run-wide settings that components read when they are built: dtype, text batch units, prompt, decoding."""
from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from collapse.engine import n_real_points


def dtype_of(cfg: Any) -> Any:
    """jnp.float64 for ``precision=float64``, else jnp.float32."""
    return jnp.float64 if cfg.precision == "float64" else jnp.float32


def text_units(cfg: Any) -> tuple[int, int]:
    """(segments per batch, real segments per batch) of a text source: floor(loop.samples / segment), and
    n_real = floor(real_fraction * segments + 0.5)."""
    units = cfg.loop.samples // cfg.source.segment
    return units, n_real_points(first_fraction(cfg), units)


def first_fraction(cfg: Any) -> float:
    """``loop.real_fraction``, or a schedule's value at generation 1 (the first batch with a synthetic part)."""
    from collapse import schedules

    frac = cfg.loop.real_fraction
    if schedules.is_schedule(frac):
        v = schedules.values("loop.real_fraction", frac, cfg.generations)
        return float(v[1] if len(v) > 1 else v[0])
    return frac


def prompt_length(cfg: Any) -> int:
    """Prompt tokens per synthetic text segment (0 without a prompt)."""
    return int(cfg.sampling.prompt_length) if cfg.sampling.get("prompt", "none") == "real_prefix" else 0


def decoding_of(cfg: Any):
    """The :class:`~collapse.text.decoding.Decoding` of ``cfg.sampling``."""
    from collapse.text.decoding import Decoding

    sm = cfg.sampling
    return Decoding(temperature=float(sm.temperature), top_k=int(sm.top_k), top_p=float(sm.top_p),
                    repetition_penalty=float(sm.repetition_penalty))
