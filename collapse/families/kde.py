"""Gaussian kernel density estimate: the fitted model is the (unmasked) data points themselves.

Model: p(x) = sum_i w_i N(x | x_i, H), w_i = mask_i / n, n = number of unmasked rows, with kernel
covariance
  - ``bandwidth="scott"``:     H = h^2 C, h = n^(-1/(d+4))                      (Scott's factor),
  - ``bandwidth="silverman"``: H = h^2 C, h = (n (d+2) / 4)^(-1/(d+4))          (Silverman's factor),
  - ``bandwidth=<number> b``:  H = b^2 I                                         (fixed, isotropic),
where C is the masked sample covariance of the data with the unbiased (n - 1) divisor. These are exactly
the definitions of ``scipy.stats.gaussian_kde`` (its ``covariance`` = factor^2 * data covariance), so
``log_prob`` reproduces ``gaussian_kde.logpdf``. ``reg`` (default 0) is added to the diagonal of H; set
it > 0 if the data can be degenerate (n <= d, or all points equal), where C is singular.

Params: ``points`` (m, d) (masked rows zeroed), ``weights`` (m,) = mask / n, ``cov`` (d, d) = H, where
m = ``max_points`` is the static size of the pools the engine passes to ``fit`` (``fit`` takes m from the
batch shape, ``init`` from ``max_points``). ``log_prob`` builds an (n_eval, m) matrix of kernel values.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from collapse import linalg
from collapse import checks
from collapse.components import FamilySpec, SourceSpec
from collapse.errors import ConfigError
from collapse.families.base import Family

_RULES = ("scott", "silverman")


def bandwidth_factor(rule: str, n, d: int):
    """Scott's n^(-1/(d+4)) or Silverman's (n (d+2)/4)^(-1/(d+4)); ``n`` may be traced."""
    if rule == "scott":
        return n ** (-1.0 / (d + 4))
    if rule == "silverman":
        return (n * (d + 2) / 4.0) ** (-1.0 / (d + 4))
    raise ValueError(f"kde: unknown bandwidth rule {rule!r} (expected {_RULES} or a number)")


def _pick(u, p):
    """Inverse-CDF draw of indices proportional to ``p`` >= 0 (O(n_draws log m), no (n, m) matrix)."""
    c = jnp.cumsum(p)
    idx = jnp.searchsorted(c, u * c[-1], side="right")
    return jnp.clip(idx, 0, p.shape[0] - 1)


def kde(dim: int, max_points: int, bandwidth: str | float = "scott", reg: float = 0.0) -> Family:
    """Gaussian KDE family (see the module docstring for the bandwidth definitions)."""
    if isinstance(bandwidth, str):
        rule = bandwidth.lower()
        if rule not in _RULES:
            raise ValueError(f"kde: unknown bandwidth rule {bandwidth!r} (expected {_RULES} or a number)")
        fixed = None
    else:
        rule, fixed = None, float(bandwidth)
        if not fixed > 0:
            raise ValueError(f"kde: bandwidth must be > 0, got {bandwidth}")
    m0 = int(max_points)

    def init(truth):
        """Placeholder with the final shapes: all points at the truth's mean, equal weights, H = I."""
        mean = jnp.asarray(truth["mean"])
        dt = mean.dtype if jnp.issubdtype(mean.dtype, jnp.floating) else jnp.float32
        mean = jnp.nan_to_num(mean.astype(dt), nan=0.0, posinf=0.0, neginf=0.0)
        return {
            "points": jnp.broadcast_to(mean, (m0, dim)),
            "weights": jnp.full((m0,), 1.0 / m0, dt),
            "cov": jnp.eye(dim, dtype=dt),
        }

    def fit(key, x, mask, prev=None):
        dt = x.dtype
        if mask is None:
            mask = jnp.ones(x.shape[:1], bool)
        mask = mask.astype(bool)
        w = mask.astype(dt)
        x = jnp.where(mask[:, None], x, 0.0)
        n = jnp.sum(w)
        eye = jnp.eye(dim, dtype=dt)
        if fixed is not None:
            H = (fixed ** 2) * eye
        else:
            mean = jnp.sum(w[:, None] * x, 0) / jnp.maximum(n, 1.0)
            xc = (x - mean) * w[:, None]
            C = xc.T @ xc / jnp.maximum(n - 1.0, 1.0)
            C = 0.5 * (C + C.T)
            h = bandwidth_factor(rule, jnp.maximum(n, 1.0), dim)
            H = h * h * C
        H = H + reg * eye
        return {"points": x, "weights": w / jnp.maximum(n, 1.0), "cov": H}

    def sample(key, params, n, scale=1.0, covariates=None):
        pts, wts = params["points"], params["weights"]
        dt = pts.dtype
        k1, k2 = jax.random.split(key)
        idx = _pick(jax.random.uniform(k1, (n,), dt), wts)
        chol = linalg.cholesky(params["cov"])
        z = jax.random.normal(k2, (n, dim), dt)
        return pts[idx] + jnp.sqrt(jnp.asarray(scale, dt)) * z @ chol.T

    def log_prob(params, x):
        pts, wts, H = params["points"], params["weights"], params["cov"]
        chol = linalg.cholesky(H)
        inv = linalg.inv_lower(chol)
        centre = jnp.sum(wts[:, None] * pts, 0) / jnp.maximum(jnp.sum(wts), jnp.finfo(pts.dtype).tiny)
        # Whitened, centred coordinates; squared distances via |a|^2 + |b|^2 - 2 a.b (an (n, m) matrix).
        a = (x - centre) @ inv.T  # (n, d)
        b = (pts - centre) @ inv.T  # (m, d)
        d2 = jnp.sum(a * a, -1)[:, None] + jnp.sum(b * b, -1)[None, :] - 2.0 * a @ b.T
        d2 = jnp.maximum(d2, 0.0)
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
        logw = jnp.where(wts > 0, jnp.log(jnp.where(wts > 0, wts, 1.0)), -jnp.inf)
        lp = jax.scipy.special.logsumexp(logw[None, :] - 0.5 * d2, axis=1)
        return lp - 0.5 * logdet - 0.5 * dim * math.log(2 * math.pi)

    def components(params):
        pts = params["points"]
        return params["weights"], pts, jnp.broadcast_to(params["cov"], (pts.shape[0], dim, dim))

    # jit-wrapped so that eager calls are fast; under an outer jit/vmap/scan they are simply inlined.
    return Family("kde", ("continuous",), jax.jit(init), jax.jit(fit),
                  jax.jit(sample, static_argnames=("n",)), jax.jit(log_prob),
                  components=jax.jit(components))


def check(cfg, source: SourceSpec) -> None:
    """model.bandwidth: scott, silverman or a number > 0."""
    bw = checks.get(cfg, "model.bandwidth")
    if not (bw in ("scott", "silverman") or (isinstance(bw, (int, float)) and not isinstance(bw, bool) and bw > 0)):
        raise ConfigError("model.bandwidth", bw, "must be scott, silverman or a number > 0")


def _points(cfg) -> int:
    """Rows the KDE is fit on: the whole pool under accumulate, else one batch."""
    if cfg.loop.synthetic == "accumulate":
        return cfg.generations * cfg.loop.samples
    return cfg.loop.samples


def build(cfg, source) -> Family:
    bw = cfg.model.bandwidth
    return kde(bandwidth=bw if isinstance(bw, str) else float(bw), dim=source.dim, max_points=_points(cfg))


FAMILY = FamilySpec("kde", fits=("continuous",), check=check, build=build)
