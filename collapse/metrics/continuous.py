"""Parameter metrics for continuous data, from the model as a Gaussian mixture.

Notation: truth mean mu0, covariance S0; model mean mu and covariance S (exact mixture moments at
scale 1: mu = sum_k w_k m_k, S = sum_k w_k (C_k + m_k m_k^T) - mu mu^T).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from collapse import linalg


def mixture_moments(weights, means, covs):
    """Exact mean and covariance of sum_k w_k N(m_k, C_k): mu = sum_k w_k m_k,
    S = sum_k w_k (C_k + (m_k - mu)(m_k - mu)^T) (centred form: no cancellation in float32)."""
    mu = weights @ means
    dev = means - mu
    return mu, jnp.einsum("k,kij->ij", weights, covs) + jnp.einsum("k,ki,kj->ij", weights, dev, dev)


def mean_err(mu, mu0):
    """||mu - mu0||^2."""
    return jnp.sum((mu - mu0) ** 2)


def var_ratio(cov, cov0):
    """tr S / tr S0."""
    return jnp.trace(cov) / jnp.trace(cov0)


def logdet_ratio(cov, cov0):
    """log det S - log det S0 (nats)."""
    return linalg.spd_logdet(cov) - linalg.spd_logdet(cov0)


def frechet(mu, cov, mu0, cov0):
    """Squared Frechet distance ||mu - mu0||^2 + tr(S + S0 - 2 (S^1/2 S0 S^1/2)^1/2)
    (= squared 2-Wasserstein distance between Gaussians)."""
    # tr (S^1/2 S0 S^1/2)^1/2 = sum of singular values of B = L0^T L (S = L L^T, S0 = L0 L0^T)
    b = linalg.cholesky(cov0).T @ linalg.cholesky(cov)
    cross = linalg.eigvalsh(b.T @ b)
    return mean_err(mu, mu0) + jnp.trace(cov) + jnp.trace(cov0) - 2.0 * jnp.sum(jnp.sqrt(jnp.clip(cross, 0.0)))


def gaussian_kl(mu0, cov0, mu, cov):
    """KL(N(mu0, S0) || N(mu, S)) = 0.5 [tr(S^-1 S0) + (mu - mu0)^T S^-1 (mu - mu0) - d + ln det S - ln det S0]."""
    d = mu.shape[0]
    inv = linalg.inv_lower(linalg.cholesky(cov))
    a = inv.T @ inv @ cov0
    diff = mu - mu0
    maha = jnp.sum((inv @ diff) ** 2)
    return 0.5 * (jnp.trace(a) + maha - d + logdet_ratio(cov, cov0))


def _chi2_cdf(x, d: int):
    """CDF of chi2_d at x: erf(sqrt(x/2)) for d = 1, 1 - exp(-x/2) for d = 2, else P(d/2, x/2)."""
    x = jnp.clip(x, 0.0)
    if d == 1:
        return jax.scipy.special.erf(jnp.sqrt(0.5 * x))
    if d == 2:
        return -jnp.expm1(-0.5 * x)
    return jax.scipy.special.gammainc(0.5 * d, 0.5 * x)


def elliptical_tail_prob(weights, means, covs, center, shape, r2, directions):
    """P_model(Q(X) > r2), Q(x) = (x - c)^T A^-1 (x - c), for a Gaussian-mixture model.

    Conditional Monte Carlo over directions: for component N(m, C) write X = m + L R u, u uniform on the
    sphere, R^2 ~ chi2_d independent. Along u, Q is the quadratic |a + R b|^2 (a = A^-1/2 (m - c),
    b = A^-1/2 L u), so P(Q <= r2 | u) = F_d(R+^2) - F_d(max(R-, 0)^2) exactly, with R+- the roots.
    Averaging over ``directions`` (m, d) unit vectors (both signs) gives an unbiased estimate; in d = 1
    the directions {+1, -1} make it exact.
    """
    d = center.shape[0]
    la_inv = linalg.inv_lower(linalg.cholesky(shape))

    def one_component(m, c):
        lc = linalg.cholesky(c)
        a = la_inv @ (m - center)
        b = directions @ (la_inv @ lc).T  # (m, d)
        bb = jnp.sum(b * b, -1)
        ab = b @ a
        aa = a @ a
        disc = ab * ab - bb * (aa - r2)
        sq = jnp.sqrt(jnp.clip(disc, 0.0))
        r_hi = (-ab + sq) / bb
        r_lo = jnp.clip((-ab - sq) / bb, 0.0)
        inside = jnp.where((disc > 0) & (r_hi > 0), _chi2_cdf(r_hi**2, d) - _chi2_cdf(r_lo**2, d), 0.0)
        inside = jnp.where(bb > 0, inside, (aa <= r2).astype(inside.dtype))  # a point mass (C = 0) at m: Q(m) = aa
        return 1.0 - jnp.mean(inside)

    return weights @ jax.vmap(one_component)(means, covs)


def sphere_directions(key, count: int, dim: int, dtype):
    """``count`` unit vectors in antithetic pairs (u, -u); exactly {+1, -1} when dim == 1."""
    if dim == 1:
        return jnp.array([[1.0], [-1.0]], dtype)
    z = jax.random.normal(key, (count // 2, dim), dtype)
    u = z / jnp.linalg.norm(z, axis=-1, keepdims=True)
    return jnp.concatenate([u, -u])
