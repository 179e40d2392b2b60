"""Linear regression family: w = (X^T X + ridge I)^-1 X^T y, residual variance RSS / (n - d).

Synthetic labels for inputs X are y = X w_prev + N(0, scale * v) with v the fitted residual variance
(``label_noise=fitted``) or the source's noise variance (``label_noise=source``, as in Gerstgrasser et
al. 2024). The fit depends on (n, X^T X, X^T y, y^T y) only; the statistic path draws them exactly.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from collapse import linalg, rand
from collapse import checks
from collapse.components import FamilySpec, SourceSpec
from collapse.families.base import Family


def label_stats(key, gram, w, noise_var, n: int) -> dict:
    """Exact statistics of labels y = X w + e, e ~ N(0, v I_n), given only G = X^T X (n >= d rows).

    With G = L L^T and z ~ N(0, I_d): X^T e = sqrt(v) L z, e^T e = v (z^T z + chi2_{n-d}) (the part of e
    orthogonal to the columns of X is independent). Then X^T y = G w + X^T e and
    y^T y = w^T G w + 2 w^T X^T e + e^T e.
    """
    d = w.shape[0]
    dt = gram.dtype
    k1, k2 = jax.random.split(key)
    z = jax.random.normal(k1, (d,), dt)
    xte = jnp.sqrt(noise_var) * linalg.cholesky(gram) @ z
    rest = rand.chi2(k2, n - d, (), dt) if n > d else jnp.zeros((), dt)
    ete = noise_var * (z @ z + rest)
    gw = gram @ w
    return {"n": jnp.asarray(n, dt), "xtx": gram, "xty": gw + xte, "yty": w @ gw + 2.0 * w @ xte + ete}


def linear_regression(dim: int, ridge: float = 0.0, label_noise: str = "fitted",
                      source_noise_var: float = 1.0) -> Family:
    def init(truth):
        dt = truth["w"].dtype
        return {"w": jnp.zeros(dim, dt), "noise_var": jnp.asarray(source_noise_var, dt)}

    def stats(batch, mask):
        x, y = batch["x"], batch["y"]
        m = mask.astype(x.dtype)
        xm = x * m[:, None]
        return {"n": jnp.sum(m), "xtx": xm.T @ x, "xty": xm.T @ y, "yty": jnp.sum(m * y * y)}

    def merge_stats(a, b):
        return jax.tree_util.tree_map(jnp.add, a, b)

    def fit_stats(key, s, prev):
        a = s["xtx"] + ridge * jnp.eye(dim, dtype=s["xtx"].dtype)
        w = linalg.cho_solve(linalg.cholesky(a), s["xty"])
        rss = s["yty"] - 2.0 * w @ s["xty"] + w @ s["xtx"] @ w
        return {"w": w, "noise_var": jnp.maximum(rss, 0.0) / (s["n"] - dim)}

    def fit(key, batch, mask, prev):
        return fit_stats(key, stats(batch, mask), prev)

    def label_var(params, scale):
        v = params["noise_var"] if label_noise == "fitted" else jnp.asarray(source_noise_var, params["w"].dtype)
        return scale * v

    def sample(key, params, n, scale, covariates):
        e = jax.random.normal(key, (n,), params["w"].dtype)
        return {"x": covariates, "y": covariates @ params["w"] + jnp.sqrt(label_var(params, scale)) * e}

    def sample_stats(key, params, n, scale, covariate_stats):
        return label_stats(key, covariate_stats, params["w"], label_var(params, scale), n)

    def log_prob(params, batch):
        r = batch["y"] - batch["x"] @ params["w"]
        v = params["noise_var"]
        return -0.5 * r * r / v - 0.5 * jnp.log(2 * math.pi * v)

    return Family("linear_regression", ("supervised",), init, fit, sample, log_prob, coef=lambda p: p["w"],
                  stats=stats, merge_stats=merge_stats, fit_stats=fit_stats, sample_stats=sample_stats,
                  weights=True, weigh_stats=lambda s, c: jax.tree_util.tree_map(lambda v: v * c, s))


def check(cfg, source: SourceSpec) -> None:
    checks.number(cfg, "model.ridge", 0.0, allowed="must be a number >= 0")
    checks.choice(cfg, "model.label_noise", ("fitted", "source"))


FAMILY = FamilySpec("linear_regression", fits=("supervised",), check=check,
                    build=lambda cfg, source: linear_regression(source.dim, float(cfg.model.ridge),
                                                                cfg.model.label_noise, float(cfg.source.noise_var)))
