"""Supervised ground truth: y = x . w* + N(0, noise_var), x ~ N(0, I_d), w* ~ N(0, I_d) per replicate.

``design="fixed"``: the T x d design X is drawn once per replicate and every batch uses it (real rows
take the first n rows, synthetic rows the last n rows, so a mixed batch is exactly the design).
``design="fresh"``: new inputs every batch. A batch is ``{"x": (n, d), "y": (n,)}``.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from collapse import rand
from collapse.sources.base import Source


def linear(dim: int = 10, design_size: int = 100, noise_var: float = 1.0, design: str = "fixed",
           dtype=jnp.float32) -> Source:
    fixed = design == "fixed"

    def init(key):
        kw, kx = jax.random.split(key)
        truth = {"w": jax.random.normal(kw, (dim,), dtype), "noise_var": jnp.asarray(noise_var, dtype)}
        if fixed:
            truth["X"] = jax.random.normal(kx, (design_size, dim), dtype)
        return truth

    def first_rows(key, truth, n):
        return truth["X"][:n] if fixed else jax.random.normal(key, (n, dim), dtype)

    def covariates(key, truth, n):
        return truth["X"][design_size - n:] if fixed else jax.random.normal(key, (n, dim), dtype)

    def sample(key, truth, n):
        kx, ke = jax.random.split(key)
        x = first_rows(kx, truth, n)
        y = x @ truth["w"] + math.sqrt(noise_var) * jax.random.normal(ke, (n,), dtype)
        return {"x": x, "y": y}

    def log_prob(truth, batch):
        r = batch["y"] - batch["x"] @ truth["w"]
        return -0.5 * r * r / noise_var - 0.5 * math.log(2 * math.pi * noise_var)

    def gram(key, truth, n, rows):
        if fixed:
            x = rows(key, truth, n)
            return x.T @ x
        return rand.wishart(key, n, jnp.eye(dim, dtype=dtype), dtype)

    def covariate_stats(key, truth, n):
        return gram(key, truth, n, covariates)

    def sample_stats(key, truth, n):
        from collapse.families.linear_regression import label_stats
        kg, kl = jax.random.split(key)
        g = gram(kg, truth, n, first_rows)
        return label_stats(kl, g, truth["w"], jnp.asarray(noise_var, dtype), n)

    return Source("linear", "supervised", dim, init, sample, log_prob, covariates=covariates,
                  sample_stats=sample_stats, covariate_stats=covariate_stats)
