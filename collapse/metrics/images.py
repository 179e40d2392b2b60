"""Metrics for image-like data: Gaussian (Frechet) distance of sample sets, mode coverage, class-histogram
distance, and the k-NN sample metrics of :mod:`collapse.metrics.samples` gathered in one call.

Samples are rows of an (n, d) array: raw pixels for small images, or the features of a trained classifier
(:func:`collapse.metrics.features.features`, the analogue of FID's Inception features). Everything is pure
JAX with static shapes (integer arguments are Python ints, static under ``jax.jit``) and no LAPACK calls of
its own (matrix factorizations go through :mod:`collapse.linalg`), so each function can be jitted and vmapped
over a leading replicate axis.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from collapse.metrics.continuous import frechet
from collapse.metrics.samples import sample_metrics

__all__ = [
    "sample_moments",
    "frechet_samples",
    "mode_coverage",
    "class_tv",
    "neural_sample_metrics",
    "NEURAL_KEYS",
]

#: Keys of :func:`neural_sample_metrics`, in order.
NEURAL_KEYS = ("frechet", "precision", "recall", "density", "coverage", "vendi")


def _float2d(x):
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x[:, None] if x.ndim == 1 else x


def sample_moments(x):
    """Sample mean (d,) and unbiased covariance (d, d) of the rows of ``x`` (n, d), n >= 2:
    mean = (1/n) sum_i x_i,  cov = 1/(n - 1) sum_i (x_i - mean)(x_i - mean)^T."""
    x = _float2d(x)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"sample_moments needs at least 2 samples, got {n}")
    mean = jnp.mean(x, axis=0)
    xc = x - mean
    cov = jnp.matmul(xc.T, xc, precision=jax.lax.Precision.HIGHEST) / (n - 1)
    return mean, 0.5 * (cov + cov.T)


def frechet_samples(x, y, ridge: float | None = None):
    """Squared Frechet distance between the Gaussians fitted (:func:`sample_moments`) to ``x`` (n, d) and
    ``y`` (m, d):  ||mu_x - mu_y||^2 + tr(S_x + S_y - 2 (S_x^1/2 S_y S_x^1/2)^1/2)  (FID's formula).

    Both covariances get the same ridge ``eps * I`` first, so that singular ones (dead ReLU features,
    n <= d) still have a Cholesky factor; ``eps = ridge * (tr S_x + tr S_y) / (2 d)``, by default
    ``ridge = 10 d * machine epsilon`` of the dtype (about the round-off of the covariance itself). The
    ridge leaves the distance exactly 0 for equal covariances and changes a coordinate with variances
    (s, 0) by about 2 sqrt(eps s), i.e. relatively by 2 sqrt(ridge) (< 2% in float32 for d <= 64).
    """
    (mx, sx), (my, sy) = sample_moments(x), sample_moments(y)
    d = sx.shape[0]
    if ridge is None:
        ridge = 10.0 * d * float(jnp.finfo(sx.dtype).eps)
    eps = ridge * (jnp.trace(sx) + jnp.trace(sy)) / (2 * d)
    eye = eps * jnp.eye(d, dtype=sx.dtype)
    # The ridge adds 2 d eps to the trace terms and, for equal covariances, exactly as much to the cross
    # term; clip tiny negative round-off.
    return jnp.maximum(frechet(mx, sx + eye, my, sy + eye), 0.0)


def mode_coverage(samples, modes, mode_std, min_share: float = 0.01, radius: float = 3.0):
    """Mode coverage and sample quality against known modes (Srivastava et al. 2017, VEEGAN).

    Each sample x_i goes to its nearest mode k(i) = argmin_k ||x_i - m_k|| if ||x_i - m_k(i)|| <=
    radius * std_k(i), else to no mode. ``mode_std`` is a scalar or one value per mode (K,).

    mode_coverage = (1/K) sum_k 1[ #{i : assigned to k} >= min_share * n ]
        (1 when every mode holds its share of the samples, 1 - 1/K when one mode is missed);
    mode_quality  = (1/n) #{i : assigned to some mode}   (VEEGAN's "high-quality samples").

    ``samples`` (n, d), ``modes`` (K, d). Returns {"mode_coverage": scalar, "mode_quality": scalar}.
    """
    x = _float2d(samples)
    m = _float2d(modes).astype(x.dtype)
    n, K = x.shape[0], m.shape[0]
    std = jnp.broadcast_to(jnp.asarray(mode_std, x.dtype), (K,))
    d2 = jnp.sum((x[:, None, :] - m[None, :, :]) ** 2, axis=-1)  # (n, K), direct form: exact for far points
    nearest = jnp.argmin(d2, axis=1)
    limit = radius * std[nearest]
    within = d2[jnp.arange(n), nearest] <= limit * limit
    counts = jnp.sum(jax.nn.one_hot(nearest, K, dtype=x.dtype) * within[:, None].astype(x.dtype), axis=0)
    covered = counts >= min_share * n
    return {
        "mode_coverage": jnp.mean(covered.astype(x.dtype)),
        "mode_quality": jnp.mean(within.astype(x.dtype)),
    }


def class_tv(pred_labels, real_hist, classes: int):
    """Total variation 0.5 sum_c |h_gen(c) - h_real(c)| between the histogram h_gen of the predicted labels
    ``pred_labels`` (n,) ints in [0, classes) and the real class histogram ``real_hist`` (classes,)
    (counts or frequencies: it is normalized to sum 1). ``classes`` is a static int. In [0, 1]."""
    real = jnp.asarray(real_hist)
    if not jnp.issubdtype(real.dtype, jnp.floating):
        real = real.astype(jnp.result_type(float))
    if real.shape[-1] != classes:
        raise ValueError(f"class_tv: real_hist has {real.shape[-1]} entries, expected classes={classes}")
    labels = jnp.asarray(pred_labels)
    h_gen = jnp.mean(jax.nn.one_hot(labels, classes, dtype=real.dtype), axis=0)
    h_real = real / jnp.sum(real)
    return 0.5 * jnp.sum(jnp.abs(h_gen - h_real))


def neural_sample_metrics(real, fake, knn_k: int, dc_k: int):
    """Sample metrics of ``fake`` (E, d) against ``real`` (H, d), typically classifier features:

    "frechet": :func:`frechet_samples` (fake, real) (FID-style);
    "precision", "recall" (k = ``knn_k``), "density", "coverage" (k = ``dc_k``), "vendi" (RBF kernel,
    bandwidth = median real pairwise distance): :func:`collapse.metrics.samples.sample_metrics`, which
    shares one set of distance matrices among them (its tail index is dropped: the norm of a feature
    vector has no tail to speak of).
    """
    real, fake = _float2d(real), _float2d(fake)
    dtype = jnp.result_type(real.dtype, fake.dtype)
    real, fake = real.astype(dtype), fake.astype(dtype)
    out = sample_metrics(real, fake, knn_k, dc_k)
    out = {k: out[k] for k in NEURAL_KEYS[1:]}
    return {"frechet": frechet_samples(fake, real), **out}
