"""Continuous ground truths: Gaussian, Gaussian mixture and elliptical Student t.

Every truth dict holds ``mean`` (d,), ``cov`` (d, d) (exact moments, NaN where they do not exist) and
``tail_q``: the alpha-quantile of log p_true(X) under the truth, alpha = ``metrics.tail_level``.
Elliptical sources (Gaussian, t) also hold ``shape`` (the dispersion matrix) and ``tail_r2``: the
tail region {log p_true < tail_q} equals {(x - mean)^T shape^-1 (x - mean) > tail_r2}.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special as sc

from collapse import linalg, rand
from collapse.sources.base import Source


def _gaussian_logpdf(x, mean, chol):
    """log N(x; mean, L L^T) for rows of x, nats."""
    d = mean.shape[-1]
    z = (x - mean) @ linalg.inv_lower(chol).T
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    return -0.5 * jnp.sum(z * z, axis=-1) - 0.5 * logdet - 0.5 * d * math.log(2 * math.pi)


def gaussian(dim: int = 1, mean: float = 0.0, scale: float = 1.0, tail_level: float = 0.01,
             dtype=jnp.float32) -> Source:
    """N(mean * 1, scale^2 I_d): ``scale`` is the standard deviation of every coordinate.

    Tail region: Q = ||x - mean||^2 / scale^2 > chi2_d^{-1}(1 - alpha).
    """
    mu = np.full(dim, mean, dtype=np.float64)
    cov = np.eye(dim) * scale**2
    r2 = float(2.0 * sc.gammaincinv(dim / 2, 1.0 - tail_level))  # chi2_d^-1(1 - alpha)
    tail_q = -0.5 * r2 - dim * math.log(scale) - 0.5 * dim * math.log(2 * math.pi)

    def init(key):
        return {"mean": jnp.asarray(mu, dtype), "cov": jnp.asarray(cov, dtype), "shape": jnp.asarray(cov, dtype),
                "tail_r2": jnp.asarray(r2, dtype), "tail_q": jnp.asarray(tail_q, dtype)}

    def sample(key, truth, n):
        return truth["mean"] + scale * jax.random.normal(key, (n, dim), dtype)

    def log_prob(truth, x):
        return _gaussian_logpdf(x, truth["mean"], scale * jnp.eye(dim, dtype=x.dtype))

    def sample_stats(key, truth, n):
        """Exact (n, mean, scatter) of n draws: mean ~ N(mu, S/n), scatter ~ Wishart(n-1, S), independent."""
        k1, k2 = jax.random.split(key)
        chol = scale * jnp.eye(dim, dtype=dtype)
        m = truth["mean"] + scale * jax.random.normal(k1, (dim,), dtype) / jnp.sqrt(jnp.asarray(n, dtype))
        scatter = rand.scatter_wishart(k2, n, chol, dtype)
        return {"n": jnp.asarray(n, dtype), "mean": m, "scatter": scatter}

    return Source("gaussian", "continuous", dim, init, sample, log_prob, sample_stats=sample_stats, elliptical=True,
                  gaussian=True)


def student_t(dim: int = 1, df: float = 3.0, tail_level: float = 0.01, dtype=jnp.float32) -> Source:
    """Elliptical multivariate t: x = z / sqrt(w / df), z ~ N(0, I_d), w ~ chi2_df; location 0, shape I.

    Covariance df/(df-2) I for df > 2 (NaN otherwise). (x^T x)/d ~ F(d, df), so the tail region
    {log p < q} is {||x||^2 > d * F^{-1}_{d,df}(1 - alpha)}.
    """
    cov = np.eye(dim) * (df / (df - 2.0) if df > 2 else np.nan)
    r2 = float(dim * sc.fdtri(dim, df, 1.0 - tail_level))  # d F^-1_{d,df}(1 - alpha)
    const = (math.lgamma((df + dim) / 2) - math.lgamma(df / 2) - 0.5 * dim * math.log(df * math.pi))
    tail_q = const - 0.5 * (df + dim) * math.log1p(r2 / df)

    def init(key):
        return {"mean": jnp.zeros(dim, dtype), "cov": jnp.asarray(cov, dtype), "shape": jnp.eye(dim, dtype=dtype),
                "tail_r2": jnp.asarray(r2, dtype), "tail_q": jnp.asarray(tail_q, dtype)}

    def sample(key, truth, n):
        k1, k2 = jax.random.split(key)
        z = jax.random.normal(k1, (n, dim), dtype)
        w = rand.chi2(k2, df, (n,), dtype)
        return z / jnp.sqrt(w / df)[:, None]

    def log_prob(truth, x):
        q = jnp.sum(x * x, axis=-1)
        return const - 0.5 * (df + dim) * jnp.log1p(q / df)

    return Source("student_t", "continuous", dim, init, sample, log_prob, elliptical=True)


def gmm_means(dim: int, components: int, separation: float) -> np.ndarray:
    """Component means: evenly spaced on a line (d = 1) or on a circle of radius ``separation`` in the
    first two coordinates (d >= 2); adjacent means are ``separation`` apart on the line."""
    k = np.arange(components)
    means = np.zeros((components, dim))
    if dim == 1:
        means[:, 0] = separation * (k - (components - 1) / 2)
    else:
        angle = 2 * np.pi * k / components
        means[:, 0] = separation * np.cos(angle)
        means[:, 1] = separation * np.sin(angle)
    return means


def gmm(dim: int = 2, components: int = 5, separation: float = 4.0, tail_level: float = 0.01,
        dtype=jnp.float32, tail_quantile_draws: int = 2_000_000) -> Source:
    """Equal-weight mixture of N(m_k, I_d) with means from :func:`gmm_means`.

    ``tail_q`` (the alpha-quantile of log p_true) has no closed form: it is the empirical quantile of
    ``tail_quantile_draws`` exact draws with a fixed seed (relative error of alpha ~ 1e-3).
    """
    means = gmm_means(dim, components, separation)
    mean = means.mean(0)
    cov = np.eye(dim) + (means - mean).T @ (means - mean) / components

    def np_log_prob(x):
        d2 = ((x[:, None, :] - means[None]) ** 2).sum(-1)
        return np.logaddexp.reduce(-0.5 * d2, axis=1) - math.log(components) - 0.5 * dim * math.log(2 * math.pi)

    rng = np.random.default_rng(12345)
    qs = []
    for _ in range(tail_quantile_draws // 200_000):
        idx = rng.integers(components, size=200_000)
        qs.append(np_log_prob(means[idx] + rng.standard_normal((200_000, dim))))
    tail_q = float(np.quantile(np.concatenate(qs), tail_level))

    def init(key):
        return {"mean": jnp.asarray(mean, dtype), "cov": jnp.asarray(cov, dtype),
                "means": jnp.asarray(means, dtype), "tail_q": jnp.asarray(tail_q, dtype)}

    def sample(key, truth, n):
        k1, k2 = jax.random.split(key)
        idx = jax.random.randint(k1, (n,), 0, components)
        return truth["means"][idx] + jax.random.normal(k2, (n, dim), dtype)

    def log_prob(truth, x):
        d2 = jnp.sum((x[:, None, :] - truth["means"][None]) ** 2, axis=-1)
        return (jax.scipy.special.logsumexp(-0.5 * d2, axis=1) - math.log(components)
                - 0.5 * dim * math.log(2 * math.pi))

    return Source("gmm", "continuous", dim, init, sample, log_prob)
