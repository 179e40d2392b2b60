"""A Laplace model family as a collapse plug-in: independent Laplace(loc_j, b_j) coordinates.

fit:      loc = the masked coordinate-wise median, b = the mean absolute deviation from it (the MLE);
sample:   loc + b sqrt(scale) L with L standard Laplace (variance 2 b^2 scale: ``sampling.scale`` multiplies
          the covariance, as for every continuous family);
log_prob: sum_j -log(2 b_j) - |x_j - loc_j| / b_j, in nats.
No mixture components: collapse measures its moments and tail mass by Monte Carlo from model draws.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from collapse import checks
from collapse.components import FamilySpec
from collapse.errors import ConfigError
from collapse.families.base import Family


def masked_median(x: jax.Array, mask: jax.Array) -> jax.Array:
    """(d,) median of the rows of x (n, d) where mask (n,) holds: padding rows sort last."""
    n = jnp.sum(mask)
    s = jnp.sort(jnp.where(mask[:, None], x, jnp.inf), axis=0)
    lo, hi = s[(n - 1) // 2], s[n // 2]
    return (lo + hi) / 2


def laplace(dim: int, min_scale: float) -> Family:
    def init(truth):
        return {"loc": jnp.zeros(dim), "b": jnp.ones(dim)}

    def fit(key, x, mask, prev):
        loc = masked_median(x, mask)
        dev = jnp.where(mask[:, None], jnp.abs(x - loc), 0.0)
        b = jnp.sum(dev, axis=0) / jnp.sum(mask)
        return {"loc": loc, "b": jnp.maximum(b, min_scale)}

    def sample(key, params, n, scale, covariates):
        z = jax.random.laplace(key, (n, dim), params["loc"].dtype)
        return params["loc"] + params["b"] * jnp.sqrt(scale) * z

    def log_prob(params, x):
        b = params["b"]
        return jnp.sum(-jnp.log(2 * b) - jnp.abs(x - params["loc"]) / b, axis=-1)

    return Family("laplace", ("continuous",), init, fit, sample, log_prob)


def check(cfg, source) -> None:
    """model.min_scale > 0; a median needs at least one point per batch."""
    checks.number(cfg, "model.min_scale", 0.0, lo_open=True, allowed="must be a number > 0")
    if cfg.loop.samples < 1:
        raise ConfigError("loop.samples", cfg.loop.samples, "must be >= 1 for a Laplace fit")


FAMILY = FamilySpec("laplace", fits=("continuous",), check=check,
                    build=lambda cfg, source: laplace(source.dim, float(cfg.model.min_scale)))
