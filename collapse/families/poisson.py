"""Poisson family: the rate by maximum likelihood, rate = sum(x) / n (row weights: sum w x / sum w).

The fit depends on {n, sum} only; for n draws at rate r the statistic path draws sum ~ Poisson(n r) exactly. A
fitted rate of 0 is absorbing (every later draw is 0): the chain has forgotten the event (Suresh et al. 2024).
Params: ``rate`` () (counting families expose their rate under this name; the ``counts`` metrics read it).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from collapse import checks
from collapse.components import FamilySpec, SourceSpec
from collapse.families.base import Family
from collapse.run_settings import dtype_of


def poisson(dtype=jnp.float32) -> Family:
    def init(truth):
        return {"rate": jnp.ones((), dtype)}

    def stats(x, mask):
        w = mask.astype(dtype)
        return {"n": jnp.sum(w), "sum": jnp.sum(w * x.astype(dtype))}

    def merge_stats(a, b):
        return {"n": a["n"] + b["n"], "sum": a["sum"] + b["sum"]}

    def fit_stats(key, s, prev):
        return {"rate": s["sum"] / jnp.maximum(s["n"], 1e-30)}

    def fit(key, x, mask, prev):
        return fit_stats(key, stats(x, mask), prev)

    def sample(key, params, n, scale, covariates=None):
        return jax.random.poisson(key, params["rate"], (n,)).astype(jnp.int32)

    def sample_stats(key, params, n, scale, covariate_stats=None):
        nf = jnp.asarray(n, dtype)
        return {"n": nf, "sum": jax.random.poisson(key, nf * params["rate"]).astype(dtype)}

    def log_prob(params, x):
        lam = params["rate"]
        xf = x.astype(dtype)
        return jnp.where(lam > 0, xf * jnp.log(jnp.where(lam > 0, lam, 1.0)) - lam,
                         jnp.where(xf == 0, 0.0, -jnp.inf)) - gammaln(xf + 1.0)

    return Family("poisson", ("counts",), init, fit, sample, log_prob, stats=stats, merge_stats=merge_stats,
                  fit_stats=fit_stats, sample_stats=sample_stats, weights=True,
                  weigh_stats=lambda s, c: {"n": s["n"] * c, "sum": s["sum"] * c})


def check(cfg, source: SourceSpec) -> None:
    """No keys of its own."""


FAMILY = FamilySpec("poisson", fits=("counts",), check=check, build=lambda cfg, source: poisson(dtype_of(cfg)))
