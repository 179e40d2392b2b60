"""Sample-based quality and diversity metrics: model samples ``fake`` (E, d) vs held-out ``real`` (H, d).

All functions are pure JAX: static shapes (every ``k`` is a Python int, fixed by the caller or derived
from array shapes), no Python branching on traced values, so they can be wrapped in ``jax.jit`` (with the
integer arguments static) and ``jax.vmap`` (over replicates). They compute in the floating dtype of their
inputs (float32 or float64; integer inputs are promoted to JAX's default float) and return scalars of
that dtype.

Distances come from the expansion ``||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b`` (clipped at 0, then square
root), computed after subtracting a common centre from both sets (distances are translation invariant;
centring limits cancellation), with the inner products at ``Precision.HIGHEST`` so GPUs do not fall back to
TF32. Memory is O(E * H) per call, fine for E, H <= a few thousand.

Conventions
- k-NN radius of a point: distance to its k-th nearest neighbour among the *other* points of its own set
  (self excluded by index; an exact duplicate elsewhere in the set still counts at distance 0).
- A point ``y`` is inside the ball of ``x`` when ``||y - x|| <= radius(x)`` (closed ball).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from collapse.linalg import lapack_eigvalsh

__all__ = [
    "pairwise_distances",
    "knn_radii",
    "precision_recall",
    "density_coverage",
    "vendi",
    "vendi_from_kernel",
    "median_pairwise_distance",
    "hill_tail_index",
    "sample_metrics",
    "real_reference",
    "sample_metrics_from",
]


# ----------------------------------------------------------------------------------------------- helpers


def _float(*xs):
    """Cast arrays to their common floating dtype (the input dtype when already floating)."""
    dtype = jnp.result_type(*xs)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    return tuple(jnp.asarray(x, dtype) for x in xs)


def _as_2d(x):
    """(n,) -> (n, 1); (n, d) unchanged (static shape decision)."""
    return x[:, None] if x.ndim == 1 else x


def _sq_dists(a, b):
    """Squared Euclidean distances (n, m): max(||a||^2 + ||b||^2 - 2 a.b, 0)."""
    aa = jnp.sum(a * a, axis=-1)
    bb = jnp.sum(b * b, axis=-1)
    ab = jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST)
    return jnp.maximum(aa[:, None] + bb[None, :] - 2.0 * ab, 0.0)


def _self_sq_dists(x):
    """Squared distances within one set, with an exact-zero diagonal."""
    d2 = _sq_dists(x, x)
    n = x.shape[0]
    return jnp.where(jnp.eye(n, dtype=bool), jnp.zeros((), d2.dtype), d2)


def _check_k(k, n, what):
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
        raise TypeError(f"{what}: k must be a static Python int, got {type(k).__name__}")
    if not 1 <= k <= n - 1:
        raise ValueError(f"{what}: need 1 <= k <= n - 1 = {n - 1}, got k={k}")


def _smallest_offdiag(d, ks):
    """{k: k-th smallest off-diagonal entry of each row} of a self-distance matrix (n, n), for static ks.

    One pass per rank up to max(ks): take each row's minimum, then mask out exactly that entry (its first
    index), so duplicates count separately. O(max(ks) n^2) element-wise work and no sort: XLA's CPU
    ``top_k`` and ``sort`` cost ~5 ms on 256 x 256, this ~0.5-0.9 ms. A row holding a NaN gets NaN.
    """
    n = d.shape[0]
    cols = jnp.arange(n)
    work = jnp.where(jnp.eye(n, dtype=bool), jnp.asarray(jnp.inf, d.dtype), d)
    nan_row = jnp.any(jnp.isnan(d), axis=1)
    work = jnp.where(jnp.isnan(work), jnp.asarray(jnp.inf, d.dtype), work)
    out = {}
    for rank in range(1, max(ks) + 1):
        j = jnp.argmin(work, axis=1)
        if rank in ks:
            out[rank] = jnp.where(nan_row, jnp.asarray(jnp.nan, d.dtype),
                                  jnp.take_along_axis(work, j[:, None], axis=1)[:, 0])
        if rank < max(ks):
            work = jnp.where(cols[None, :] == j[:, None], jnp.asarray(jnp.inf, d.dtype), work)
    return out


def _knn_from_self_dists(d, k):
    """k-th smallest off-diagonal entry of each row of a self-distance matrix (n, n)."""
    return _smallest_offdiag(d, (k,))[k]


def _order_bits(x):
    """Non-negative floats (and +inf) as integers of the same width, in the same order."""
    return jax.lax.bitcast_convert_type(x, {2: jnp.int16, 4: jnp.int32, 8: jnp.int64}[x.dtype.itemsize])


def _kth_smallest_nonneg(bits, rank, dtype):
    """The ``rank``-th smallest (1-based, traced or static) of non-negative floats given as ordered ``bits``
    (:func:`_order_bits`, any shape, may hold +inf), by bisection on the integer order: one compare-and-count
    pass per bit, exact, no sort."""
    top = _order_bits(jnp.asarray(jnp.inf, dtype))
    lo, hi = jnp.asarray(-1, top.dtype), top  # invariant: count(bits <= lo) < rank <= count(bits <= hi)

    def halve(_, bounds):
        lo, hi = bounds
        mid = lo + (hi - lo) // 2
        enough = jnp.sum(bits <= mid) >= rank
        return jnp.where(enough, lo, mid), jnp.where(enough, mid, hi)

    _, hi = jax.lax.fori_loop(0, 8 * dtype.itemsize, halve, (lo, hi))
    return jax.lax.bitcast_convert_type(hi, dtype)


def _mean(mask, dtype):
    return jnp.mean(mask.astype(dtype))


def _median_upper(d):
    """Median of the strictly-upper-triangular entries (pairs i < j) of a non-negative (n, n) matrix.

    With N = n (n - 1) / 2 pairs and x_(1) <= ... <= x_(N): x_((N+1)/2) for odd N, (x_(N/2) + x_(N/2+1)) / 2
    for even N (``jnp.median``'s rule); NaN if any upper-triangle entry is NaN. Only the upper triangle counts (a distance
    matrix from the expansion ||a||^2 + ||b||^2 - 2 a.b is symmetric only up to round-off). The order
    statistics come from :func:`_kth_smallest_nonneg` on the matrix with +inf on and below the diagonal,
    the next one from one more pass: no sort of the N entries (~6 ms at n = 256 on CPU) and no gather.
    """
    n = d.shape[0]
    n_pairs = n * (n - 1) // 2
    inf = jnp.asarray(jnp.inf, d.dtype)
    upper = jnp.arange(n)[None, :] > jnp.arange(n)[:, None]
    bits = _order_bits(jnp.where(upper, d, inf))
    lo = _kth_smallest_nonneg(bits, (n_pairs + 1) // 2, d.dtype)
    if n_pairs % 2:
        med = lo
    else:  # the next order statistic: lo again if it repeats, else the smallest entry above it
        lo_bits = _order_bits(lo)
        repeats = jnp.sum(bits <= lo_bits) >= n_pairs // 2 + 1
        above = jnp.min(jnp.where(bits > lo_bits, bits, _order_bits(inf)))
        hi = jnp.where(repeats, lo, jax.lax.bitcast_convert_type(above, d.dtype))
        med = (lo + hi) * 0.5  # the rounding jnp.median's program gives (one rounding, of the sum)
    return jnp.where(jnp.any(jnp.isnan(jnp.where(upper, d, 0.0))), jnp.asarray(jnp.nan, d.dtype), med)


def _pr_from_dists(d_rf, r_real, r_fake):
    """Precision and recall from the real-fake distances (H, E) and both radius vectors."""
    in_real_ball = d_rf <= r_real[:, None]  # (H, E): fake j inside ball of real i
    in_fake_ball = d_rf <= r_fake[None, :]  # (H, E): real i inside ball of fake j
    precision = _mean(jnp.any(in_real_ball, axis=0), d_rf.dtype)
    recall = _mean(jnp.any(in_fake_ball, axis=1), d_rf.dtype)
    return precision, recall


def _dc_from_dists(d_rf, r_real, k):
    """Density and coverage from the real-fake distances (H, E) and the real radii (H,)."""
    in_real_ball = d_rf <= r_real[:, None]  # (H, E)
    n_fake = d_rf.shape[1]
    density = jnp.sum(in_real_ball.astype(d_rf.dtype)) / (k * n_fake)
    coverage = _mean(jnp.any(in_real_ball, axis=1), d_rf.dtype)
    return density, coverage


def _entropy_exp(lam):
    """exp(-sum lam log lam) over eigenvalues, tiny/negative ones clipped to 0 (0 log 0 = 0).

    "Tiny" is below eps * max|lam|, the resolution of eigvalsh. (A larger cut such as n * eps * max|lam|
    would drop genuine small eigenvalues of smooth kernels: -11% on 1000 RBF points in 16-D, float32.)
    """
    tol = jnp.finfo(lam.dtype).eps * jnp.max(jnp.abs(lam))
    lam = jnp.where(lam > tol, lam, 0.0)
    pos = lam > 0
    safe = jnp.where(pos, lam, 1.0)  # keeps log (and its gradient) finite on clipped entries
    ent = -jnp.sum(jnp.where(pos, lam * jnp.log(safe), 0.0))
    return jnp.exp(ent)


def _hill(norms, k):
    s = jnp.sort(norms)[::-1]  # X_(1) >= X_(2) >= ...
    logs = jnp.log(s[:k]) - jnp.log(s[k])
    return 1.0 / jnp.mean(logs)


# ----------------------------------------------------------------------------------------------- public


def pairwise_distances(a, b):
    """Euclidean distances D_ij = ||a_i - b_j|| between rows of ``a`` (n, d) and ``b`` (m, d).

    D_ij = sqrt(max(||a_i - c||^2 + ||b_j - c||^2 - 2 (a_i - c).(b_j - c), 0)) with c the mean of ``a``.
    Returns an (n, m) array in the common floating dtype.
    """
    a, b = _float(_as_2d(a), _as_2d(b))
    c = jnp.mean(a, axis=0)
    return jnp.sqrt(_sq_dists(a - c, b - c))


def knn_radii(x, k):
    """k-NN radius of every row of ``x`` (n, d) within its own set, self excluded.

    r_i = k-th smallest of { ||x_i - x_j|| : j != i }.   ``k`` is a static int with 1 <= k <= n - 1.
    Returns (n,).
    """
    (x,) = _float(_as_2d(x))
    _check_k(k, x.shape[0], "knn_radii")
    x = x - jnp.mean(x, axis=0)
    return _knn_from_self_dists(jnp.sqrt(_self_sq_dists(x)), k)


def precision_recall(real, fake, k):
    """Improved precision and recall (Kynkaanniemi et al. 2019), k-NN balls.

    precision = (1/E) sum_j 1[ exists i : ||f_j - r_i|| <= NND_k^real(r_i) ]
    recall    = (1/H) sum_i 1[ exists j : ||r_i - f_j|| <= NND_k^fake(f_j) ]

    with NND_k^S(s) the distance from s to its k-th nearest other point of S. ``real`` (H, d),
    ``fake`` (E, d), static ``k``. Returns (precision, recall) as scalars.
    """
    real, fake = _float(_as_2d(real), _as_2d(fake))
    _check_k(k, real.shape[0], "precision_recall (real)")
    _check_k(k, fake.shape[0], "precision_recall (fake)")
    c = jnp.mean(real, axis=0)
    real, fake = real - c, fake - c
    r_real = _knn_from_self_dists(jnp.sqrt(_self_sq_dists(real)), k)
    r_fake = _knn_from_self_dists(jnp.sqrt(_self_sq_dists(fake)), k)
    d_rf = jnp.sqrt(_sq_dists(real, fake))
    return _pr_from_dists(d_rf, r_real, r_fake)


def density_coverage(real, fake, k):
    """Density and coverage (Naeem et al. 2020), k-NN balls around the real points only.

    density  = 1/(k E) sum_j sum_i 1[ ||f_j - r_i|| <= NND_k^real(r_i) ]
    coverage = (1/H) sum_i 1[ exists j : ||f_j - r_i|| <= NND_k^real(r_i) ]

    ``real`` (H, d), ``fake`` (E, d), static ``k``. For fake ~ real (same distribution, E = H),
    E[density] = 1 and E[coverage] ~ 1 - 2^-k. Returns (density, coverage) as scalars.
    """
    real, fake = _float(_as_2d(real), _as_2d(fake))
    _check_k(k, real.shape[0], "density_coverage (real)")
    c = jnp.mean(real, axis=0)
    real, fake = real - c, fake - c
    r_real = _knn_from_self_dists(jnp.sqrt(_self_sq_dists(real)), k)
    d_rf = jnp.sqrt(_sq_dists(real, fake))
    return _dc_from_dists(d_rf, r_real, k)


def vendi_from_kernel(K):
    """Vendi score (Friedman & Dieng 2023) of a PSD kernel matrix ``K`` (n, n) with unit diagonal.

    VS = exp( - sum_i lam_i log lam_i ),  lam = eigvalsh(K / n),
    with eigenvalues below eps * max|lam| (round-off, including negative ones) set to 0 and
    0 log 0 = 0. Ranges from 1 (all samples identical) to n (all orthogonal).
    """
    (K,) = _float(K)
    n = K.shape[-1]
    lam = lapack_eigvalsh(K / n)
    return _entropy_exp(lam)


def vendi(x, bandwidth):
    """Vendi score of the rows of ``x`` (n, d) with an RBF kernel.

    K_ij = exp( - ||x_i - x_j||^2 / (2 bandwidth^2) ),  VS = exp( - sum lam log lam ),  lam = eig(K / n).
    ``bandwidth`` may be a traced scalar (e.g. ``median_pairwise_distance(real)``).
    """
    (x,) = _float(_as_2d(x))
    x = x - jnp.mean(x, axis=0)
    bw = jnp.asarray(bandwidth, x.dtype)
    K = jnp.exp(-_self_sq_dists(x) / (2.0 * bw * bw))
    return vendi_from_kernel(K)


def median_pairwise_distance(x):
    """Median of { ||x_i - x_j|| : i < j } over the n (n - 1) / 2 distinct pairs of rows of ``x`` (n, d).

    (For an even number of pairs, the mean of the two middle values.)
    """
    (x,) = _float(_as_2d(x))
    if x.shape[0] < 2:
        raise ValueError("median_pairwise_distance needs at least 2 points")
    x = x - jnp.mean(x, axis=0)
    return _median_upper(jnp.sqrt(_self_sq_dists(x)))


def hill_tail_index(x):
    """Hill estimate of the tail index of the norms ||x_i|| of the rows of ``x`` (E, d) (or (E,)).

    With X_(1) >= X_(2) >= ... >= X_(E) the sorted norms and k = floor(sqrt(E)) (static):
        alpha_hat = 1 / ( (1/k) sum_{i=1..k} log( X_(i) / X_(k+1) ) ).
    For a Pareto tail P(X > t) ~ t^-alpha, alpha_hat -> alpha with standard error ~ alpha / sqrt(k).
    """
    (x,) = _float(_as_2d(x))
    E = x.shape[0]
    k = math.isqrt(E)
    if k + 1 > E or k < 1:
        raise ValueError(f"hill_tail_index needs at least 2 samples, got {E}")
    norms = jnp.sqrt(jnp.sum(x * x, axis=-1))
    return _hill(norms, k)


def real_reference(real, knn_k, dc_k) -> dict:
    """What :func:`sample_metrics` computes from the real set alone (a replicate's held-out points do not change
    between generations, so the engine computes it once per replicate): the centre ``c`` = mean(real), the
    centred points ``real_c``, the k-NN radii ``r_knn`` (k = ``knn_k``) and ``r_dc`` (k = ``dc_k``) and the Vendi
    bandwidth ``bw`` = :func:`median_pairwise_distance` (real). ``knn_k``, ``dc_k`` static ints."""
    (real,) = _float(_as_2d(real))
    H = real.shape[0]
    _check_k(knn_k, H, "sample_metrics knn_k (real)")
    _check_k(dc_k, H, "sample_metrics dc_k (real)")
    c = jnp.mean(real, axis=0)
    real_c = real - c
    d_rr = jnp.sqrt(_self_sq_dists(real_c))
    r_real = _smallest_offdiag(d_rr, (knn_k, dc_k))  # both radii of the real points in one pass
    return {"c": c, "real_c": real_c, "r_knn": r_real[knn_k], "r_dc": r_real[dc_k], "bw": _median_upper(d_rr)}


def sample_metrics_from(ref: dict, fake, knn_k, dc_k) -> dict:
    """:func:`sample_metrics` of ``fake`` (E, d) against the real set summarised by :func:`real_reference`
    (same ``knn_k``, ``dc_k``): the same formulas (a ``ref`` computed in another compiled program may differ
    from an inline one in float round-off)."""
    real_c = ref["real_c"]
    (fake,) = _float(_as_2d(fake))
    fake = fake.astype(real_c.dtype)
    E = fake.shape[0]
    _check_k(knn_k, E, "sample_metrics knn_k (fake)")
    if math.isqrt(E) + 1 > E:
        raise ValueError("sample_metrics needs at least 2 fake samples")
    fake_c = fake - ref["c"]
    sq_ff = _self_sq_dists(fake_c)
    d_ff = jnp.sqrt(sq_ff)
    d_rf = jnp.sqrt(_sq_dists(real_c, fake_c))

    r_fake_pr = _knn_from_self_dists(d_ff, knn_k)
    precision, recall = _pr_from_dists(d_rf, ref["r_knn"], r_fake_pr)
    density, coverage = _dc_from_dists(d_rf, ref["r_dc"], dc_k)

    bw = ref["bw"]
    K = jnp.exp(-sq_ff / (2.0 * bw * bw))
    vs = _entropy_exp(lapack_eigvalsh(K / E))

    norms = jnp.sqrt(jnp.sum(fake * fake, axis=-1))  # norms of the raw (uncentred) samples
    tail = _hill(norms, math.isqrt(E))

    return {
        "precision": precision,
        "recall": recall,
        "density": density,
        "coverage": coverage,
        "vendi": vs,
        "tail_index": tail,
    }


def sample_metrics(real, fake, knn_k, dc_k):
    """All sample metrics of ``fake`` (E, d) against held-out ``real`` (H, d), sharing one set of distances.

    Returns a dict of scalars:
      "precision", "recall": :func:`precision_recall` with k = ``knn_k``;
      "density", "coverage": :func:`density_coverage` with k = ``dc_k``;
      "vendi": :func:`vendi` of ``fake`` with bandwidth = :func:`median_pairwise_distance` of ``real``;
      "tail_index": :func:`hill_tail_index` of ``fake``.
    ``knn_k`` and ``dc_k`` are static ints. The real-real, fake-fake and real-fake distance matrices are
    each computed once (the real side by :func:`real_reference`, the rest by :func:`sample_metrics_from`).
    """
    real, fake = _float(_as_2d(real), _as_2d(fake))
    return sample_metrics_from(real_reference(real, knn_k, dc_k), fake, knn_k, dc_k)
