"""The ``detector`` score: a small classifier trained, in every generation and replicate, to tell held-out
real data from the model's candidates (Drayson et al. 2025); the score of a candidate is its log-odds of real.

Model: logistic regression f(x) = <w, phi(x)> + b on fixed features phi, fit from w = 0 on the class-balanced
logistic loss mean_real softplus(-f) + mean_model softplus(f) + ``l2`` ||w||^2 / 2: by :data:`NEWTON_STEPS`
Newton steps when there are at most :data:`NEWTON_FEATURES` features (continuous data of small dimension:
exact to float precision, a handful of small solves), else by ``steps`` Adam steps with learning rate ``lr``.
With balanced classes the optimum's f estimates log p_real(x) - log p_model(x), so importance resampling by
exp(f) approximates the exact density ratio. Features by kind:
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

from collapse import linalg


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


NEWTON_FEATURES = 32
NEWTON_STEPS = 8


def _newton(fr, fc, l2: float):
    """(w, b) of the penalised balanced logistic loss by Newton's method on theta = (w, b) (b unpenalised);
    a step longer than 10 in norm is shortened (near-separable sets). The Hessian is a weighted sum of the
    rows' outer products, precomputed once: one matrix-vector product per step."""
    dt = fc.dtype
    p = fr.shape[1]

    def design(f):
        a = jnp.concatenate([f, jnp.ones((f.shape[0], 1), dt)], 1)
        return a, (a[:, :, None] * a[:, None, :]).reshape(a.shape[0], -1) / a.shape[0]

    (ar, outer_r), (ac, outer_c) = design(fr), design(fc)
    pen = jnp.concatenate([jnp.full(p, l2, dt), jnp.full(1, 1e-8, dt)])

    def step(_, th):
        sr, sc = jax.nn.sigmoid(ar @ th), jax.nn.sigmoid(ac @ th)
        grad = (sr - 1.0) @ ar / ar.shape[0] + sc @ ac / ac.shape[0] + pen * th
        hess = ((sr * (1 - sr)) @ outer_r + (sc * (1 - sc)) @ outer_c).reshape(p + 1, p + 1) + jnp.diag(pen)
        delta = linalg.cho_solve(linalg.cholesky(hess), grad)
        delta = jnp.where(jnp.all(jnp.isfinite(delta)), delta, 0.0)
        size = jnp.sqrt(jnp.sum(delta ** 2))
        return th - delta * jnp.minimum(1.0, 10.0 / jnp.maximum(size, 1e-30))

    th = jax.lax.fori_loop(0, NEWTON_STEPS, step, jnp.zeros(p + 1, dt))
    return th[:p], th[p]


def adam_minimise(loss: Callable, params, steps: int, opt: optax.GradientTransformation):
    """``params`` after ``steps`` steps of ``opt`` on ``loss(params)`` (a ``lax.scan``: vmap and jit friendly)."""
    def step(carry, _):
        p, st = carry
        upd, st = opt.update(jax.grad(loss)(p), st, p)
        return (optax.apply_updates(p, upd), st), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params


def train_detector(phi: Callable, steps: int, lr: float, l2: float) -> Callable:
    """score(real, candidates) -> (c,) log-odds of real of each candidate, after fitting on both sets."""
    opt = optax.adam(lr)

    def score(real, cand):
        fr, fc = phi(real, real), phi(cand, real)
        dt = fc.dtype
        if fc.shape[1] <= NEWTON_FEATURES:
            w, b = _newton(fr, fc, l2)
            return fc @ w + b
        params = {"w": jnp.zeros(fc.shape[1], dt), "b": jnp.zeros((), dt)}

        def loss(p):
            lr_ = fr @ p["w"] + p["b"]
            lc = fc @ p["w"] + p["b"]
            return (jnp.mean(jax.nn.softplus(-lr_)) + jnp.mean(jax.nn.softplus(lc))
                    + 0.5 * l2 * jnp.sum(p["w"] ** 2))

        p = adam_minimise(loss, params, steps, opt)
        return fc @ p["w"] + p["b"]
    return score
