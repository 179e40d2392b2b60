"""The ``detector`` score: a small classifier trained, in every generation and replicate, to tell held-out
real data from the model's candidates (Drayson et al. 2025); the score of a candidate is its log-odds of real.

Model: logistic regression f(x) = <w, phi(x)> + b on fixed features phi, fit by ``steps`` Adam steps (learning
rate ``lr``) on the class-balanced logistic loss mean_real softplus(-f) + mean_model softplus(f) +
``l2`` ||w||^2 / 2, from w = 0. With balanced classes the optimum's f estimates log p_real(x) - log p_model(x),
so importance resampling by exp(f) approximates the exact density ratio. Features by kind:
- continuous: z = (x - m) / s standardised by the real set, and every product z_i z_j (i <= j): the log-ratio
  of two Gaussians is exactly quadratic, so the model is well specified for Gaussian chains;
- discrete: one-hot categories (the exact log-ratio per category, up to the penalty);
- text: the segment's unigram frequencies (V numbers);
- images: the pixels.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax


def features_for(kind: str, dim: int) -> Callable:
    """phi(x, real) -> (n, p) features of ``x`` (``real`` fixes the continuous standardisation)."""
    if kind == "continuous":
        iu = jnp.triu_indices(dim)

        def phi(x, real):
            m, s = jnp.mean(real, 0), jnp.std(real, 0) + 1e-6
            z = (x - m) / s
            quad = (z[:, :, None] * z[:, None, :])[:, iu[0], iu[1]]
            return jnp.concatenate([z, quad], axis=1)
        return phi
    if kind == "discrete":
        return lambda x, real: jax.nn.one_hot(x, dim, dtype=jnp.result_type(float))
    if kind == "text":
        return lambda x, real: jnp.mean(jax.nn.one_hot(x, dim, dtype=jnp.result_type(float)), axis=1)
    return lambda x, real: x.reshape(x.shape[0], -1).astype(jnp.result_type(float))


def train_detector(phi: Callable, steps: int, lr: float, l2: float) -> Callable:
    """score(real, candidates) -> (c,) log-odds of real of each candidate, after fitting on both sets."""
    opt = optax.adam(lr)

    def score(real, cand):
        fr, fc = phi(real, real), phi(cand, real)
        dt = fc.dtype
        params = {"w": jnp.zeros(fc.shape[1], dt), "b": jnp.zeros((), dt)}

        def loss(p):
            lr_ = fr @ p["w"] + p["b"]
            lc = fc @ p["w"] + p["b"]
            return (jnp.mean(jax.nn.softplus(-lr_)) + jnp.mean(jax.nn.softplus(lc))
                    + 0.5 * l2 * jnp.sum(p["w"] ** 2))

        def step(carry, _):
            p, st = carry
            g = jax.grad(loss)(p)
            upd, st = opt.update(g, st, p)
            return (optax.apply_updates(p, upd), st), None

        (p, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
        return fc @ p["w"] + p["b"]
    return score
