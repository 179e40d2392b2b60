"""Closed forms from the model-collapse literature, drawn next to simulations and used by the tests.

NumPy/SciPy only (no JAX). Every function takes ``g``, an array of *project generations* (0 .. G-1),
and returns a float64 array of the expected metric at each one. Indexing: generation g is the model after
``n = g + 1`` fits, generation 0 being fit on ``loop.samples`` real points. So the value at g = 0 is the
"one fit" value (n = 1), not the truth.

Notation: M = ``loop.samples`` (the batch size), d = dimension, r = (M - 1)/M.

Sources of the formulas
- Gaussian, fully synthetic: Shumailov et al., "AI models collapse when trained on recursively generated
  data", Nature 631 (2024), Sec. 3 / Thm 3.1 and its supplementary derivation; Alemohammad et al., "Self-
  Consuming Generative Models Go MAD" (ICLR 2024); Bertrand et al., "On the stability of iterative
  retraining of generative models on their own data" (ICLR 2024) for the mixed real/synthetic setting.
  The expressions themselves follow from S_n = S_{n-1}^{1/2} W_n S_{n-1}^{1/2} / D with
  W_n ~ Wishart_d(M - 1, I) independent of the mean draw (Cochran), D = M (MLE) or M - 1 (unbiased).
- Linear regression: Gerstgrasser et al., "Is Model Collapse Inevitable? Breaking the Curse of
  Recursion by Accumulating Real and Synthetic Data" (2024), Thms 1-2 (replace: linear growth;
  accumulate: bounded by pi^2/6); Dohmatob, Feng & Kempe, "Model Collapse Demystified: The Case of
  Regression" (2024).
- Categorical: the Wright-Fisher / Polya argument for empirical-frequency refitting (Shumailov et al.
  2024, Sec. 3.1, discrete case); the Gini-Simpson decay is the heterozygosity decay of the
  Wright-Fisher model, H_n = (1 - 1/M)^n H_0.
- The fresh-real-data recursions (:func:`gaussian_fresh_moments`, :func:`categorical_fresh_gini_simpson`)
  are derived here (exact first/second-moment recursions, see their docstrings) in the setting of
  Bertrand et al. (2024) and Alemohammad et al. (2024, "fresh data loop").

Which loop settings each form assumes is stated per function; :func:`theory_curves` applies them to a
config and returns only the curves whose assumptions hold. ``docs/theory.md`` (in the repository) collects
every formula, its assumptions, its function and its source.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import digamma, gammaln, polygamma

__all__ = [
    "fits",
    "n_real_of",
    "log_c4",
    "c4",
    "gaussian_var_ratio",
    "gaussian_mean_err",
    "gaussian_w2_1d",
    "gaussian_logdet_ratio",
    "gaussian_fresh_moments",
    "gaussian_fresh_var_ratio",
    "gaussian_fresh_mean_err",
    "gaussian_fresh_stationary",
    "gaussian_weighted_moments",
    "gaussian_weighted_stationary",
    "weighted_mean_err_known_var",
    "optimal_real_weight",
    "linreg_test_error",
    "linreg_accumulate_bound",
    "zipf_probs",
    "categorical_support_one_fit",
    "categorical_gini_simpson",
    "categorical_fresh_gini_simpson",
    "categorical_support",
    "symbol_survival",
    "absorption_time",
    "forgetting_time",
    "wright_fisher_matrix",
    "poisson_extinct_one",
    "poisson_extinct",
    "poisson_rate_ratio_var",
    "poisson_forgotten",
    "theory_curves",
]

ESTIMATORS = ("mle", "unbiased")


# ----------------------------------------------------------------------------------------------- helpers
def fits(g) -> np.ndarray:
    """Number of fits n = g + 1 behind project generation g (generation 0 is the first fit)."""
    g = np.asarray(g)
    if g.size and (np.any(g < 0) or np.any(g != np.floor(g))):
        raise ValueError(f"generations must be non-negative integers, got {g!r}")
    return g.astype(np.float64) + 1.0


def n_real_of(real_fraction: float, samples: int) -> int:
    """n_real = floor(real_fraction * samples + 0.5), the number of real points per batch (README "The experiment")."""
    return int(math.floor(real_fraction * samples + 0.5))


def _divisor(samples: int, estimator: str) -> float:
    if estimator == "mle":
        return float(samples)
    if estimator == "unbiased":
        return float(samples - 1)
    raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")


def log_c4(k) -> np.ndarray:
    """log c4(k), c4(k) = sqrt(2/k) Gamma((k+1)/2) / Gamma(k/2) = E[sqrt(chi2_k / k)].

    Indexed by degrees of freedom k (the textbook c4(n) is this c4(n - 1)). With x = k/2,
    log c4 = log Gamma(x + 1/2) - log Gamma(x) - (1/2) log x, computed with ``gammaln`` for k < 40 and,
    for k >= 40 (where the difference of two large ``gammaln`` values would lose digits), with the
    asymptotic series -1/(8x) + 1/(192x^3) - 1/(640x^5) + 17/(14336x^7) (truncation error < 1e-14).
    So c4(k) = 1 - 1/(4k) + O(k^-2) stays accurate for huge k.
    """
    k = np.asarray(k, dtype=np.float64)
    x = k / 2.0
    big = x >= 20.0
    xs = np.where(big, x, 20.0)
    series = -1.0 / (8 * xs) + 1.0 / (192 * xs**3) - 1.0 / (640 * xs**5) + 17.0 / (14336 * xs**7)
    xg = np.where(big, 1.0, x)
    exact = gammaln(xg + 0.5) - gammaln(xg) - 0.5 * np.log(xg)
    return np.where(big, series, exact)


def c4(k) -> np.ndarray:
    """c4(k) = sqrt(2/k) Gamma((k+1)/2) / Gamma(k/2) (k = degrees of freedom), see :func:`log_c4`."""
    return np.exp(log_c4(k))


# ------------------------------------------------------------------------------- Gaussian, fully synthetic
def gaussian_var_ratio(g, samples: int, estimator: str = "mle") -> np.ndarray:
    """E[var_ratio] = E[tr S_n] / tr S0 for the fully synthetic Gaussian loop, n = g + 1.

    MLE (divide by M): ((M - 1)/M)^n.  Unbiased (divide by M - 1): 1 (E[S_n | S_{n-1}] = S_{n-1}, a
    martingale). Shumailov et al. (Nature 2024), Sec. 3.2. Holds for any true covariance S0 (E[S_n] is
    proportional to S0), with ``loop.synthetic=replace``, ``real_fraction=0``, ``sampling.scale=1``.
    """
    n = fits(g)
    if estimator == "mle":
        return np.exp(n * math.log1p(-1.0 / samples))
    _divisor(samples, estimator)
    return np.ones_like(n)


def gaussian_mean_err(g, samples: int, dim: int = 1, estimator: str = "mle") -> np.ndarray:
    """E[mean_err] = E[||mu_n - mu0||^2] for the fully synthetic loop from N(mu0, I_d), n = g + 1.

    mu_n | past ~ N(mu_{n-1}, S_{n-1}/M), so E||mu_n - mu0||^2 = sum_{i=0}^{n-1} E[tr S_i] / M, giving
    MLE: d (1 - ((M - 1)/M)^n);  unbiased: d n / M. (Shumailov et al., Nature 2024, Sec. 3.2.)
    For a source N(mu0, s^2 I_d) multiply by s^2 (the fit is affine-equivariant).
    """
    n = fits(g)
    if estimator == "mle":
        return -dim * np.expm1(n * math.log1p(-1.0 / samples))
    _divisor(samples, estimator)
    return dim * n / samples


def gaussian_w2_1d(g, samples: int, estimator: str = "mle") -> np.ndarray:
    """E[frechet] = E[W2^2(N(mu_n, s_n^2), N(0, 1))] in one dimension, n = g + 1.

    W2^2 = mu_n^2 + (s_n - 1)^2 and sigma_n = sigma_{n-1} sqrt(chi2_{M-1} / D), so E[sigma_n] =
    (c4(M-1) sqrt((M-1)/D))^n and
      MLE (D = M):          2 [1 - (c4(M-1) sqrt((M-1)/M))^n]   (bounded by 2),
      unbiased (D = M - 1): n/M + 2 (1 - c4(M-1)^n)              (grows without bound).
    Shumailov et al. (Nature 2024), Thm 3.1 and its discussion; c4 as in :func:`c4`.
    For a source N(mu0, s^2) multiply by s^2.
    """
    n = fits(g)
    m = float(samples)
    if estimator == "mle":
        log_step = log_c4(m - 1.0) + 0.5 * math.log((m - 1.0) / m)
        return -2.0 * np.expm1(n * log_step)
    _divisor(samples, estimator)
    return n / m - 2.0 * np.expm1(n * log_c4(m - 1.0))


def gaussian_logdet_ratio(g, samples: int, dim: int = 1, estimator: str = "mle") -> np.ndarray:
    """E[logdet_ratio] = E[log det S_n - log det S0] for the fully synthetic loop, n = g + 1.

    log det S_n = log det S_{n-1} + log det(W_n / D), W_n ~ Wishart_d(M - 1, I), and
    E[log det W] = sum_{i=1..d} psi((M - i)/2) + d ln 2, so
      MLE:      n * sum_{i=1..d} [psi((M - i)/2) + ln(2/M)],
      unbiased: n * sum_{i=1..d} [psi((M - i)/2) + ln(2/(M - 1))].
    Exact for any S0 (log det is affine-invariant up to the constant log det S0). Needs M >= d + 1.
    d = 10, M = 100: -0.677 per fit (MLE). Cf. Shumailov et al. (Nature 2024), Sec. 3.2.
    """
    n = fits(g)
    D = _divisor(samples, estimator)
    i = np.arange(1, dim + 1, dtype=np.float64)
    per_fit = float(np.sum(digamma((samples - i) / 2.0) + math.log(2.0 / D)))
    return n * per_fit


# ---------------------------------------------------------------------------- Gaussian, fresh real data
def gaussian_fresh_moments(g, samples: int, n_real: int, estimator: str = "mle"):
    """Exact (E[tr S_g]/(d s^2), E||mu_g - mu0||^2/(d s^2)) with fresh real data each generation.

    Setting: ``loop.synthetic=replace``, ``loop.real=fresh``, ``sampling.scale=1``, source N(mu0, s^2 I_d).
    Each batch has a = n_real fresh real points and b = M - a points drawn from N(mu_{g-1}, S_{g-1});
    the fit is mu_g = pooled mean, S_g = pooled scatter / D (D = M for MLE, M - 1 unbiased).
    Work in units where mu0 = 0, s = 1, and write x = E[tr S]/d, y = E||mu||^2/d.

    Derivation (conditional on generation g-1). Pooled scatter = W_r + W_s + (ab/M)(rbar - sbar)(..)^T,
    with E[W_r] = (a-1) I, E[W_s] = (b-1) S, rbar ~ N(0, I/a), sbar ~ N(mu, S/b) independent, hence
    E[(rbar - sbar)(..)^T] = I/a + S/b + mu mu^T and

        E[tr scatter]/d = (a-1) + (b-1) tr S/d + (ab/M)(1/a + tr S/(d b) + ||mu||^2/d)
                        = (M-1)/M * (a + b tr S/d) + (ab/M) ||mu||^2/d.

    The pooled mean mu_g = (a rbar + b sbar)/M has E = (b/M) mu and covariance (a I + b S)/M^2, so
    E||mu_g||^2/d = (a + b tr S/d)/M^2 + (b/M)^2 ||mu||^2/d. Taking expectations (both are linear):

        x_g = [(M-1)/M (a + b x_{g-1}) + (ab/M) y_{g-1}] / D
        y_g = (a + b x_{g-1}) / M^2 + (b/M)^2 y_{g-1},          x_{-1} = 1, y_{-1} = 0,

    where the start (x, y) = (1, 0) is the truth, which makes g = 0 the all-real first fit
    (x_0 = (M-1)/D, y_0 = 1/M) for any a. For a = 0 this reduces to the fully synthetic forms
    (:func:`gaussian_var_ratio`, :func:`gaussian_mean_err`). For a > 0 the linear map is a contraction and
    the chain settles at :func:`gaussian_fresh_stationary`. The mean offset y feeds the variance through
    the between-group term (ab/M)||mu||^2: that is the coupling.

    MLE invariant: x_g + y_g = 1 for every g (the MLE model's raw second moment S + mu mu^T is the batch's
    empirical one, whose expectation is (a I + b E[S + mu mu^T])/M), so the MLE recursion is scalar:
    x_g = [a (M - 1 + b) + b (M - 1 - a) x_{g-1}] / M^2.

    Contamination schedules: ``n_real`` may be a sequence, a = n_real[g] in generation g's step (the same
    recursion with a generation-dependent share: each step conditions only on the previous generation).

    Returns (x, y) arrays over g; ``var_ratio = x`` and ``mean_err = d s^2 y``.
    """
    g = np.asarray(g)
    fits(g)  # validates
    m = int(samples)
    G = int(g.max()) + 1 if g.size else 0
    counts = _counts(n_real, m, G)
    D = _divisor(m, estimator)
    xs = np.empty(G)
    ys = np.empty(G)
    x, y = 1.0, 0.0
    for k in range(G):
        a = counts[k]
        b = m - a
        x, y = ((m - 1) / m * (a + b * x) + a * b / m * y) / D, (a + b * x) / m**2 + (b / m) ** 2 * y
        xs[k], ys[k] = x, y
    return xs[g], ys[g]


def _counts(n_real, samples: int, G: int) -> np.ndarray:
    """Real points of each generation's batch: one count for all, or a schedule of G counts (entry g for
    generation g; entry 0 plays no role, generation 0 being the all-real first fit)."""
    counts = np.broadcast_to(np.asarray(n_real, dtype=np.int64), (G,)) if np.ndim(n_real) == 0 else np.asarray(n_real)
    if np.ndim(n_real) and len(counts) < G:
        raise ValueError(f"a schedule of n_real needs {G} entries, got {len(counts)}")
    if np.any((counts < 0) | (counts > samples)):
        raise ValueError(f"n_real must be in [0, samples], got {n_real} with samples={samples}")
    return counts.astype(np.int64)


def gaussian_fresh_var_ratio(g, samples: int, n_real: int, estimator: str = "mle") -> np.ndarray:
    """E[var_ratio] with fresh real data (replace, real=fresh, scale 1): x_g of :func:`gaussian_fresh_moments`.

    Any dimension and any isotropic Gaussian source (var_ratio is scale-free).
    """
    return gaussian_fresh_moments(g, samples, n_real, estimator)[0]


def gaussian_fresh_mean_err(g, samples: int, n_real: int, dim: int = 1, estimator: str = "mle") -> np.ndarray:
    """E[mean_err] with fresh real data from N(mu0, I_d): d * y_g of :func:`gaussian_fresh_moments`."""
    return dim * gaussian_fresh_moments(g, samples, n_real, estimator)[1]


def gaussian_fresh_stationary(samples: int, n_real: int, estimator: str = "mle") -> tuple[float, float]:
    """Fixed point (x*, y*) of the recursion in :func:`gaussian_fresh_moments` (needs n_real >= 1).

    Solves x = [(M-1)/M (a + b x) + (ab/M) y]/D, y = (a + b x)/M^2 + (b/M)^2 y. Returns the stationary
    E[var_ratio] and E[mean_err]/(d s^2). For the MLE, x* = a (M - 1 + b) / (M^2 - b (M - 1 - a)) and
    y* = 1 - x*: M = 20, a = 5 gives x* = 17/19 ~ 0.895 (below 1, increasing with a up to (M-1)/M at
    a = M), against x -> 0 for a = 0.
    """
    m = float(samples)
    a = float(n_real)
    if not 1 <= a <= m:
        raise ValueError("the stationary point exists for 1 <= n_real <= samples")
    b = m - a
    D = _divisor(int(samples), estimator)
    A = np.array([[1.0 - (m - 1) / m * b / D, -a * b / (m * D)],
                  [-b / m**2, 1.0 - (b / m) ** 2]])
    rhs = np.array([(m - 1) / m * a / D, a / m**2])
    x, y = np.linalg.solve(A, rhs)
    return float(x), float(y)


# ----------------------------------------------------------------- Gaussian, weighted real data (He et al.)
def _weighted_step(x, y, a: int, b: int, w: float, D: float, m: int):
    """One step of :func:`gaussian_weighted_moments` (the pooled step when a part is empty)."""
    if a == 0 or b == 0:
        return ((m - 1) / m * (a + b * x) + a * b / m * y) / D, (a + b * x) / m**2 + (b / m) ** 2 * y
    x_new = m / D * (w * (a - 1) / a + (1 - w) * (b - 1) / b * x + w * (1 - w) * (1 / a + x / b + y))
    y_new = w * w / a + (1 - w) ** 2 * (x / b + y)
    return x_new, y_new


def gaussian_weighted_moments(g, samples: int, n_real, real_weight: float, estimator: str = "mle"):
    """Exact (E[tr S_g]/(d s^2), E||mu_g - mu0||^2/(d s^2)) when the fit weighs its real part w (``loop.real_weight``).

    Setting: He, Xu & Cheng (2025), "Golden ratio weighting prevents model collapse": ``loop.synthetic=replace``,
    ``loop.real=fresh``, ``sampling.scale=1``, source N(mu0, s^2 I_d). A batch has a fresh real points (mean r, scatter
    W_r) and b = M - a points drawn from N(mu, S) (mean t, scatter W_t). The weighted maximum likelihood fit with row
    weights w M / a (real) and (1 - w) M / b (synthetic) is

        mu_g = w r + (1 - w) t,
        S_g  = M / D [w W_r / a + (1 - w) W_t / b + w (1 - w) (r - t)(r - t)^T],     D = M (mle) or M - 1,

    since r - mu_g = (1 - w)(r - t) and t - mu_g = w (t - r). In units mu0 = 0, s = 1 with x = E[tr S]/d and
    y = E||mu||^2/d, E[W_r] = (a - 1) I, E[W_t] = (b - 1) S and E(r - t)(r - t)^T = I/a + S/b + mu mu^T give

        x_g = M / D [w (a - 1)/a + (1 - w)(b - 1)/b x + w (1 - w)(1/a + x/b + y)],
        y_g = w^2 / a + (1 - w)^2 (x/b + y),                          x_{-1} = 1, y_{-1} = 0.

    At w = a / M this is :func:`gaussian_fresh_moments` (the pooled fit). ``n_real`` may be a schedule (one count
    per generation); a batch with an empty part is the pooled step. ``var_ratio = x``, ``mean_err = d s^2 y``.
    """
    g = np.asarray(g)
    fits(g)
    m = int(samples)
    w = float(real_weight)
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"real_weight must be in [0, 1], got {real_weight}")
    G = int(g.max()) + 1 if g.size else 0
    counts = _counts(n_real, m, G)
    D = _divisor(m, estimator)
    xs, ys = np.empty(G), np.empty(G)
    x, y = 1.0, 0.0
    for k in range(G):
        x, y = _weighted_step(x, y, int(counts[k]), m - int(counts[k]), w, D, m) if k else (
            (m - 1) / D, 1.0 / m)  # generation 0: the all-real first fit
        xs[k], ys[k] = x, y
    return xs[g], ys[g]


def gaussian_weighted_stationary(samples: int, n_real: int, real_weight: float,
                                 estimator: str = "mle") -> tuple[float, float]:
    """Fixed point (x*, y*) of :func:`gaussian_weighted_moments` for 1 <= n_real <= samples - 1 and w > 0: the
    stationary E[var_ratio] and E[mean_err]/(d s^2), from the 2 x 2 linear system of its recursion."""
    m, a = int(samples), int(n_real)
    b, w = m - a, float(real_weight)
    if not (1 <= a <= m - 1 and 0.0 < w <= 1.0):
        raise ValueError("the stationary point needs 1 <= n_real <= samples - 1 and 0 < real_weight <= 1")
    c = m / _divisor(m, estimator)
    A = np.array([[1.0 - c * ((1 - w) * (b - 1) / b + w * (1 - w) / b), -c * w * (1 - w)],
                  [-(1 - w) ** 2 / b, 1.0 - (1 - w) ** 2]])
    rhs = np.array([c * (w * (a - 1) / a + w * (1 - w) / a), w * w / a])
    x, y = np.linalg.solve(A, rhs)
    return float(x), float(y)


def weighted_mean_err_known_var(n_real: int, n_syn: int, real_weight: float) -> float:
    """Stationary E||mu - mu0||^2 / (d s^2) of the weighted mean when the variance is known (not refit):
    e_g = w (r - mu0) + (1 - w)(e_{g-1} + t - mu_{g-1}) gives y* = (w^2/a + (1 - w)^2/b) / (1 - (1 - w)^2)
    (He, Xu & Cheng 2025)."""
    a, b, w = float(n_real), float(n_syn), float(real_weight)
    if not (a > 0 and b > 0 and 0.0 < w <= 1.0):
        raise ValueError("needs n_real > 0, n_syn > 0 and 0 < real_weight <= 1")
    return (w * w / a + (1 - w) ** 2 / b) / (1.0 - (1 - w) ** 2)


def optimal_real_weight(n_real: int, n_syn: int, variance: str = "known", estimator: str = "mle") -> float:
    """The w minimising the stationary mean error. ``variance="known"``: the root of w^2 + r w - r = 0 with
    r = n_real / n_syn (d y*/dw = 0 of :func:`weighted_mean_err_known_var`), w* = (sqrt(r^2 + 4 r) - r) / 2, the
    golden ratio conjugate (sqrt(5) - 1)/2 = 0.618 at n_real = n_syn (He, Xu & Cheng 2025). ``variance="fitted"``:
    the minimiser of y* of :func:`gaussian_weighted_stationary` (the covariance refit too, as model=gaussian does),
    found numerically; it tends to the known-variance value as the batch grows."""
    a, b = int(n_real), int(n_syn)
    if variance == "known":
        r = a / b
        return float((math.sqrt(r * r + 4 * r) - r) / 2)
    if variance != "fitted":
        raise ValueError("variance must be 'known' or 'fitted'")
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(lambda w: gaussian_weighted_stationary(a + b, a, w, estimator)[1], bounds=(1e-6, 1.0),
                          method="bounded", options={"xatol": 1e-10})
    return float(res.x)


# ------------------------------------------------------------------------------------- linear regression
def gaussian_ecosystem_moments(g, samples: int, n_real, mixing, estimator: str = "mle") -> dict:
    """Exact moments of M Gaussian lineages sharing a pool of synthetic data (``loop.models`` = M).

    Setting: ``loop.synthetic=replace``, ``loop.real=fresh``, ``sampling.scale=1``, source N(mu0, s^2 I_d). Lineage
    i's batch has a = n_real fresh real points and b = m - a points drawn independently from the mixture
    sum_j pi_ij N(mu_j, S_j) of all lineages' previous models (pi = ``mixing``, rows summing to 1); the fit is
    mu_i' = batch mean, S_i' = batch scatter / D (D = m for MLE, m - 1 unbiased). Units: mu0 = 0, s = 1, and
    per dimension (the chain is coordinate-separable: each coordinate's marginal follows the 1-D chain, so traces
    add). Track e_i = E[tr S_i]/d and C_ij = E<mu_i, mu_j>/d.

    Derivation (conditional on generation g-1). The mixture of lineage i has mean n_i = sum_j pi_ij mu_j and
    per-coordinate variance V_i = sum_j pi_ij (S_j + mu_j^2) - n_i^2. The batch mean has E = (b/m) n_i and
    variance (a + b V_i)/m^2; lineages' batches are independent given the previous models. As in
    :func:`gaussian_fresh_moments`, E[scatter] = (m-1)/m (a + b V_i) + (ab/m) n_i^2. Taking expectations, with
    P = pi C pi^T and E V_i = sum_j pi_ij (e_j + C_jj) - P_ii (all linear in (e, C)):

        C'_ii = (a + b E V_i)/m^2 + (b/m)^2 P_ii,      C'_ik = (b/m)^2 P_ik (i != k),
        e'_i  = [(m-1)/m (a + b E V_i) + (ab/m) P_ii] / D,

    from (e, C) = (1, 0), the truth, so generation 0 is every lineage's all-real first fit. M = 1 (pi = 1) is
    :func:`gaussian_fresh_moments`. ``n_real`` may be a schedule (one count per generation).

    Returns arrays over g: ``var_ratio`` (mean over lineages of e_i), ``mean_err`` (mean of C_ii; times d s^2 in
    data units), ``spread`` = mean_i C_ii - mean_ik C_ik (E (1/M) sum ||mu_i - mu_bar||^2 / (d s^2)),
    ``pool_var_ratio`` = var_ratio + spread (the pooled population's tr S_pool / (d s^2)), and per lineage
    ``lineage_var_ratio`` (G, M) and ``lineage_mean_err`` (G, M).
    """
    g = np.asarray(g)
    fits(g)
    pi = np.asarray(mixing, dtype=float)
    if pi.ndim != 2 or pi.shape[0] != pi.shape[1] or np.any(pi < 0) or np.any(np.abs(pi.sum(1) - 1) > 1e-9):
        raise ValueError("mixing must be an M x M matrix of non-negative rows summing to 1")
    m, M = int(samples), pi.shape[0]
    G = int(g.max()) + 1 if g.size else 0
    counts = _counts(n_real, m, G)
    D = _divisor(m, estimator)
    e, C = np.ones(M), np.zeros((M, M))
    out = {k: np.empty(G) for k in ("var_ratio", "mean_err", "spread", "pool_var_ratio")}
    lin_v, lin_m = np.empty((G, M)), np.empty((G, M))
    for k in range(G):
        a = counts[k]
        b = m - a
        P = pi @ C @ pi.T
        EV = pi @ (e + np.diag(C)) - np.diag(P)
        C_new = (b / m) ** 2 * P
        np.fill_diagonal(C_new, (a + b * EV) / m**2 + (b / m) ** 2 * np.diag(P))
        e = ((m - 1) / m * (a + b * EV) + a * b / m * np.diag(P)) / D
        C = C_new
        lin_v[k], lin_m[k] = e, np.diag(C)
        out["var_ratio"][k] = e.mean()
        out["mean_err"][k] = np.diag(C).mean()
        out["spread"][k] = np.diag(C).mean() - C.mean()
    out["pool_var_ratio"] = out["var_ratio"] + out["spread"]
    res = {k: v[g] for k, v in out.items()}
    res["lineage_var_ratio"], res["lineage_mean_err"] = lin_v[g], lin_m[g]
    return res


def _linreg_unit(dim: int, design_size: int, noise_var: float) -> float:
    """s^2 E[tr (X^T X)^-1] = s^2 d / (T - d - 1) for X with N(0, 1) entries (inverse-Wishart mean)."""
    if design_size < dim + 2:
        raise ValueError("needs design_size >= dim + 2")
    return noise_var * dim / (design_size - dim - 1.0)


def linreg_test_error(g, dim: int, design_size: int, noise_var: float, mode: str = "replace") -> np.ndarray:
    """E[test_error] = E||w_n - w*||^2 for OLS refit on its own labels, n = g + 1.

    Labels of generation n are X w_{n-1} + N(0, s^2) with w_0 = w* (``model.label_noise=source``), no
    ridge, ``sampling.scale=1``, ``real_fraction=0``, X with N(0, 1) entries (T x d).
      replace:    n s^2 d / (T - d - 1)                            (Gerstgrasser et al. 2024, Thm 1;
                  Dohmatob et al. 2024). Also holds with a fresh design each generation.
      accumulate: s^2 d / (T - d - 1) * sum_{i=1..n} 1/i^2         (Gerstgrasser et al. 2024, Thm 2;
                  fixed design), bounded by :func:`linreg_accumulate_bound`.
    d = 10, T = 100, s^2 = 1, n = 20: 2.247 (replace), 0.1793 (accumulate).
    """
    n = fits(g)
    unit = _linreg_unit(dim, design_size, noise_var)
    if mode == "replace":
        return unit * n
    if mode == "accumulate":
        # sum_{i=1..n} 1/i^2 = pi^2/6 - psi'(n + 1)
        return unit * (math.pi**2 / 6.0 - polygamma(1, n + 1.0))
    raise ValueError(f"mode must be 'replace' or 'accumulate', got {mode!r}")


def linreg_accumulate_bound(dim: int, design_size: int, noise_var: float) -> float:
    """(pi^2/6) s^2 d / (T - d - 1): the accumulate test error's bound for every n (Gerstgrasser et al.
    2024, Thm 2). d = 10, T = 100, s^2 = 1: 0.1848."""
    return math.pi**2 / 6.0 * _linreg_unit(dim, design_size, noise_var)


# ------------------------------------------------------------------------------------------- categorical
def zipf_probs(categories: int, exponent: float) -> np.ndarray:
    """Zipf truth p0_k = k^-s / sum_j j^-s, k = 1..K (index 0 is the most likely category); the same
    definition as the ``zipf`` source."""
    w = np.arange(1, int(categories) + 1, dtype=np.float64) ** (-float(exponent))
    return w / w.sum()


def categorical_support_one_fit(p0, samples: int) -> float:
    """E[support] after one fit (generation 0) = sum_k [1 - (1 - p0_k)^M]: category k survives unless all
    M draws miss it. Empirical frequencies, no smoothing. K = 1000, p0 ~ k^-1.1, M = 10^4: 837.7.
    Along a fully synthetic chain support can only fall (zero is absorbing; Shumailov et al. 2024)."""
    p0 = np.asarray(p0, dtype=np.float64)
    return float(np.sum(-np.expm1(samples * np.log1p(-p0))))


def categorical_gini_simpson(g, p0, samples: int) -> np.ndarray:
    """E[gini_simpson] = E[1 - sum p_n^2] = (1 - 1/M)^n (1 - sum p0^2), n = g + 1.

    Fully synthetic categorical loop (replace, real_fraction 0, no smoothing, sampling.scale 1): from
    E[sum_k p_{n,k}^2 | p] = (1 - 1/M) sum p^2 + 1/M (multinomial second moments); the heterozygosity decay
    of the Wright-Fisher model, cf. Shumailov et al. (Nature 2024), Sec. 3.1.
    """
    n = fits(g)
    p0 = np.asarray(p0, dtype=np.float64)
    return np.exp(n * math.log1p(-1.0 / samples)) * (1.0 - float(np.sum(p0**2)))


def categorical_fresh_gini_simpson(g, p0, samples: int, n_real: int) -> np.ndarray:
    """E[gini_simpson] with fresh real data (replace, real=fresh, no smoothing, scale 1).

    A batch holds a = n_real draws from p0 and b = M - a draws from p_{g-1}; p_g = (a q_r + b q_s)/M with
    q the empirical frequencies. Since E[p_g] = p0 for every g and multinomial moments give
    E[q_k^2] = q_k^2 (1 - 1/n) + q_k / n, with Q = E[sum p^2] and Q0 = sum p0^2:

        M^2 Q_g = a (1 - Q0) + b (1 - Q_{g-1}) + (a^2 + 2ab) Q0 + b^2 Q_{g-1},    Q_{-1} = Q0,

    and gini_simpson = 1 - Q_g. For a = 0 this is :func:`categorical_gini_simpson`.
    """
    g = np.asarray(g)
    fits(g)
    m = int(samples)
    q0 = float(np.sum(np.asarray(p0, dtype=np.float64) ** 2))
    G = int(g.max()) + 1 if g.size else 0
    counts = _counts(n_real, m, G)  # a schedule: a = n_real[g] in generation g's step
    out = np.empty(G)
    q = q0
    for k in range(G):
        a = int(counts[k])
        b = m - a
        q = (a * (1 - q0) + b * (1 - q) + (a * a + 2 * a * b) * q0 + b * b * q) / m**2
        out[k] = 1.0 - q
    return out[g]


# --------------------------------------------------------------------- counting chains (Suresh et al. 2024)
def poisson_extinct_one(g) -> np.ndarray:
    """q_g = P(S_g = 0 | S_0 = 1) of the counting chain S_k | S_{k-1} ~ Poisson(S_{k-1}): q_0 = 0,
    q_k = exp(q_{k-1} - 1) (the generating function of Poisson(1) offspring iterated: a critical Galton-Watson
    process), with 1 - q_k ~ 2 / k for large k."""
    g = np.asarray(g)
    G = int(g.max()) + 1 if g.size else 0
    q = np.zeros(G)
    for k in range(1, G):
        q[k] = math.exp(q[k - 1] - 1.0)
    return q[g]


def poisson_extinct(g, samples: int, rate: float) -> np.ndarray:
    """E[extinct_g] = P(fitted rate = 0 at generation g) of the fully synthetic Poisson chain (replace, no real
    data): with n = ``samples``, S_g = n rate_g satisfies S_g | S_{g-1} ~ Poisson(S_{g-1}) and S_0 ~ Poisson(n rate),
    so P(S_g = 0) = E[q_g^{S_0}] = exp(n rate (q_g - 1)) with q_g of :func:`poisson_extinct_one`
    (Suresh, Thangaraj & Khandavally 2024, "Rate of model collapse in recursive training"). The rate survives
    k generations with probability 1 - exp(-n rate (1 - q_k)) ~ 2 n rate / k for k >> n rate."""
    g = np.asarray(g)
    return np.exp(float(samples) * float(rate) * (poisson_extinct_one(g) - 1.0))


def poisson_rate_ratio_var(g, samples: int, rate: float) -> np.ndarray:
    """Var(rate_ratio_g) = (g + 1) / (n rate) in the same chain (E[rate_ratio_g] = 1: a martingale). From
    Var(S_g) = Var(S_{g-1}) + E[S_{g-1}] and E[S] = n rate."""
    return (fits(g)) / (float(samples) * float(rate))


def poisson_forgotten(g, count: int) -> np.ndarray:
    """P(an event seen ``count`` times at generation 0 is forgotten by generation g) = q_g^count: each of its
    ``count`` ancestors' lines must die out (independent Poisson(1) branching)."""
    return poisson_extinct_one(g) ** int(count)


def wright_fisher_matrix(samples: int) -> np.ndarray:
    """P[i, j] = Binom(j; M, i / M): the count of one symbol from generation to generation when each generation
    draws M points from the previous one's empirical frequencies (replace, no real data, no smoothing)."""
    from scipy.stats import binom

    M = int(samples)
    i = np.arange(M + 1)
    return binom.pmf(i[None, :], M, i[:, None] / M)


MAX_WF = 2000  # largest batch for which the exact Wright-Fisher forms are computed ((M + 1)^2 matrices)


def symbol_survival(g, samples: int) -> np.ndarray:
    """s_g(c) = P(C_g > 0 | C_0 = c), shape (len(g), M + 1): the probability that a symbol seen c times at generation
    0 still has probability > 0 at generation g (exact: s_0 = 1{c > 0}, s_g = P s_{g-1} with
    :func:`wright_fisher_matrix`)."""
    g = np.asarray(g)
    M = int(samples)
    if M > MAX_WF:
        raise ValueError(f"the exact Wright-Fisher forms are computed for samples <= {MAX_WF}")
    P = wright_fisher_matrix(M)
    G = int(g.max()) + 1 if g.size else 0
    s = (np.arange(M + 1) > 0).astype(np.float64)
    out = np.empty((G, M + 1))
    for k in range(G):
        out[k] = s
        s = P @ s
    return out[g]


def categorical_support(g, p0, samples: int) -> np.ndarray:
    """E[support_g] = sum_k sum_c Binom(c; M, p0_k) s_g(c) of the fully synthetic categorical chain (replace,
    real_fraction 0, no smoothing, scale 1): each symbol's count is its own Wright-Fisher chain, started from
    generation 0's Binom(M, p0_k) draw (:func:`symbol_survival`). At g = 0 it is :func:`categorical_support_one_fit`.
    Shumailov et al. (2024) and Suresh et al. (2024): support only falls; a symbol of count c lives about 2c ln(M/c)
    generations when rare."""
    from scipy.stats import binom

    p0 = np.asarray(p0, dtype=np.float64)
    M = int(samples)
    start = binom.pmf(np.arange(M + 1)[None, :], M, p0[:, None])  # (K, M + 1)
    weight = start.sum(0)  # expected number of symbols with each starting count
    return symbol_survival(g, M) @ weight


def absorption_time(samples: int) -> np.ndarray:
    """E[T | C_0 = c] for c = 0..M: generations until a symbol's count reaches 0 (lost) or M (it is all that is
    left), from (I - Q) t = 1 over the transient counts 1..M-1 of :func:`wright_fisher_matrix`."""
    M = int(samples)
    P = wright_fisher_matrix(M)
    Q = P[1:M, 1:M]
    t = np.zeros(M + 1)
    t[1:M] = np.linalg.solve(np.eye(M - 1) - Q, np.ones(M - 1))
    return t


def forgetting_time(samples: int) -> np.ndarray:
    """E[T | C_0 = c, the symbol is lost] for c = 0..M-1 (index M: NaN, it is never lost): the expected generations
    until a symbol seen c times at generation 0 is forgotten, given that it is (probability 1 - c/M). The chain
    conditioned on loss (Doob's h-transform, h(i) = 1 - i/M) moves with Q'(i, j) = P(i, j) h(j) / h(i), and
    (I - Q') t = 1 over i = 1..M-1 gives t. For c << M it grows about linearly in c (Suresh et al. 2024)."""
    M = int(samples)
    P = wright_fisher_matrix(M)
    h = 1.0 - np.arange(M + 1) / M
    idx = np.arange(1, M)
    Qc = P[np.ix_(idx, idx)] * h[idx][None, :] / h[idx][:, None]
    t = np.full(M + 1, np.nan)
    t[0] = 0.0
    t[1:M] = np.linalg.solve(np.eye(M - 1) - Qc, np.ones(M - 1))
    return t


# -------------------------------------------------------------------------------------------- dispatcher
def _section(cfg: Mapping, key: str) -> Mapping:
    sec = cfg.get(key)
    return sec if sec is not None else {}


def _num(x) -> float | None:
    """A finite real scalar as float, else None (lists, strings, None)."""
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def theory_curves(cfg: Mapping[str, Any], generations: int) -> dict[str, np.ndarray]:
    """Expected metric per generation (g = 0 .. generations-1) for every metric with a closed form here.

    ``cfg`` is a plain nested mapping (a composed config works: only ``.get`` is used). Keys are metric
    column names; an empty dict means no closed form applies. Strict: a curve is returned only when every
    assumption of its formula holds for the config. Covered cases:

    Gaussian family on a ``gaussian`` source N(mean, scale^2 I_d) (any mean and scale; mean_err and
    frechet are multiplied by scale^2), estimator ``mle`` or ``unbiased``, ``samples >= dim + 1``:
    - replace, real_fraction 0, sampling.scale 1: ``var_ratio``, ``mean_err``, ``logdet_ratio``,
      ``frechet`` (d = 1 only);
    - replace, real=fresh, 0 < n_real < samples, sampling.scale 1: ``var_ratio``, ``mean_err``
      (:func:`gaussian_fresh_moments`);
    - replace, n_real = samples (every generation is a fit on M real points, fresh or the same fixed
      ones; synthetic data and sampling.scale play no role): the one-fit value of all four, constant.
    Categorical family (no smoothing) on a ``zipf`` source:
    - ``support`` at g = 0 (generation 0 is always fit on M real draws), NaN after, except constant
      when replace and n_real = samples;
    - ``gini_simpson``: replace with real_fraction 0 and sampling.scale 1; replace, fresh,
      0 < n_real < samples, scale 1; replace with n_real = samples.
    Linear regression (ridge 0, ``label_noise=source``) on a ``linear`` source, design_size = samples:
    - ``test_error``: real_fraction 0 and sampling.scale 1 with replace (fixed or fresh design) or
      accumulate (fixed design); replace with n_real = samples (constant one-fit value).
    Everything else (accumulate/subsample for Gaussian and categorical, fixed real data with
    0 < real_fraction < 1, sampling.scale != 1, smoothing, ridge, fitted label noise, other sources or
    families) returns {}, and so does any curated run (``curation.name`` other than none: the forms assume every
    synthetic point enters the batch as drawn), except the task loop:
    ``source=task`` / ``model=answers``: :func:`collapse.task_theory.task_curves` (verified best-of-k included).
    """
    G = int(generations)
    if (_section(cfg, "source").get("name"), _section(cfg, "model").get("name")) == ("task", "answers"):
        from collapse.task_theory import task_curves  # verified self-training: curation is part of its loop
        return task_curves(cfg, G)
    if G < 1 or _section(cfg, "curation").get("name", "none") not in ("none", None):
        return {}
    g = np.arange(G)
    src, model, loop, sampling = (_section(cfg, k) for k in ("source", "model", "loop", "sampling"))
    models = loop.get("models", 1)
    if models is not None and models != 1:  # an ecosystem: M lineages sharing a pool
        return _ecosystem_curves(cfg, G, g)

    M = loop.get("samples")
    if isinstance(M, bool) or not isinstance(M, (int, np.integer)) or M < 1:
        return {}
    M = int(M)
    synthetic = loop.get("synthetic", "replace")
    real = loop.get("real", "fresh")
    pair = (src.get("name"), model.get("name"))
    scheduled = _schedule_curves(cfg, pair, M, G, g)
    if scheduled is not None:
        return scheduled
    rf = _num(loop.get("real_fraction", 0.0))
    scale = _num(sampling.get("scale", 1.0))
    if rf is None or not 0.0 <= rf <= 1.0 or scale is None or scale <= 0:
        return {}
    n_real = n_real_of(rf, M)
    if 0.0 < rf < 1.0 and n_real in (0, M):
        return {}  # collapse.config refuses such a fraction (it rounds to no real or no synthetic point)
    if real not in ("fresh", "fixed") or synthetic not in ("replace", "accumulate", "accumulate_subsample"):
        return {}
    replace = synthetic == "replace"
    all_real = replace and n_real == M                      # every generation: one fit on M real points
    fully_synthetic = n_real == 0 and scale == 1.0           # the closed forms' loop (per synthetic mode)
    fresh_mix = replace and real == "fresh" and 0 < n_real < M and scale == 1.0
    weight = _num(loop.get("real_weight"))
    if loop.get("real_weight") is not None:  # the weighted fit (He et al. 2025): the Gaussian chain only
        if weight is None or not (fresh_mix and pair == ("gaussian", "gaussian")):
            return {}
        return _gaussian_weighted(src, model, M, n_real, weight, g)

    if pair == ("gaussian", "gaussian"):
        return _gaussian_curves(src, model, M, n_real, g, replace, all_real, fully_synthetic, fresh_mix)
    if pair == ("zipf", "categorical"):
        return _categorical_curves(src, model, M, n_real, g, replace, all_real, fully_synthetic, fresh_mix)
    if pair == ("linear", "linear_regression"):
        return _linreg_curves(src, model, M, g, synthetic, all_real, fully_synthetic)
    if pair == ("poisson", "poisson"):
        rate = _num(src.get("rate", 1.0))
        if rate is None or rate <= 0:
            return {}
        if all_real:
            return {"extinct": np.full(g.shape, math.exp(-M * rate)), "rate_ratio": np.ones(g.shape)}
        if replace and fully_synthetic:
            return {"extinct": poisson_extinct(g, M, rate), "rate_ratio": np.ones(g.shape)}
    return {}


def _schedule_curves(cfg, pair, M: int, G: int, g) -> dict | None:
    """Curves of a run whose ``loop.real_fraction`` or ``sampling.scale`` follows a schedule (None: neither does).
    Covered: replace, fresh real data, every scale 1: the Gaussian chain (:func:`gaussian_fresh_moments`, or
    :func:`gaussian_weighted_moments` with ``loop.real_weight``) and the categorical Gini-Simpson index
    (:func:`categorical_fresh_gini_simpson`), each with a = n_real(g) in generation g's step."""
    from collapse import schedules

    loop, sampling = _section(cfg, "loop"), _section(cfg, "sampling")
    frac, scale = loop.get("real_fraction", 0.0), sampling.get("scale", 1.0)
    if not (schedules.is_schedule(frac) or schedules.is_schedule(scale)):
        return None
    try:
        fr = schedules.values("loop.real_fraction", frac, G) if schedules.is_schedule(frac) else np.full(G, float(frac))
        sc = schedules.values("sampling.scale", scale, G) if schedules.is_schedule(scale) else np.full(G, float(scale))
    except Exception:  # (an invalid schedule: collapse.config refuses it)
        return {}
    if (loop.get("synthetic", "replace") != "replace" or loop.get("real", "fresh") != "fresh"
            or np.any(sc[1:] != 1.0) or np.any((fr < 0) | (fr > 1))):
        return {}
    counts = np.array([n_real_of(float(v), M) for v in fr])
    if pair == ("gaussian", "gaussian"):
        weight = loop.get("real_weight")
        if weight is not None:
            return _gaussian_weighted(_section(cfg, "source"), _section(cfg, "model"), M, counts, float(weight), g)
        return _gaussian_curves(_section(cfg, "source"), _section(cfg, "model"), M, counts, g, True, False, False,
                                True)
    if pair == ("zipf", "categorical") and loop.get("real_weight") is None:
        out = _categorical_curves(_section(cfg, "source"), _section(cfg, "model"), M, counts, g, True, False, False,
                                  True)
        return {k: v for k, v in out.items() if k == "gini_simpson"}
    return {}


def _ecosystem_curves(cfg, G: int, g) -> dict:
    """Curves of M Gaussian lineages sharing a pool (:func:`gaussian_ecosystem_moments`): replace, fresh real data,
    every scale 1, no real_weight, a gaussian source and family; a real-fraction schedule is allowed. Per-lineage
    columns ``lineage<i>/var_ratio`` and ``lineage<i>/mean_err`` too."""
    from collapse import schedules
    from collapse.ecosystem import mixing_matrix

    src, model, loop, sampling = (_section(cfg, k) for k in ("source", "model", "loop", "sampling"))
    M, models = loop.get("samples"), loop.get("models")
    if ((src.get("name"), model.get("name")) != ("gaussian", "gaussian") or loop.get("real_weight") is not None
            or loop.get("synthetic", "replace") != "replace" or loop.get("real", "fresh") != "fresh"
            or not isinstance(M, (int, np.integer)) or not isinstance(models, (int, np.integer)) or models < 1):
        return {}
    frac, scale = loop.get("real_fraction", 0.0), sampling.get("scale", 1.0)
    try:
        fr = schedules.values("loop.real_fraction", frac, G) if schedules.is_schedule(frac) else np.full(G, float(frac))
        sc = schedules.values("sampling.scale", scale, G) if schedules.is_schedule(scale) else np.full(G, float(scale))
        pi = mixing_matrix(int(models), loop.get("mixing"))
    except Exception:  # (an invalid key: collapse.config refuses it)
        return {}
    est, d, s = model.get("estimator", "mle"), src.get("dim", 1), _num(src.get("scale", 1.0))
    if (np.any(sc[1:] != 1.0) or est not in ESTIMATORS or not isinstance(d, (int, np.integer)) or isinstance(d, bool)
            or M < d + 1 or not s):
        return {}
    counts = np.array([n_real_of(float(v), int(M)) for v in fr])
    r = gaussian_ecosystem_moments(g, int(M), counts, pi, est)
    unit = s * s * int(d)
    out = {"var_ratio": r["var_ratio"], "mean_err": unit * r["mean_err"], "spread": r["spread"],
           "pool_var_ratio": r["pool_var_ratio"]}
    for i in range(int(models)):
        out[f"lineage{i}/var_ratio"] = r["lineage_var_ratio"][:, i]
        out[f"lineage{i}/mean_err"] = unit * r["lineage_mean_err"][:, i]
    return out


def _gaussian_weighted(src, model, M, n_real, weight, g) -> dict:
    """var_ratio and mean_err of the weighted fit (:func:`gaussian_weighted_moments`), source N(mean, s^2 I_d)."""
    est, d, s = model.get("estimator", "mle"), src.get("dim", 1), _num(src.get("scale", 1.0))
    if est not in ESTIMATORS or not isinstance(d, (int, np.integer)) or isinstance(d, bool) or M < d + 1 or not s:
        return {}
    x, y = gaussian_weighted_moments(g, M, n_real, weight, est)
    return {"var_ratio": x, "mean_err": s * s * int(d) * y}


def _gaussian_curves(src, model, M, n_real, g, replace, all_real, fully_synthetic, fresh_mix):
    est = model.get("estimator", "mle")
    d = src.get("dim", 1)
    s = _num(src.get("scale", 1.0))
    if (est not in ESTIMATORS or isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1
            or M < d + 1 or s is None or s <= 0 or _num(src.get("mean", 0.0)) is None):
        return {}
    d = int(d)
    s2 = s * s
    if all_real or (replace and fully_synthetic):
        gg = np.zeros_like(g) if all_real else g
        out = {
            "var_ratio": gaussian_var_ratio(gg, M, est),
            "mean_err": s2 * gaussian_mean_err(gg, M, d, est),
            "logdet_ratio": gaussian_logdet_ratio(gg, M, d, est),
        }
        if d == 1:
            out["frechet"] = s2 * gaussian_w2_1d(gg, M, est)
        return out
    if fresh_mix:
        x, y = gaussian_fresh_moments(g, M, n_real, est)
        return {"var_ratio": x, "mean_err": s2 * d * y}
    return {}


def _categorical_curves(src, model, M, n_real, g, replace, all_real, fully_synthetic, fresh_mix):
    smoothing = _num(model.get("smoothing", 0.0))
    K = src.get("categories", 1000)
    a = _num(src.get("exponent", 1.1))
    if smoothing != 0.0 or a is None or isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1:
        return {}
    p0 = zipf_probs(int(K), a)
    support = np.full(g.shape, np.nan)
    support[0] = categorical_support_one_fit(p0, M)
    if all_real:
        support[:] = support[0]
        return {"support": support, "gini_simpson": categorical_gini_simpson(np.zeros_like(g), p0, M)}
    out = {"support": support}
    if replace and fully_synthetic:
        out["gini_simpson"] = categorical_gini_simpson(g, p0, M)
        if M <= MAX_WF:  # every generation: the symbols' Wright-Fisher chains
            out["support"] = categorical_support(g, p0, M)
    elif fresh_mix:
        out["gini_simpson"] = categorical_fresh_gini_simpson(g, p0, M, n_real)
    return out


def _linreg_curves(src, model, M, g, synthetic, all_real, fully_synthetic):
    d = src.get("dim", 10)
    T = src.get("design_size")
    T = M if T is None else T
    s2 = _num(src.get("noise_var", 1.0))
    design = src.get("design", "fixed")
    ridge = _num(model.get("ridge", 0.0))
    if (isinstance(d, bool) or not isinstance(d, (int, np.integer)) or isinstance(T, bool)
            or not isinstance(T, (int, np.integer)) or T != M or T < d + 2 or s2 is None or s2 < 0
            or ridge != 0.0 or design not in ("fixed", "fresh")):
        return {}
    if all_real:  # every generation is an OLS fit on real labels: the one-fit value
        return {"test_error": linreg_test_error(np.zeros_like(g), int(d), int(T), s2, "replace")}
    if not fully_synthetic or model.get("label_noise", "fitted") != "source":
        return {}
    if synthetic == "replace":  # independent noise increments: fixed or fresh design alike
        return {"test_error": linreg_test_error(g, int(d), int(T), s2, "replace")}
    if synthetic == "accumulate" and design == "fixed":
        return {"test_error": linreg_test_error(g, int(d), int(T), s2, "accumulate")}
    return {}
