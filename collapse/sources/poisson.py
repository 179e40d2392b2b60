"""``source=poisson``: counts X ~ Poisson(rate), the simplest counting chain (Suresh et al. 2024).

A batch is an ``(n,)`` int32 array of counts. Truth: ``rate`` (). The sufficient statistics of n draws are
{n, sum}, with sum ~ Poisson(n rate), drawn exactly on the statistic path.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from collapse import checks
from collapse.components import SourceSpec
from collapse.errors import ConfigError
from collapse.run_settings import dtype_of
from collapse.sources.base import Source


def poisson_source(rate: float, dtype=jnp.float32) -> Source:
    def init(key):
        return {"rate": jnp.asarray(rate, dtype)}

    def sample(key, truth, n):
        return jax.random.poisson(key, truth["rate"], (n,)).astype(jnp.int32)

    def log_prob(truth, x):
        lam = truth["rate"]
        xf = x.astype(lam.dtype)
        return xf * jnp.log(lam) - lam - gammaln(xf + 1.0)

    def sample_stats(key, truth, n):
        """{n, sum} of n draws: sum ~ Poisson(n rate)."""
        nf = jnp.asarray(n, dtype)
        return {"n": nf, "sum": jax.random.poisson(key, nf * truth["rate"]).astype(dtype)}

    return Source("poisson", "counts", 1, init, sample, log_prob, sample_stats=sample_stats)


def check(cfg) -> None:
    """source.rate > 0; sampling.scale must be 1 (a Poisson model has no sampling temperature here)."""
    checks.number(cfg, "source.rate", 0.0, lo_open=True, allowed="must be a number > 0 (the Poisson rate)")
    scale = checks.get(cfg, "sampling.scale")
    if scale != 1:
        raise ConfigError("sampling.scale", scale, "must be 1 for source=poisson")


SOURCE = SourceSpec("poisson", "counts", check, lambda cfg: poisson_source(float(cfg.source.rate), dtype_of(cfg)))
