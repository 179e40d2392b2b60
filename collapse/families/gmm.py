"""Full-covariance Gaussian mixture fit by EM, written in JAX.

Params (K = ``components``, d = ``dim``)
  ``logits`` (K,)        normalised log mixture weights (log_softmax form, always finite),
  ``means``  (K, d),
  ``covs``   (K, d, d)   positive definite (every M-step adds ``reg * I``),
  ``fitted`` ()          1. for a fitted model, 0. for the ``init`` placeholder.

``fit(key, x, mask, prev)`` runs exactly ``em_steps`` EM iterations (``lax.fori_loop``) starting from
``prev`` (warm start: the previous generation's mixture, so component identities persist across
generations) when ``prev`` is given, and from a data-driven start when ``prev`` is None (generation 0):
greedy k-means++ seeding (means), the pooled sample covariance (every ``covs[k]``) and uniform weights.
Masked rows get zero responsibility and do not influence the fit at all (also not the seeding).
A component whose total responsibility is below ``eps(dtype) * n`` of a point ("empty") keeps its
previous mean and covariance and gets a weight of ~0 (floored at the dtype's smallest normal number, so
the logits stay finite); a covariance update whose Cholesky factorisation fails is rejected likewise.

Everything is static-shaped and jit / vmap / scan friendly; the dtype follows the data (float32/64).

d = 2 has a fast path (the same EM, written element-wise; :func:`_em_step_2d`): closed-form 2 x 2 Cholesky
factors (:mod:`collapse.linalg_small`), responsibilities as (K, n) arrays, and the M-step's moments taken
about the previous means (mean_k = m_k + sum r d / N_k, cov_k = sum r d d^T / N_k - delta delta^T with
d = x - m_k, delta = mean_k - m_k), so no (n, K, d) arrays or tiny matmuls and no cancellation for data far
from the origin. It agrees with the general path to float rounding.
"""
from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from collapse import linalg
from collapse import linalg_small as ls
from collapse import checks
from collapse.components import FamilySpec, SourceSpec
from collapse.errors import ConfigError
from collapse.families.base import Family


# ----------------------------------------------------------------------------------------- helpers


def _chol(covs):
    """Batched Cholesky in pure JAX (collapse.linalg: no LAPACK custom call under vmap; d = 2 in closed
    form, the same formulas)."""
    if covs.shape[-1] == 2:
        l00, l10, l11 = ls.cholesky2(covs[..., 0, 0], covs[..., 1, 0], covs[..., 1, 1])
        zero = jnp.zeros_like(l00)
        return jnp.stack([jnp.stack([l00, zero], -1), jnp.stack([l10, l11], -1)], -2)
    if covs.ndim == 2:
        return linalg.cholesky(covs)
    return jax.vmap(linalg.cholesky)(covs)


def _component_logpdf(x, means, chols):
    """(n, K) log N(x_n | mean_k, L_k L_k^T)."""
    d = x.shape[-1]

    def one(mean, chol):
        z = linalg.inv_lower(chol) @ (x - mean).T  # (d, n)
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
        return -0.5 * jnp.sum(z * z, 0) - 0.5 * logdet - 0.5 * d * math.log(2 * math.pi)

    return jax.vmap(one, out_axes=1)(means, chols)


def _pick(u, p):
    """Inverse-CDF draw of row indices with probabilities proportional to ``p`` (n,) >= 0, for uniforms
    ``u``. Rows with p = 0 are never picked, and appending/interleaving zero-weight rows does not change
    which real row a given ``u`` selects (unlike Gumbel-max, whose noise depends on the array length)."""
    c = jnp.cumsum(p)
    idx = jnp.searchsorted(c, u * c[-1], side="right")
    return jnp.clip(idx, 0, p.shape[0] - 1)


def _pooled_cov(x, w, reg):
    """Masked (1/n-normalised) covariance of all rows + reg * I; diagonal fallback if not PD."""
    d = x.shape[-1]
    dt = x.dtype
    n = jnp.maximum(jnp.sum(w), 1.0)
    mean = jnp.sum(w[:, None] * x, 0) / n
    xc = (x - mean) * w[:, None]
    eye = jnp.eye(d, dtype=dt)
    cov = xc.T @ (x - mean) / n
    cov = 0.5 * (cov + cov.T) + reg * eye
    var = jnp.diagonal(cov)
    floor = jnp.finfo(dt).eps * jnp.maximum(jnp.mean(var), 1.0)
    diag = jnp.diag(jnp.maximum(var, floor))
    ok = jnp.all(jnp.isfinite(_chol(cov)))
    return jnp.where(ok, cov, diag)


@partial(jax.jit, static_argnames=("components",))
def kmeanspp_init(key, x, mask, components: int, reg: float = 1e-6) -> dict:
    """Data-driven starting mixture: greedy k-means++ means (2 + log K candidates per centre, the one
    lowering the potential most is kept), the pooled covariance for every component, uniform weights.
    Only unmasked rows can be chosen. Returns params with ``fitted`` = 0 (not yet EM-fitted)."""
    dt = x.dtype
    n, d = x.shape
    K = components
    w = mask.astype(dt)
    x = jnp.where(mask[:, None], x, 0.0)
    trials = 2 + int(math.log(K))
    keys = jax.random.split(key, K)

    idx0 = _pick(jax.random.uniform(keys[0], (), dt), w)
    c0 = x[idx0]
    d2 = jnp.sum((x - c0) ** 2, -1)
    centres = jnp.zeros((K, d), dt).at[0].set(c0)

    def body(k, carry):
        centres, d2 = carry
        p = w * d2
        p = jnp.where(jnp.sum(p) > 0, p, w)  # every real row already is a centre: pick uniformly
        cand = _pick(jax.random.uniform(keys[k], (trials,), dt), p)  # (T,)
        cd2 = jnp.sum((x[:, None, :] - x[cand][None]) ** 2, -1)  # (n, T)
        new = jnp.minimum(d2[:, None], cd2)
        best = jnp.argmin(jnp.sum(w[:, None] * new, 0))
        return centres.at[k].set(x[cand[best]]), new[:, best]

    centres, _ = lax.fori_loop(1, K, body, (centres, d2))
    cov = _pooled_cov(x, w, reg)
    return {
        "logits": jnp.full((K,), -math.log(K), dt),
        "means": centres,
        "covs": jnp.broadcast_to(cov, (K, d, d)),
        "fitted": jnp.zeros((), dt),
    }


def _em_step_general(x, mask, params, reg) -> dict:
    """One EM iteration for any d (E-step at ``params``, then M-step)."""
    dt = x.dtype
    d = x.shape[-1]
    w = mask.astype(dt)
    x = jnp.where(mask[:, None], x, 0.0)
    n_eff = jnp.sum(w)
    logits, means, covs = params["logits"], params["means"], params["covs"]
    chols = _chol(covs)

    # E-step: responsibilities, exactly zero on masked rows.
    lp = jax.nn.log_softmax(logits)[None, :] + _component_logpdf(x, means, chols)  # (n, K)
    resp = jnp.exp(lp - jax.scipy.special.logsumexp(lp, axis=1, keepdims=True))
    resp = jnp.where(mask[:, None], resp, 0.0)

    # M-step.
    nk = jnp.sum(resp, 0)  # (K,)
    empty = nk <= jnp.finfo(dt).eps * jnp.maximum(n_eff, 1.0)
    safe = jnp.where(empty, 1.0, nk)
    new_means = (resp.T @ x) / safe[:, None]
    diff = x[:, None, :] - new_means[None]  # (n, K, d)
    new_covs = jnp.einsum("nk,nki,nkj->kij", resp, diff, diff) / safe[:, None, None]
    new_covs = 0.5 * (new_covs + jnp.swapaxes(new_covs, -1, -2)) + reg * jnp.eye(d, dtype=dt)
    pd = jnp.all(jnp.isfinite(_chol(new_covs)), axis=(-1, -2))
    keep = empty | ~pd
    means = jnp.where(empty[:, None], means, new_means)
    covs = jnp.where(keep[:, None, None], covs, new_covs)
    new_logits = jax.nn.log_softmax(jnp.log(jnp.maximum(nk, jnp.finfo(dt).tiny)))
    logits = jnp.where(n_eff > 0, new_logits, logits)
    return {"logits": logits, "means": means, "covs": covs, "fitted": params["fitted"]}


def _split_2d(x, mask):
    """(x0, x1, w): the two coordinates as (n,) rows (0 on masked rows) and the mask as 0/1 weights."""
    w = mask.astype(x.dtype)
    x = jnp.where(mask[:, None], x, 0.0)
    return x[:, 0], x[:, 1], w


def _responsibilities_2d(x0, x1, w, params):
    """(K, n) responsibilities r_kn = w_n exp(lp_kn - logsumexp_k lp_kn) and the offsets d0, d1 = x - m_k,
    with lp_kn = log pi_k - log(l00 l11) - log(2 pi) - |L_k^-1 d|^2 / 2 (closed-form 2 x 2 Cholesky of the
    lower triangle, as the general path reads it)."""
    means, covs = params["means"], params["covs"]
    l00, l10, l11 = ls.cholesky2(covs[:, 0, 0], covs[:, 1, 0], covs[:, 1, 1])
    i00, i10, i11 = ls.inv_lower2(l00, l10, l11)
    const = jax.nn.log_softmax(params["logits"]) - (jnp.log(l00) + jnp.log(l11)) - math.log(2 * math.pi)
    d0 = x0[None, :] - means[:, 0, None]
    d1 = x1[None, :] - means[:, 1, None]
    z0 = i00[:, None] * d0
    z1 = i10[:, None] * d0 + i11[:, None] * d1
    lp = const[:, None] - 0.5 * (z0 * z0 + z1 * z1)
    mx = jnp.max(lp, 0)
    mx = jnp.where(jnp.isfinite(mx), mx, 0.0)
    lse = mx + jnp.log(jnp.sum(jnp.exp(lp - mx[None]), 0))
    return jnp.where(w[None] > 0, jnp.exp(lp - lse[None]) * w[None], 0.0), d0, d1  # masked rows: exactly 0


def _em_step_2d(x0, x1, w, params, reg) -> dict:
    """One EM iteration for d = 2 (same EM as :func:`_em_step_general`, element-wise), rows from
    :func:`_split_2d`. With d = x - m_k (the previous means): delta = sum r d / N_k, new mean m_k + delta,
    new cov = sum r e e^T / N_k + reg I with e = d - delta = x - new mean (two passes: no cancellation when a
    mean moves far compared with the component's spread)."""
    dt = x0.dtype
    means, covs = params["means"], params["covs"]
    n_eff = jnp.sum(w)
    r, d0, d1 = _responsibilities_2d(x0, x1, w, params)
    nk = jnp.sum(r, 1)
    empty = nk <= jnp.finfo(dt).eps * jnp.maximum(n_eff, 1.0)
    inv = 1.0 / jnp.where(empty, 1.0, nk)
    g0 = jnp.sum(r * d0, 1) * inv
    g1 = jnp.sum(r * d1, 1) * inv
    e0, e1 = d0 - g0[:, None], d1 - g1[:, None]
    c00 = jnp.sum(r * e0 * e0, 1) * inv + reg
    c01 = jnp.sum(r * e0 * e1, 1) * inv
    c11 = jnp.sum(r * e1 * e1, 1) * inv + reg
    keep = empty | ~ls.chol_ok2(*ls.cholesky2(c00, c01, c11))
    new_means = means + jnp.stack([g0, g1], 1)
    new_covs = jnp.stack([jnp.stack([c00, c01], 1), jnp.stack([c01, c11], 1)], 1)
    new_logits = jax.nn.log_softmax(jnp.log(jnp.maximum(nk, jnp.finfo(dt).tiny)))
    return {"logits": jnp.where(n_eff > 0, new_logits, params["logits"]),
            "means": jnp.where(empty[:, None], means, new_means),
            "covs": jnp.where(keep[:, None, None], covs, new_covs), "fitted": params["fitted"]}


@jax.jit
def em_step(x, mask, params, reg: float = 1e-6) -> dict:
    """One EM iteration (E-step at ``params``, then M-step). ``x`` must be finite on unmasked rows."""
    if x.shape[-1] == 2:
        return _em_step_2d(*_split_2d(x, mask), params, reg)
    return _em_step_general(x, mask, params, reg)


def _em(x, mask, params, steps, reg):
    # With a Python-int ``steps`` (as in ``fit``) fori_loop lowers to a fixed-length scan.
    if x.shape[-1] == 2:
        x0, x1, w = _split_2d(x, mask)
        return lax.fori_loop(0, steps, lambda _, p: _em_step_2d(x0, x1, w, p, reg), params)
    return lax.fori_loop(0, steps, lambda _, p: _em_step_general(x, mask, p, reg), params)


@jax.jit
def em(x, mask, params, steps, reg: float = 1e-6) -> dict:
    """``steps`` EM iterations from ``params`` (``steps`` may be a traced integer: one compile for all)."""
    return _em(x, mask, params, steps, reg)


@jax.jit
def log_prob(params, x):
    """(n,) log-density of the mixture at scale 1, nats."""
    lp = _component_logpdf(x, params["means"], _chol(params["covs"]))
    return jax.scipy.special.logsumexp(jax.nn.log_softmax(params["logits"])[None, :] + lp, axis=1)


@jax.jit
def log_likelihood(params, x, mask):
    """Mean log-likelihood per unmasked row."""
    w = mask.astype(x.dtype)
    lp = log_prob(params, jnp.where(mask[:, None], x, 0.0))
    return jnp.sum(jnp.where(mask, lp, 0.0)) / jnp.maximum(jnp.sum(w), 1.0)


# ----------------------------------------------------------------------------------------- factory


def gmm(dim: int, components: int = 5, em_steps: int = 20, reg: float = 1e-6) -> Family:
    """Gaussian mixture family with ``components`` full-covariance components, fit by ``em_steps`` EM
    iterations (warm-started from the previous generation) with covariance regulariser ``reg * I``."""
    K = int(components)
    steps = int(em_steps)
    if K < 1 or steps < 0:
        raise ValueError(f"gmm: need components >= 1 and em_steps >= 0, got {components}, {em_steps}")

    def init(truth):
        """Placeholder (fitted = 0) with the final shapes: equal weights, means spread +-1 sd along the
        principal axis of the truth's covariance (identity where that covariance is not finite)."""
        mean = jnp.asarray(truth["mean"])
        dt = mean.dtype if jnp.issubdtype(mean.dtype, jnp.floating) else jnp.float32
        mean = jnp.nan_to_num(mean.astype(dt), nan=0.0, posinf=0.0, neginf=0.0)
        eye = jnp.eye(dim, dtype=dt)
        cov = jnp.asarray(truth.get("cov", eye), dt)
        cov = jnp.where(jnp.all(jnp.isfinite(cov)), cov, eye)
        evals, evecs = jnp.linalg.eigh(cov)
        axis = evecs[:, -1] * jnp.sqrt(jnp.maximum(evals[-1], 0.0))
        offsets = jnp.linspace(-1.0, 1.0, K, dtype=dt) if K > 1 else jnp.zeros((1,), dt)
        return {
            "logits": jnp.full((K,), -math.log(K), dt),
            "means": mean[None, :] + offsets[:, None] * axis[None, :],
            "covs": jnp.broadcast_to(cov, (K, dim, dim)),
            "fitted": jnp.zeros((), dt),
        }

    def fit(key, x, mask, prev):
        dt = x.dtype
        if mask is None:
            mask = jnp.ones(x.shape[:1], bool)
        mask = mask.astype(bool)
        # prev None (generation 0): data-driven k-means++ start; otherwise warm start from prev. Decided at
        # trace time, so under vmap only one start is computed.
        if prev is None:
            start = kmeanspp_init(key, x, mask, K, reg)
        else:
            start = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dt), prev)
        out = _em(x, mask, start, steps, reg)
        out["fitted"] = jnp.ones((), dt)
        return out

    def sample(key, params, n, scale=1.0, covariates=None):
        dt = params["means"].dtype
        k1, k2 = jax.random.split(key)
        comp = jax.random.categorical(k1, params["logits"], shape=(n,))
        z = jax.random.normal(k2, (n, dim), dt)
        chols = _chol(params["covs"])
        noise = jnp.einsum("nij,nj->ni", chols[comp], z)
        return params["means"][comp] + jnp.sqrt(jnp.asarray(scale, dt)) * noise

    def components_fn(params):
        return jax.nn.softmax(params["logits"]), params["means"], params["covs"]

    # jit-wrapped so that eager calls are fast; under an outer jit/vmap/scan they are simply inlined.
    return Family("gmm", ("continuous",), jax.jit(init), jax.jit(fit),
                  jax.jit(sample, static_argnames=("n",)), log_prob, components=jax.jit(components_fn))


def check(cfg, source: SourceSpec) -> None:
    """model.components, model.em_steps; loop.samples >= components."""
    checks.integer(cfg, "model.components")
    checks.integer(cfg, "model.em_steps")
    if cfg.loop.samples < cfg.model.components:
        raise ConfigError("loop.samples", cfg.loop.samples, f"must be >= model.components = {cfg.model.components}")


FAMILY = FamilySpec("gmm", fits=("continuous",), check=check,
                    build=lambda cfg, source: gmm(components=cfg.model.components, em_steps=cfg.model.em_steps,
                                                  dim=source.dim))
