"""Categorical family over K categories: p_k = (c_k + a) / (n + K a), c the counts, a = ``smoothing``.

With a = 0 (the default) this is the empirical distribution, and a category that gets no draws is
extinct for good in a fully synthetic chain. Sampling bias: p -> p^(1/scale), renormalised.
The fit depends on the counts only; the statistic path draws them as Multinomial(n, p).
"""
from __future__ import annotations

import jax.numpy as jnp

from collapse import rand
from collapse import checks
from collapse.components import FamilySpec, SourceSpec
from collapse.run_settings import dtype_of
from collapse.families.base import Family


def categorical(categories: int, smoothing: float = 0.0, dtype=jnp.float32) -> Family:
    def init(truth):
        return {"probs": jnp.full((categories,), 1.0 / categories, dtype)}

    def stats(x, mask):
        if mask.dtype != jnp.bool_:  # float row weights (loop.real_weight): weighted counts
            return jnp.zeros((categories,), dtype).at[x].add(mask.astype(dtype))
        return jnp.zeros((categories,), jnp.int32).at[x].add(mask.astype(jnp.int32))

    def merge_stats(a, b):
        return a + b

    def fit_stats(key, counts, prev):
        counts = counts.astype(dtype)
        return {"probs": (counts + smoothing) / (jnp.sum(counts) + categories * smoothing)}

    def fit(key, x, mask, prev):
        return fit_stats(key, stats(x, mask), prev)

    def biased(params, scale):
        probs = params["probs"]
        if isinstance(scale, (int, float)) and scale == 1.0:
            return probs
        p = probs ** (1.0 / jnp.asarray(scale, probs.dtype))
        p = p / jnp.sum(p)
        return p if isinstance(scale, (int, float)) else jnp.where(scale == 1.0, probs, p)  # traced: exact at 1

    def sample(key, params, n, scale, covariates=None):
        return rand.categorical(key, biased(params, scale), n)

    def sample_stats(key, params, n, scale, covariate_stats=None):
        return rand.multinomial(key, n, biased(params, scale)).astype(jnp.int32)

    def log_prob(params, x):
        return jnp.log(params["probs"])[x]

    return Family("categorical", ("discrete",), init, fit, sample, log_prob, probs=lambda p: p["probs"],
                  stats=stats, merge_stats=merge_stats, fit_stats=fit_stats, sample_stats=sample_stats,
                  weights=True, weigh_stats=lambda counts, c: counts.astype(dtype) * c)


def check(cfg, source: SourceSpec) -> None:
    checks.number(cfg, "model.smoothing", 0.0, allowed="must be a number >= 0")


FAMILY = FamilySpec("categorical", fits=("discrete",), check=check,
                    build=lambda cfg, source: categorical(source.dim, float(cfg.model.smoothing), dtype_of(cfg)))
