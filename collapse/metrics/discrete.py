"""Metrics for a categorical model p against the truth p0 (K categories)."""
from __future__ import annotations

import jax.numpy as jnp


def discrete_metrics(p, p0, tail_set) -> dict:
    """entropy = -sum p log p (nats, 0 log 0 = 0); support = #{k: p_k > 0};
    extinct_mass = sum_{k: p_k = 0} p0_k; gini_simpson = 1 - sum p^2; tv_true = 0.5 sum |p - p0|;
    kl_true = sum p0 log(p0 / p) (inf after any extinction); tail_mass = p(T) / p0(T), T the tail set."""
    alive = p > 0
    logp = jnp.log(jnp.where(alive, p, 1.0))
    kl_terms = jnp.where(p0 > 0, p0 * (jnp.log(jnp.where(p0 > 0, p0, 1.0)) - jnp.where(alive, logp, -jnp.inf)), 0.0)
    return {
        "entropy": -jnp.sum(jnp.where(alive, p * logp, 0.0)),
        "support": jnp.sum(alive).astype(p.dtype),
        "extinct_mass": jnp.sum(jnp.where(alive, 0.0, p0)),
        "gini_simpson": 1.0 - jnp.sum(p * p),
        "tv_true": 0.5 * jnp.sum(jnp.abs(p - p0)),
        "kl_true": jnp.sum(kl_terms),
        "tail_mass": jnp.sum(jnp.where(tail_set, p, 0.0)) / jnp.sum(jnp.where(tail_set, p0, 0.0)),
    }
