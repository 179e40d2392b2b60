"""2-D toy ground truths with known modes: a ring and a square grid of small isotropic Gaussians.

Both are equal-weight mixtures p(x) = (1/K) sum_k N(x; m_k, s^2 I_2) of kind "continuous", so the
gaussian / gmm / kde families and the continuous metrics work on them unchanged.

- :func:`ring`: K = ``modes`` means m_k = radius * (cos 2 pi k / K, sin 2 pi k / K), k = 0..K-1.
- :func:`grid`: K = side^2 means ((i - (side - 1) / 2) * spacing, (j - (side - 1) / 2) * spacing),
  i, j = 0..side-1 (row-major: i is the x index, j the y index, j fastest).

Truth keys (constants, the same for every replicate; computed once on the host when the source is built)
- ``mean`` (2,) = (1/K) sum_k m_k and ``cov`` (2, 2) = s^2 I + (1/K) sum_k (m_k - mean)(m_k - mean)^T:
  the exact mixture moments.
- ``tail_q`` (): the alpha-quantile of log p_true(X), X ~ p_true (alpha = ``alpha``, the metrics' tail
  level). It has no closed form for overlapping modes, so it is estimated by Monte Carlo: the empirical
  alpha-quantile (numpy's default linear interpolation) of log p_true over N = K * ceil(draws / K) exact
  draws, stratified by component (exactly ceil(draws / K) draws from each mode, which is unbiased because
  the weights are equal and removes the noise of the component counts), numpy ``default_rng(TAIL_SEED)``,
  draws = 1,000,000 by default. The share P(log p_true(X) < tail_q) then differs from alpha by about
  sqrt(alpha (1 - alpha) / N) = 1e-4 (alpha = 0.01, N = 10^6). When the modes are well separated
  (spacing >> s) tail_q -> -log K - log(2 pi s^2) + log alpha, because ||X - m_k||^2 / s^2 ~ chi2_2.
- ``modes`` (K, 2): the component means m_k; ``mode_std`` (): s.

``info = {"modes": K}``.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp as np_logsumexp

from collapse.sources.base import Source

TAIL_SEED = 20240601
TAIL_DRAWS = 1_000_000
_LOG_2PI = math.log(2.0 * math.pi)


def ring_modes(modes: int, radius: float) -> np.ndarray:
    """(K, 2) means radius * (cos 2 pi k / K, sin 2 pi k / K)."""
    angle = 2.0 * np.pi * np.arange(modes) / modes
    return radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)


def grid_modes(side: int, spacing: float) -> np.ndarray:
    """(side^2, 2) means ((i - (side - 1) / 2) * spacing, (j - (side - 1) / 2) * spacing), j fastest."""
    c = (np.arange(side) - (side - 1) / 2.0) * spacing
    gx, gy = np.meshgrid(c, c, indexing="ij")
    return np.stack([gx.reshape(-1), gy.reshape(-1)], axis=1)


def mixture_log_prob_np(x: np.ndarray, modes: np.ndarray, std: float) -> np.ndarray:
    """log (1/K) sum_k N(x; m_k, std^2 I_2) for rows of x (host, float64), nats."""
    d2 = ((x[:, None, :] - modes[None]) ** 2).sum(-1)
    return (np_logsumexp(-0.5 * d2 / std**2, axis=1) - math.log(len(modes)) - 2.0 * math.log(std) - _LOG_2PI)


@functools.lru_cache(maxsize=16)
def _tail_quantile(modes_key: tuple, std: float, alpha: float, draws: int) -> float:
    """Stratified Monte-Carlo alpha-quantile of log p_true(X) (see the module docstring)."""
    modes = np.asarray(modes_key, dtype=np.float64)
    per = -(-draws // len(modes))  # ceil(draws / K) draws from each component
    rng = np.random.default_rng(TAIL_SEED)
    lp = np.empty(per * len(modes))
    for k, m in enumerate(modes):  # one component at a time: memory ~ per * K rows, i.e. ~ draws
        x = m + std * rng.standard_normal((per, 2))
        lp[k * per:(k + 1) * per] = mixture_log_prob_np(x, modes, std)
    return float(np.quantile(lp, alpha))


def mixture_moments(modes: np.ndarray, std: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean (2,) and covariance (2, 2) of the equal-weight mixture of N(m_k, std^2 I)."""
    mean = modes.mean(0)
    c = modes - mean
    cov = std**2 * np.eye(2) + c.T @ c / len(modes)
    tiny = 1e-12 * (np.abs(modes).max() + std) ** 2  # round-off of symmetric layouts (sum of cosines) -> 0
    mean[np.abs(mean) < 1e-12 * (np.abs(modes).max() + std)] = 0.0
    cov[np.abs(cov) < tiny] = 0.0
    return mean, cov


def _check(std: float, alpha: float, draws: int) -> None:
    if not std > 0:
        raise ValueError(f"std={std!r}: must be > 0")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha={alpha!r}: must lie in (0, 1)")
    if draws < 1:
        raise ValueError(f"tail_quantile_draws={draws!r}: must be >= 1")


def _mixture_source(name: str, modes: np.ndarray, std: float, alpha: float, dtype, draws: int) -> Source:
    modes = np.asarray(modes, dtype=np.float64)
    K = len(modes)
    mean, cov = mixture_moments(modes, std)
    tail_q = _tail_quantile(tuple(map(tuple, modes.tolist())), float(std), float(alpha), int(draws))

    def init(key):
        return {"mean": jnp.asarray(mean, dtype), "cov": jnp.asarray(cov, dtype),
                "tail_q": jnp.asarray(tail_q, dtype), "modes": jnp.asarray(modes, dtype),
                "mode_std": jnp.asarray(std, dtype)}

    def sample(key, truth, n):
        k1, k2 = jax.random.split(key)
        idx = jax.random.randint(k1, (n,), 0, K)
        return truth["modes"][idx] + truth["mode_std"] * jax.random.normal(k2, (n, 2), dtype)

    def log_prob(truth, x):
        s = truth["mode_std"]
        d2 = jnp.sum((x[:, None, :] - truth["modes"][None]) ** 2, axis=-1)
        return (jax.scipy.special.logsumexp(-0.5 * d2 / (s * s), axis=1) - math.log(K) - 2.0 * jnp.log(s)
                - _LOG_2PI)

    return Source(name, "continuous", 2, init, sample, log_prob, info={"modes": K})


def ring(modes: int = 8, radius: float = 2.0, std: float = 0.05, alpha: float = 0.01, dtype=jnp.float32,
         tail_quantile_draws: int = TAIL_DRAWS) -> Source:
    """Equal-weight mixture of N(m_k, std^2 I_2), m_k = radius * (cos 2 pi k / K, sin 2 pi k / K), K = ``modes``.

    Exact moments: mean 0 and cov (radius^2 / 2 + std^2) I for K >= 3 (computed from the means for any K).
    """
    if int(modes) != modes or modes < 1:
        raise ValueError(f"modes={modes!r}: must be an integer >= 1")
    if not radius > 0:
        raise ValueError(f"radius={radius!r}: must be > 0")
    _check(std, alpha, tail_quantile_draws)
    return _mixture_source("ring", ring_modes(int(modes), float(radius)), std, alpha, dtype, tail_quantile_draws)


def grid(side: int = 5, spacing: float = 1.0, std: float = 0.05, alpha: float = 0.01, dtype=jnp.float32,
         tail_quantile_draws: int = TAIL_DRAWS) -> Source:
    """Equal-weight mixture of side x side N(m_ij, std^2 I_2) on a square grid centred at the origin
    (coordinates (i - (side - 1) / 2) * spacing). Exact moments: mean 0 and
    cov (std^2 + spacing^2 (side^2 - 1) / 12) I."""
    if int(side) != side or side < 1:
        raise ValueError(f"side={side!r}: must be an integer >= 1")
    if not spacing > 0:
        raise ValueError(f"spacing={spacing!r}: must be > 0")
    _check(std, alpha, tail_quantile_draws)
    return _mixture_source("grid", grid_modes(int(side), float(spacing)), std, alpha, dtype, tail_quantile_draws)
