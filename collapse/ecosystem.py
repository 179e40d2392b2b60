"""Model ecosystems (``loop.models`` = M > 1): M model lineages in one replicate, sharing a pool of synthetic data.

Every lineage is today's chain (its own fresh real data, its own fit, regime and metrics) except for its synthetic
part: lineage i's n_syn synthetic points are independent draws from the mixture sum_j pi_ij p_j of all lineages'
previous models (``loop.mixing``: the M x M row-stochastic matrix pi). The replicate's truth and held-out data
are shared; lineage l's generation keys come from ``fold_in(k_gen, l)``. M = 1 never builds an ecosystem, so a
one-model run is today's loop, number for number.

Columns: every metric as the mean over lineages (the typical model), ``lineage<i>/<metric>`` per lineage, and
the pooled population (all M models with weight 1/M each):
  continuous (family.components): pool_var_ratio = tr S_pool / tr S0, S_pool the mixture's covariance
      (1/M) sum_i (S_i + mu_i mu_i^T) - mu_bar mu_bar^T; spread = (1/M) sum_i ||mu_i - mu_bar||^2 / tr S0
      (between-model diversity; pool_var_ratio = mean var_ratio + spread);
  discrete (family.probs): p_pool = (1/M) sum_i p_i, and pool_support = #{k: p_pool_k > 0},
      pool_gini_simpson = 1 - sum p_pool^2, spread_tv = (1/M) sum_i TV(p_i, p_pool).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from collapse.engine import Chain, _maybe

tree_map = jax.tree_util.tree_map

CONTINUOUS_POOLED = ("pool_var_ratio", "spread")
DISCRETE_POOLED = ("pool_support", "pool_gini_simpson", "spread_tv")


def mixing_matrix(models: int, mixing) -> np.ndarray:
    """The M x M mixing matrix of ``loop.mixing`` (already validated): None = uniform (every entry 1/M); a number
    s = the self share (pi_ii = s, pi_ij = (1 - s)/(M - 1)); a list of M weights = the same row for every lineage;
    a list of M rows = the matrix itself."""
    m = int(models)
    if mixing is None:
        return np.full((m, m), 1.0 / m)
    if np.ndim(mixing) == 0:
        s = float(mixing)
        off = (1.0 - s) / (m - 1) if m > 1 else 0.0
        return np.where(np.eye(m, dtype=bool), s, off)
    arr = np.asarray(mixing, dtype=float)
    return np.tile(arr, (m, 1)) if arr.ndim == 1 else arr


def pooled_names(source, family) -> tuple[str, ...]:
    """The pooled-population columns this source and family give."""
    if "probs" in family.capabilities:
        return DISCRETE_POOLED
    if source.kind == "continuous" and "components" in family.capabilities:
        return CONTINUOUS_POOLED
    return ()


def lineage_names(names, models: int) -> tuple[str, ...]:
    """``lineage<i>/<name>`` for every lineage and metric name (metric-major within a lineage)."""
    return tuple(f"lineage{i}/{n}" for i in range(models) for n in names)


def pooled_continuous(family, stacked, cov0) -> dict:
    """pool_var_ratio and spread of M stacked continuous models (see the module docstring)."""
    w, mu, cov = jax.vmap(family.components)(stacked)  # (M, K), (M, K, d), (M, K, d, d)
    w = w / jnp.sum(w, axis=1, keepdims=True)
    means = jnp.einsum("mk,mkd->md", w, mu)  # each model's mean
    second = jnp.einsum("mk,mkde->de", w, cov + mu[..., :, None] * mu[..., None, :]) / w.shape[0]
    bar = jnp.mean(means, axis=0)
    tr0 = jnp.trace(cov0)
    return {"pool_var_ratio": (jnp.trace(second) - jnp.sum(bar * bar)) / tr0,
            "spread": jnp.mean(jnp.sum((means - bar) ** 2, axis=1)) / tr0}


def pooled_discrete(family, stacked) -> dict:
    """pool_support, pool_gini_simpson and spread_tv of M stacked categorical models."""
    p = jax.vmap(family.probs)(stacked)  # (M, K)
    bar = jnp.mean(p, axis=0)
    return {"pool_support": jnp.sum(bar > 0).astype(p.dtype), "pool_gini_simpson": 1.0 - jnp.sum(bar * bar),
            "spread_tv": jnp.mean(0.5 * jnp.sum(jnp.abs(p - bar), axis=1))}


class Ecosystem:
    """M lineages of one :class:`Chain` per replicate (``vmap`` over lineages inside a replicate), with the
    chain's interface: ``first(seed, replicate, data, point)`` and ``advance(state, gens, data)``."""

    def __init__(self, chain: Chain, mixing: np.ndarray):
        self.chain, self.spec = chain, chain.spec
        self.models = int(mixing.shape[0])
        self.mixing = jnp.asarray(mixing, chain.spec.dtype)
        self.pooled = pooled_names(chain.source, chain.family)

    def first(self, seed, replicate, data, point=None):
        states, outs = jax.vmap(lambda l: self.chain.first(seed, replicate, data, point, lineage=l))(
            jnp.arange(self.models))
        return states, self._columns(outs, states, 0, data)

    def step(self, states, g, data):
        pool = states["params"]
        new, outs = jax.vmap(lambda st, probs: self.chain.step(st, g, data, pool=(pool, probs)))(states, self.mixing)
        return new, self._columns(outs, new, g, data)

    def advance(self, state, gens, data):
        return jax.lax.scan(lambda st, g: self.step(st, g, data), state, gens)

    def _columns(self, outs: dict, states: dict, g, data) -> dict:
        """Lineage means, per-lineage columns, artifacts of lineage 0, and the pooled population's metrics."""
        cols = {}
        for name, v in outs.items():
            if name.startswith("_"):
                cols[name] = v[0]
                continue
            cols[name] = jnp.mean(v, axis=0)
            for i in range(self.models):
                cols[f"lineage{i}/{name}"] = v[i]
        if self.pooled:
            spec = self.spec
            keep = (g % spec.every == 0) | (g == spec.generations - 1)
            truth = {**tree_map(lambda x: x[0], states["truth"]), **data}
            fam, stacked = self.chain.family, states["params"]
            if self.pooled == CONTINUOUS_POOLED:
                cols.update(_maybe(keep, lambda: pooled_continuous(fam, stacked, truth["cov"])))
            else:
                cols.update(_maybe(keep, lambda: pooled_discrete(fam, stacked)))
        return cols
